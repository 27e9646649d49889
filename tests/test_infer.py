"""The `infer` step on CPU with the tiny model: real transformers, PEFT and tokenizer throughout.

Engine `transformers` here; real vLLM (its CPU build) runs in the vllm tier, tests/real_vllm,
and only the several-GPU path meets a fake (test_infer_vllm.py). Tasks are the smallest
ARC-AGI-1 training tasks, one of them with three test inputs, so prompts stay short and the
whole module runs in about a minute.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cuda_unusable_line
from test_infer_vllm import fake_vllm  # noqa: F401  (fixture)

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.prompts import ASSISTANT_PREFIX, assistant_message, build_messages, extract_code
from arcjobs.arc.tasks import load_dataset
from arcjobs.inference import plan
from arcjobs.steps.runner import run_step

pytestmark = pytest.mark.integration
os.environ["HF_HUB_OFFLINE"] = "1"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
# Small grids; 27a28665 has three test inputs, 44f52bb0 two.
TASK_IDS = ["6150a2bd", "44f52bb0", "27a28665"]
CPU = '{"gpus": 0, "cpus": 2}'


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    import torch

    from arcjobs.models.tiny import TinySpec, build_tiny

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(out, TinySpec(seed=0))
    return out


@pytest.fixture(scope="session")
def tokenizer(tiny):
    from arcjobs.models.tokenizer import load_tokenizer

    return load_tokenizer(tiny)


@pytest.fixture(scope="session")
def tasks():
    return load_dataset("arc-agi-1/training", task_ids=TASK_IDS)


@pytest.fixture(scope="session")
def adapter(tiny, tasks, tmp_path_factory) -> Path:
    """A LoRA adapter for the tiny model, trained by the `train` step (2 steps, as a user would
    run it); where that step is not installed, a LoRA made with PEFT directly, with non-zero
    weights so that it changes the model."""
    root = tmp_path_factory.mktemp("adapter")
    if importlib.util.find_spec("arcjobs.steps.train") is None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), config).save_pretrained(root)
        return root
    program = "from common import *\nimport numpy as np\n\ndef transform(input_grid):\n    return np.flipud(input_grid)\n"
    rows = [
        {"prompt": build_messages(t), "completion": [assistant_message(program)]}
        for t in tasks.values()
    ]
    (root / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--model", tiny, "--dataset", root / "dataset.jsonl", "--max-steps", "2"]
    args += ["--lora-rank", "4", "--learning-rate", "0.01", "--global-batch-size", "1"]
    args += ["--per-device-batch-size", "1", "--report-to", "[]", "--max-length", "3000"]
    proc = _cli("train", args, root / "train" / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "train" / "out" / "adapter"


def _cli(kind: str, args: list, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "arcjobs", "step", kind, *map(str, args), "--out", str(out)]
    env = dict(ENV, ARCJOBS_RESOURCES=CPU)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _infer(
    tiny: Path, out: Path, monkeypatch, resources: str = CPU, **extra
) -> tuple[list[dict], dict]:
    """Run the step in this process, as `arcjobs step infer` would; return (lines, summary)."""
    params = {
        "model": str(tiny),
        "dataset": "arc-agi-1/training",
        "task_ids": ",".join(TASK_IDS),
        "n": 4,
        "samples_per_prompt": 2,
        "engine": "transformers",
        "max_new_tokens": 12,
        "batch_size": 3,
        **extra,
    }
    argv = [x for k, v in params.items() for x in ("--" + k.replace("_", "-"), str(v))]
    monkeypatch.setenv("ARCJOBS_RESOURCES", resources)
    run_step("infer", argv, out)
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    return lines, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def base_run(tiny, tmp_path_factory):
    """One run without adapter, shared by the tests that only read it."""
    mp = pytest.MonkeyPatch()
    try:
        out = tmp_path_factory.mktemp("base") / "out"
        return (*_infer(tiny, out, mp, shuffle_train="true"), out)
    finally:
        mp.undo()


def test_prompt_ids_have_one_bos_and_continue_the_trained_answer(tokenizer, tasks):
    """With prefill, the prompt is a prefix of the token ids the model was trained on."""
    bos = tokenizer.bos_token_id
    for task in tasks.values():
        messages = build_messages(task, 0, Augmentation.random(np.random.default_rng(1)))
        trained = tokenizer.apply_chat_template(
            messages + [assistant_message("def transform(x):\n    return x")], tokenize=True
        )["input_ids"]
        for prefill in (True, False):
            ids = plan.encode_prompt(tokenizer, messages, prefill)
            assert ids[0] == bos and ids.count(bos) == 1, "exactly one <|begin_of_text|>"
            assert trained[: len(ids)] == ids
            tail = tokenizer.decode(ids)
            if prefill:
                assert tail.endswith(ASSISTANT_PREFIX + "\n")
                assert (
                    trained[len(ids) : len(ids) + 1]
                    == tokenizer.encode("```", add_special_tokens=False)[:1]
                ), "the model continues with the code fence"
            else:
                assert tail.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_counts_ids_and_text_of_every_prediction(base_run, tiny, tasks):
    lines, summary, _ = base_run
    assert [line["task_id"] for line in lines] == [t for t in TASK_IDS for _ in range(4)]
    assert len({line["sample_id"] for line in lines}) == len(lines) == 12
    assert [line["sample_id"] for line in lines[:4]] == [
        f"{TASK_IDS[0]}.{p}.{s}" for p in range(2) for s in range(2)
    ]
    for line in lines:
        assert line["model"] == str(tiny) and line["adapter"] is None
        assert line["text"].startswith(ASSISTANT_PREFIX + "\n")
        assert line["code"] == extract_code(line["text"])
        assert 1 <= line["completion_tokens"] <= 12
        assert line["finish_reason"] in ("stop", "length")
        assert 0 <= line["test_index"] < len(tasks[line["task_id"]].test_inputs)
    assert summary["prompts"] == 6 and summary["completions"] == 12
    assert summary["skipped_prompts"] == 0
    assert summary["completion_tokens"] == sum(x["completion_tokens"] for x in lines)
    assert summary["engine"] == "transformers" and summary["seed"] == 0
    assert summary["tokens_per_s"] > 0 and summary["programs_per_s"] > 0


def test_recorded_augmentation_inverts_the_task_and_rebuilds_the_prompt(base_run, tasks, tokenizer):
    lines, _, _ = base_run
    assert all(line["augmentation"] is not None for line in lines)
    assert len({json.dumps(line["augmentation"]) for line in lines}) > 1
    for line in lines:
        task = tasks[line["task_id"]]
        aug = Augmentation.from_dict(line["augmentation"])
        seen = aug.apply_task(task)
        for (x, y), (ax, ay) in zip(task.train, seen.train, strict=True):
            assert np.array_equal(aug.invert(ax), x) and np.array_equal(aug.invert(ay), y)
        for x, ax in zip(task.test_inputs, seen.test_inputs, strict=True):
            assert np.array_equal(aug.invert(ax), x)
        # The recorded choices are exactly the prompt the model saw.
        messages = build_messages(task, line["test_index"], aug, line["shuffle_seed"])
        assert line["prompt_tokens"] == len(plan.encode_prompt(tokenizer, messages, True))


def test_same_seed_same_predictions_other_seed_other_prompts(base_run, tiny, tmp_path, monkeypatch):
    lines, _, out = base_run
    again, _ = _infer(tiny, tmp_path / "again", monkeypatch, shuffle_train="true")
    assert (tmp_path / "again" / "predictions.jsonl").read_bytes() == (
        out / "predictions.jsonl"
    ).read_bytes()
    other, _ = _infer(tiny, tmp_path / "other", monkeypatch, shuffle_train="true", seed=1)
    assert [x["sample_id"] for x in other] == [x["sample_id"] for x in lines]
    assert [x["augmentation"] for x in other] != [x["augmentation"] for x in lines]
    # A test input is drawn per prompt: the three-input task does not always get the first.
    many, _ = _infer(
        tiny,
        tmp_path / "many",
        monkeypatch,
        task_ids="27a28665",
        n=12,
        samples_per_prompt=1,
        max_new_tokens=1,
    )
    assert len({x["test_index"] for x in many}) == 3


def test_without_augmentation_the_prompt_is_the_task_as_stored(
    tiny, tmp_path, monkeypatch, tasks, tokenizer
):
    lines, _ = _infer(tiny, tmp_path / "o", monkeypatch, augment="false", prefill_prefix="false")
    for line in lines:
        assert line["augmentation"] is None and line["shuffle_seed"] is None
        assert not line["text"].startswith(ASSISTANT_PREFIX)
        messages = build_messages(tasks[line["task_id"]], line["test_index"])
        assert line["prompt_tokens"] == len(plan.encode_prompt(tokenizer, messages, False))


def test_prompts_longer_than_the_context_are_skipped_and_counted(
    tiny, tmp_path, monkeypatch, tasks, tokenizer
):
    requests, _ = plan.build_requests(
        tasks,
        2,
        tokenizer,
        augment=True,
        shuffle_train=False,
        prefill=True,
        seed=0,
        max_prompt_tokens=10**6,
    )
    lengths = sorted(len(r.token_ids) for r in requests)
    limit = lengths[len(lengths) // 2]  # about half the prompts fit
    lines, summary = _infer(tiny, tmp_path / "o", monkeypatch, max_model_len=limit + 12)
    fitting = sum(n <= limit for n in lengths)
    assert 0 < fitting < len(lengths)
    assert summary["prompts"] == fitting
    assert summary["skipped_prompts"] == len(lengths) - fitting == len(summary["skipped"])
    assert len(lines) == 2 * fitting
    assert max(x["prompt_tokens"] for x in lines) <= limit, "kept prompts are never truncated"


def test_training_samples_become_requests_in_their_own_frame(tasks, tokenizer):
    """`prompts`: a task's k-th sample is its prompt k, with prompt k's sampling seed, its
    prompt as trained, no augmentation, and the sample it came from; unknown tasks are left
    out and too-long prompts skipped."""
    a, b = TASK_IDS[:2]
    samples = [
        {"task_id": tid, "sample_id": f"s{i}", "prompt": build_messages(tasks[task], 0)}
        for i, (tid, task) in enumerate([(a, a), (b, b), (a, a), ("unknown", a)])
    ]
    ids = plan.encode_prompt(tokenizer, samples[0]["prompt"], True)
    requests, skipped = plan.sample_requests(
        samples, tasks, tokenizer, prefill=True, seed=3, max_prompt_tokens=10**6
    )
    assert skipped == []
    assert [(r.task_id, r.prompt_index, r.trained_sample_id) for r in requests] == [
        (a, 0, "s0"),
        (b, 0, "s1"),
        (a, 1, "s2"),
    ]
    assert requests[0].token_ids == tuple(ids)
    for r in requests:
        assert (r.test_index, r.augmentation, r.shuffle_seed) == (0, None, None)
        drawn = plan.draw(
            tasks[r.task_id], r.prompt_index, augment=False, shuffle_train=False, seed=3
        )
        assert r.seed == drawn.seed
    limit = len(plan.encode_prompt(tokenizer, samples[1]["prompt"], True)) - 1
    short, skipped = plan.sample_requests(
        samples[:2], tasks, tokenizer, prefill=True, seed=3, max_prompt_tokens=limit
    )
    assert len(short) + len(skipped) == 2 and [d.task_id for d in skipped] == [b]
    c = TASK_IDS[2]  # three test inputs, and its draw picks test 2: the prompt asked for 0
    sample = {"task_id": c, "sample_id": "s", "prompt": build_messages(tasks[c], 0)}
    _, skipped = plan.sample_requests(
        [sample], tasks, tokenizer, prefill=True, seed=3, max_prompt_tokens=0
    )
    assert [(d.task_id, d.test_index) for d in skipped] == [(c, 0)]


def test_adapter_is_loaded_and_recorded(tiny, adapter, tokenizer, tasks, tmp_path, monkeypatch):
    import torch

    from arcjobs.inference import engine_transformers

    lines, summary = _infer(tiny, tmp_path / "o", monkeypatch, adapter=adapter)
    assert len(lines) == 12 and summary["adapter"] == str(adapter)
    assert {x["adapter"] for x in lines} == {str(adapter)}
    ids = plan.encode_prompt(tokenizer, build_messages(tasks[TASK_IDS[0]]), True)
    x = torch.tensor([ids])
    with torch.inference_mode():
        plain = engine_transformers.load(tiny, None, tokenizer, "cpu")(x).logits
        tuned = engine_transformers.load(tiny, str(adapter), tokenizer, "cpu")(x).logits
    assert not torch.allclose(plain, tuned), "the adapter must change the model's outputs"


def test_step_with_the_vllm_engine_on_two_gpus(tiny, fake_vllm, tmp_path, monkeypatch):  # noqa: F811
    """The step's vLLM path end to end against the fake `vllm` package of test_infer_vllm.py
    (no CPU has two GPUs): two granted GPUs give two engine processes, one per GPU."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lines, summary = _infer(tiny, tmp_path / "o", monkeypatch, '{"gpus": 2}', engine="vllm")
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sorted(c["devices"] for c in calls) == ["0", "1"]
    longest = max(x["prompt_tokens"] for x in lines)
    assert {c["max_model_len"] for c in calls} == {longest + 12}, "sized to the prompts"
    assert sum(len(c["first_ids"]) for c in calls) == summary["prompts"] == 6
    assert len(lines) == 12 and summary["engine"] == "vllm"
    assert [x["code"] for x in lines[:2]] == ["# 0.0", "# 0.1"]  # the fake's text, BOS id 0
    assert all(x["text"].startswith(ASSISTANT_PREFIX + "\n```python\n") for x in lines)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--model", "{missing}"],
            "error: {missing}: not a model directory (no config.json); give a local HF model path",
        ),
        (
            ["--model", "{tiny}", "--adapter", "{missing}"],
            "error: {missing}: not a PEFT adapter directory (no adapter_config.json)",
        ),
        (
            ["--model", "{tiny}", "--n", "5", "--samples-per-prompt", "2"],
            "error: --samples-per-prompt: Value error, n=5 is not a multiple of samples_per_prompt=2 (n = prompts per task x samples per prompt)",
        ),
        (
            ["--model", "{tiny}", "--adapter", "{dora}", "--engine", "vllm"],
            "error: {dora}/adapter_config.json: use_dora: vLLM cannot serve DoRA adapters; train with merge: true and sample from the merged model, or use engine: transformers",
        ),
        pytest.param(
            ["--model", "{tiny}", "--engine", "vllm"],
            "error: engine: vllm is not installed here (use the infer image), or set engine: transformers",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here"
            ),
        ),
    ],
    ids=["missing-model", "missing-adapter", "n-not-divisible", "dora-with-vllm", "no-vllm"],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tiny, tmp_path, args, expected):
    dora = tmp_path / "dora"
    dora.mkdir()
    (dora / "adapter_config.json").write_text('{"r": 8, "use_dora": true}')
    names = {"missing": tmp_path / "nope", "tiny": tiny, "dora": dora}
    args = [a.format(**names) for a in args] + ["--dataset", "arc-agi-1/training", "--limit", "1"]
    out = tmp_path / "step" / "out"
    proc = _cli("infer", args, out)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == expected.format(**names)
    assert not out.exists()


def test_permute_black_moves_black_in_that_share_of_prompts_and_nothing_else(tasks) -> None:
    """0 gives exactly the prompts it always gave; 0.1 moves black in about a tenth of the
    prompts (the seed study's setting), keeping each prompt's other choices."""
    task = next(iter(tasks.values()))
    plain = [plan.draw(task, p, augment=True, shuffle_train=True, seed=3) for p in range(2000)]
    same = [
        plan.draw(task, p, augment=True, shuffle_train=True, seed=3, permute_black=0.0)
        for p in range(2000)
    ]
    assert plain == same
    moved = [
        plan.draw(task, p, augment=True, shuffle_train=True, seed=3, permute_black=0.1)
        for p in range(2000)
    ]
    share = sum(d.augmentation.colors[0] != 0 for d in moved) / len(moved)
    assert 0.06 < share < 0.12  # a full permutation leaves black in place 1 time in 10
    for a, b in zip(plain, moved, strict=True):
        assert (a.test_index, a.shuffle_seed, a.seed) == (b.test_index, b.shuffle_seed, b.seed)
        assert a.augmentation.dihedral == b.augmentation.dihedral


def test_gpus_granted_where_cuda_is_unusable_are_refused_for_transformers(tiny, tmp_path):
    """The transformers engine would sample on the CPU without a word when the granted GPU
    cannot be used (the CPU build of torch here stands for a broken driver); vLLM reports
    that itself. Without ARCJOBS_RESOURCES (a step typed by hand) the CPU is fine."""
    out = tmp_path / "o"
    args = ["--model", tiny, "--dataset", "arc-agi-1/training", "--task-ids", TASK_IDS[0]]
    args += ["--n", "1", "--engine", "transformers", "--max-new-tokens", "4", "--out", out]
    cmd = [sys.executable, "-m", "arcjobs", "step", "infer", *map(str, args)]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(ENV, ARCJOBS_RESOURCES='{"gpus": 1}'),
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == cuda_unusable_line(1)
    assert not out.exists()
    by_hand = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert by_hand.returncode == 0, by_hand.stderr[-2000:]
