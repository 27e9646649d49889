"""Step kind `train`: supervised fine-tuning on relabelled programs (the "learn" half of a round).

One recipe, top to bottom: read the prompt–completion dataset, skip samples longer than
`max_length` (truncating a program teaches the model to stop mid-code), load the model,
wrap it in a LoRA / rsLoRA / DoRA adapter (or train it fully, or continue the previous round's
adapter), and run TRL's `SFTTrainer`, which puts the loss on the completion tokens only —
including the closing `<|eot_id|>`, so the model learns to stop. Checkpoints go to the step's
scratch space every `save_steps`; re-running the step after a kill resumes from the newest
complete one. Outputs: `out/adapter/` (adapter weights only: no embeddings, no
`modules_to_save`, so vLLM can serve it) or, with `merge` / full fine-tuning, `out/model/`;
`out/metrics.json`, `out/loss.png` and the TensorBoard logs.

Throughput defaults (see benchmarks/train_throughput.py): on a GPU with flash-attention the
batch is padding-free (sequences concatenated, no pad tokens computed), Liger's fused
RoPE/RMSNorm/SwiGLU kernels are applied when installed, the optimizer is the fused AdamW, and
TRL's chunked LM head avoids materialising the 128k-vocabulary logits. On a CPU everything
falls back to plain PyTorch so the tiny model trains in tests.

With `resources.gpus > 1` the step starts itself again under `accelerate launch`, one process
per GPU; the user gives the global batch and the per-device batch, and the gradient
accumulation is derived so the global batch stays the same on any number of GPUs. What must be
decided once is decided in this parent process before any rank starts: CUDA is usable, the
options fit, and whether there is anything to learn at all (else every rank would publish
the starting adapter into the same directory).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from arcjobs.errors import UserError
from arcjobs.steps.base import StepContext, StepKind, StepParams
from arcjobs.steps.inputs import InputPath, ModelDir

CHECKPOINTS = "checkpoints"
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Params(StepParams):
    model: ModelDir = Field(description="Local HF directory of the base model.")
    dataset: InputPath = Field(
        description="dataset.jsonl (or a directory holding it) from `relabel`."
    )
    adapter: InputPath | None = Field(
        None, description="Adapter to continue training (round k-1's)."
    )
    method: Literal["lora", "full"] = Field("lora", description="Adapter or full fine-tuning.")
    lora_rank: int = Field(32, ge=1)
    lora_alpha: float = Field(
        32,
        gt=0,
        description="Kept fixed while lora_rank varies: updates are scaled by alpha/sqrt(r) "
        "with rsLoRA, alpha/r without; 32 is the default rank.",
    )
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_LINEAR))
    use_rslora: bool = Field(True, description="Scale by alpha/sqrt(r): stable across ranks.")
    use_dora: bool = Field(False, description="DoRA (vLLM cannot serve it: use merge).")
    merge: bool = Field(False, description="Save merged full weights as out/model/ instead.")
    load_in_4bit: bool = Field(False, description="QLoRA: nf4 base weights (GPU only).")
    liger: bool | None = Field(None, description="Liger kernels; default on where installed (GPU).")
    gradient_checkpointing: bool = True
    padding_free: bool | None = Field(
        None,
        description="Flattened batches without padding; default on with flash-attention, "
        "refused without it.",
    )
    packing: bool = Field(
        False, description="Pack samples into max_length blocks (BFD); needs flash-attention."
    )
    sampler: Literal["random", "group_by_length", "batch_rebalance", "round_robin"] | None = Field(
        None,
        description="Default: group_by_length for padded batches of >1 sample, else random. "
        "round_robin: every task in turn, one sample each (the seed study's), so a task with "
        "many samples gets no more steps than one with few.",
    )
    attn_implementation: str | None = Field(None, description="Default: flash_attention_2 or sdpa.")
    global_batch_size: int = Field(16, ge=1, description="Samples per optimizer step, all GPUs.")
    per_device_batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: str = Field("cosine", description="A transformers scheduler name.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Overrides epochs when set.")
    epochs: float = Field(1.0, gt=0)
    max_length: int = Field(8192, ge=16, description="Longer samples are skipped and counted.")
    optimizer: str | None = Field(
        None, description="Default: adamw_torch_fused (GPU), adamw_torch."
    )
    seed: int = 0
    save_steps: int = Field(50, ge=1, description="Checkpoint interval (steps), in scratch.")
    logging_steps: int = Field(1, ge=1)
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers; wandb is added when WANDB_PROJECT is set (WANDB_MODE=offline works).",
    )

    @field_validator("method")
    @classmethod
    def _adapter_needs_lora(cls, method: str, info: ValidationInfo) -> str:
        if method != "lora" and info.data.get("adapter"):
            raise ValueError("continuing an adapter (adapter: ...) needs method lora")
        return method

    @field_validator("merge")
    @classmethod
    def _merge_needs_lora(cls, merge: bool, info: ValidationInfo) -> bool:
        if merge and info.data.get("method") != "lora":
            raise ValueError("merge applies to an adapter; method full already saves a model")
        return merge


# ----------------------------------------------------------------------------- job-level check


def _referenced_steps(text: Any) -> list[str]:
    """Step names in `${name.out}` / `${name.outs}` / `${prev.name.out}` references."""
    names = re.findall(r"\$\{([^}]+?)\.outs?\}", str(text or ""))
    return [n[len("prev.") :] if n.startswith("prev.") else n for n in names]


def check_job(job: Any) -> list[tuple[str, str, str]]:
    """Refuse DoRA adapters that a vLLM infer step would serve (vLLM cannot), unless merged.

    `job` is the resolved `arcjobs.spec.model.Job`. Only `full_params` is read: the values
    as the kind's schema validated them (defaults filled in, `"on"` already True), so this
    rule sees what the step will run with. Output references are still `${name.out}` text.
    """
    problems: list[tuple[str, str, str]] = []
    for infer in job.steps.values():
        if infer.kind != "infer" or infer.full_params["engine"] != "vllm":
            continue
        for name in _referenced_steps(infer.full_params["adapter"]):
            trainer = job.steps.get(name)
            if trainer is None or trainer.kind != "train" or not trainer.full_params["use_dora"]:
                continue
            if trainer.full_params["merge"]:
                problems.append(
                    (
                        trainer.name,
                        "merge",
                        f"step {infer.name!r} serves this step's adapter, but "
                        f"with merge on it writes a merged model: use model: ${{{name}.out}}/model there",
                    )
                )
            else:
                problems.append(
                    (
                        trainer.name,
                        "use_dora",
                        f"step {infer.name!r} would serve this DoRA adapter "
                        "with vLLM, which cannot serve DoRA; set merge: true and give that step "
                        f"model: ${{{name}.out}}/model, or use plain LoRA",
                    )
                )
    return problems


# ----------------------------------------------------------------------------- data


def read_dataset(path: str) -> list[dict[str, Any]]:
    """The prompt–completion pairs of a relabel output (checked line by line), with their task."""
    from arcjobs.arc.samples import read_samples

    return [
        {"task_id": str(r.get("task_id", "")), "prompt": r["prompt"], "completion": r["completion"]}
        for r in read_samples(path)
    ]


def round_robin(rows: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` samples taken task by task: passes over the tasks in one shuffled order, each
    pass taking every task's next sample (a task's samples shuffled once, then cycled).

    The seed study's training order: with it a task relabelled into 40 samples gets as many
    steps as one with 2, where drawing samples at random would favour it twentyfold.
    """
    import random

    rng = random.Random(seed)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(row["task_id"], []).append(row)
    tasks = sorted(by_task)
    rng.shuffle(tasks)
    for samples in by_task.values():
        rng.shuffle(samples)
    order: list[dict[str, Any]] = []
    for turn in range(count // len(tasks) + 1):
        order += [by_task[t][turn % len(by_task[t])] for t in tasks]
    return order[:count]


def drop_long(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[list, int]:
    """Samples whose templated prompt+completion fits `max_length`, and how many were skipped.

    Counted with the same chat template TRL applies, so nothing that passes here is truncated.
    """
    kept = []
    for row in rows:
        ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        if len(ids) <= max_length:
            kept.append(row)
    return kept, len(rows) - len(kept)


# ----------------------------------------------------------------------------- checkpoints


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer_state.json (written last) parses. Only
    reads: a run may be writing a newer one right now."""
    for ckpt in _checkpoints_newest_first(folder):
        if _complete(ckpt):
            return ckpt
    return None


def prune_to_last_complete_checkpoint(folder: Path) -> Path | None:
    """`last_complete_checkpoint`, after removing every newer, incomplete one: what a kill
    during saving leaves, and the trainer's own rotation must never mistake for a good
    one. Only for a run about to resume, when nothing else writes there."""
    for ckpt in _checkpoints_newest_first(folder):
        if _complete(ckpt):
            return ckpt
        shutil.rmtree(ckpt, ignore_errors=True)
    return None


def _checkpoints_newest_first(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), d)
        for d in folder.iterdir()
        if (m := re.fullmatch(r"checkpoint-(\d+)", d.name))
    ]
    return [d for _, d in sorted(found, reverse=True)]


def _complete(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------- the recipe


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _accumulation(params: Params, world: int) -> int:
    per_step = params.per_device_batch_size * world
    if params.global_batch_size % per_step:
        raise UserError(
            f"global_batch_size: {params.global_batch_size} is not a multiple of "
            f"per_device_batch_size {params.per_device_batch_size} x {world} GPU(s)"
        )
    return params.global_batch_size // per_step


def _flattened_batches(params: Params, attn: str) -> bool:
    """Whether batches are flattened (padding-free; TRL's BFD packing implies it), refusing it
    where the attention kernel would build a quadratic mask over the flattened row."""
    from arcjobs.models.loading import varlen_attention

    if not (params.packing or params.padding_free):
        return params.padding_free is None and varlen_attention(attn)
    if not varlen_attention(attn):
        key = "packing" if params.packing else "padding_free"
        raise UserError(
            f"{key}: flattened batches need a flash-attention kernel, and attention is {attn} "
            "here (one row per batch, with a mask quadratic in its tokens); install flash-attn "
            f"(Dockerfile.train's FLASH_ATTN_WHEEL) or set {key}: false"
        )
    return True


def _check_device_options(params: Params, gpu: bool) -> bool:
    """Refuse GPU-only options on a CPU; return whether Liger kernels will be used."""
    if params.load_in_4bit and params.method == "full":
        raise UserError("load_in_4bit: 4-bit weights cannot be fully fine-tuned; use method: lora")
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    if params.liger and not (gpu and has_liger):
        raise UserError("liger: Liger kernels need a CUDA GPU and the liger-kernel package")
    return params.liger if params.liger is not None else gpu and has_liger


def _peft_model(params: Params, model: Any) -> Any:
    """Wrap `model` in a new adapter, or in round k-1's adapter (its own config wins)."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    # Only for quantised weights: on a plain model it would upcast every weight to fp32
    # (publishing an untrained 4-bit adapter loads the base unquantised).
    if getattr(model, "hf_quantizer", None) is not None:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=params.gradient_checkpointing
        )
    if params.adapter:
        if not (Path(params.adapter) / "adapter_config.json").is_file():
            raise UserError(f"{params.adapter}: adapter: no adapter_config.json there")
        return PeftModel.from_pretrained(model, params.adapter, is_trainable=True)
    config = LoraConfig(
        r=params.lora_rank,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=params.target_modules,
        use_rslora=params.use_rslora,
        use_dora=params.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        raise UserError(f"target_modules: {str(e).splitlines()[0]}") from None


def _sft_config(params: Params, scratch: Path, gpu: bool, liger: bool, attn: str) -> Any:
    from trl import SFTConfig

    padding_free = _flattened_batches(params, attn)
    sampler = params.sampler
    if sampler is None:  # padded batches of similar lengths waste little compute on padding
        padded = not padding_free and params.per_device_batch_size > 1
        sampler = "group_by_length" if padded else "random"
    if sampler == "round_robin":  # the dataset is in that order already (`training_order`)
        sampler = "sequential"
    report_to = list(params.report_to)
    if os.environ.get("WANDB_PROJECT") and "wandb" not in report_to:
        if importlib.util.find_spec("wandb") is None:
            print("train: WANDB_PROJECT is set but wandb is not installed; not logging to W&B")
        else:
            report_to.append("wandb")  # WANDB_MODE=offline writes runs to sync later
    if "tensorboard" in report_to and importlib.util.find_spec("tensorboard") is None:
        raise UserError("report_to: tensorboard is not installed (the train extra has it)")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(scratch / "tensorboard")  # this process's run
    return SFTConfig(
        output_dir=str(scratch / CHECKPOINTS),
        per_device_train_batch_size=params.per_device_batch_size,
        gradient_accumulation_steps=_accumulation(params, _world_size()),
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,
        weight_decay=params.weight_decay,
        max_grad_norm=params.max_grad_norm,
        max_steps=params.max_steps or -1,
        # round_robin: the dataset is the whole ordered stream, epochs included
        num_train_epochs=1 if params.sampler == "round_robin" else params.epochs,
        # Samples that do not fit were dropped already; padding-free without packing has no
        # length to enforce, and TRL asks for None there.
        max_length=None if padding_free and not params.packing else params.max_length,
        packing=params.packing,
        padding_free=padding_free,
        train_sampling_strategy=sampler,
        completion_only_loss=True,
        activation_checkpointing=params.gradient_checkpointing,  # transformers 5 name
        bf16=gpu,
        fp16=False,
        use_liger_kernel=liger,
        optim=params.optimizer or ("adamw_torch_fused" if gpu else "adamw_torch"),
        seed=params.seed,
        data_seed=params.seed,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=2,
        logging_steps=params.logging_steps,
        report_to=report_to,
        dataset_num_proc=None,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=not gpu,
    )


def usable_samples(params: Params, tokenizer: Any) -> tuple[list[dict[str, Any]], int]:
    """The samples that fit `max_length`, and how many did not; NothingToLearn when none does."""
    rows, skipped = drop_long(read_dataset(params.dataset), tokenizer, params.max_length)
    if not rows:
        raise NothingToLearn(skipped)
    return rows, skipped


def training_order(params: Params, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the trainer iterates over: the samples themselves, or with `round_robin` the whole
    task-balanced stream, as long as the steps (or epochs) need."""
    if params.sampler != "round_robin":
        stream = rows
    elif params.max_steps:
        stream = round_robin(rows, params.max_steps * params.global_batch_size, params.seed)
    else:
        stream = round_robin(rows, math.ceil(params.epochs * len(rows)), params.seed)
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in stream]


def _device_map(gpu: bool) -> dict[str, int] | None:
    """Each rank's GPU (LOCAL_RANK under accelerate): weights load straight onto it instead
    of into host memory first (16 GB per rank for the 8B model)."""
    return {"": int(os.environ.get("LOCAL_RANK", "0"))} if gpu else None


def build_trainer(
    params: Params, scratch: Path, usable: tuple[list[dict[str, Any]], int] | None = None
) -> tuple[Any, Any, int, int]:
    """The configured SFTTrainer, its tokenizer, and the numbers of samples kept and skipped.

    `usable`: `usable_samples`' result where the caller has it already (`run`, in process);
    each rank under accelerate reads and tokenizes the dataset itself."""
    from datasets import Dataset
    from trl import SFTTrainer

    from arcjobs.models.loading import has_cuda, load_model, pick_attention
    from arcjobs.models.tokenizer import load_tokenizer

    gpu = has_cuda()
    liger = _check_device_options(params, gpu)
    attn = pick_attention(params.attn_implementation)
    tokenizer = load_tokenizer(params.model)
    rows, skipped = usable or usable_samples(params, tokenizer)
    print(f"train: {len(rows)} samples, {skipped} skipped (longer than {params.max_length} tokens)")
    config = _sft_config(params, scratch, gpu, liger, attn)
    model = load_model(
        params.model,
        load_in_4bit=params.load_in_4bit,
        attn_implementation=attn,
        device_map=_device_map(gpu),
    )
    if params.method == "lora":
        from transformers import set_seed

        set_seed(params.seed)  # the adapter's initial weights are random
        model = _peft_model(params, model)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(training_order(params, rows)),
        processing_class=tokenizer,
    )
    return trainer, tokenizer, len(rows), skipped


class NothingToLearn(Exception):
    """The dataset has no sample that fits (e.g. a round whose search found no valid program)."""


def _publish_untrained(params: Params, ctx: StepContext, skipped: int) -> None:
    """A round with nothing to learn must not stop a multi-round job: publish the adapter it
    started from (round k-1's, or a fresh LoRA, which leaves the model unchanged) and say so
    in metrics.json and as a warning. A full fine-tune or a merge has no such neutral
    output: refused."""
    if params.method == "full" or params.merge:
        raise UserError(
            f"{params.dataset}: no sample to train on ({skipped} longer than max_length)"
        )
    ctx.warn(f"no sample to train on ({skipped} skipped): published the starting adapter")
    from arcjobs.models.loading import load_model

    out = ctx.out
    if params.adapter:
        shutil.copytree(params.adapter, out / "adapter")
    else:
        _peft_model(params, load_model(params.model)).save_pretrained(
            out / "adapter", save_embedding_layers=False
        )
    metrics = {
        "trained": False,
        "loss_curve": [],
        "final_loss": None,
        "global_step": 0,
        "samples": 0,
        "samples_skipped": skipped,
        "tokens_seen": 0,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def train(
    params: Params,
    out: Path,
    scratch: Path,
    usable: tuple[list[dict[str, Any]], int] | None = None,
) -> None:
    """The training recipe proper (one process per GPU under accelerate, or one on CPU)."""
    import torch

    trainer, tokenizer, samples, skipped = build_trainer(params, scratch, usable)
    resume = prune_to_last_complete_checkpoint(scratch / CHECKPOINTS)
    if resume is not None:
        print(f"train: resuming from {resume.name}", flush=True)
    started = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    elapsed = max(time.time() - started, 1e-9)
    if not trainer.is_world_process_zero():
        return
    _save_outputs(params, trainer, tokenizer, out)
    metrics = _metrics(trainer, samples, skipped, elapsed, resume)
    if params.sampler == "round_robin":  # TRL saw a sequential stream, ordered by the step
        metrics["config"]["sampler"] = "round_robin"
    metrics["peak_memory_bytes"] = (
        torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    )
    _write_report(metrics, out, scratch)


def _save_outputs(params: Params, trainer: Any, tokenizer: Any, out: Path) -> None:
    """Adapter only (no embeddings), or a merged / fully trained model with its tokenizer."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if params.method == "full":
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        return
    adapter_dir = out / "adapter"
    model.save_pretrained(adapter_dir, save_embedding_layers=False)
    if params.merge:
        _merge(params, adapter_dir, tokenizer, out / "model")
        shutil.rmtree(adapter_dir)


def _merge(params: Params, adapter_dir: Path, tokenizer: Any, dest: Path) -> None:
    """Merge into an unquantised copy of the base (merging into 4-bit weights would round)."""
    from peft import PeftModel

    from arcjobs.models.loading import load_model

    base = load_model(params.model)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def _metrics(
    trainer: Any, samples: int, skipped: int, elapsed: float, resume: Path | None
) -> dict[str, Any]:
    """Loss curve, volumes and throughput. TRL's `num_tokens` (non-pad tokens, prompt
    included) restarts at zero in a resumed attempt, so this attempt's share is what follows
    the resumed step and the total adds what the checkpoint's history had counted."""
    args = trainer.args
    history = trainer.state.log_history
    resumed = int(resume.name.split("-")[1]) if resume else 0
    before = [h["num_tokens"] for h in history if "num_tokens" in h and h["step"] <= resumed]
    after = [h["num_tokens"] for h in history if "num_tokens" in h and h["step"] > resumed]
    tokens_now = after[-1] if after else 0
    steps_now = trainer.state.global_step - resumed
    global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    global_batch *= args.world_size
    losses = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    return {
        "loss_curve": losses,
        "final_loss": losses[-1]["loss"] if losses else None,
        "global_step": trainer.state.global_step,
        "resumed_from_step": resumed,
        "samples": samples,
        "samples_skipped": skipped,
        "tokens_seen": (before[-1] if before else 0) + tokens_now,
        "train_runtime_s": elapsed,
        "tokens_per_s": tokens_now / elapsed,
        "samples_per_s": steps_now * global_batch / elapsed,
        "config": {
            "global_batch_size": global_batch,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": args.world_size,
            "optimizer": getattr(args.optim, "value", str(args.optim)),
            "padding_free": bool(args.padding_free),
            "sampler": args.train_sampling_strategy,
            "liger": bool(args.use_liger_kernel),
            "bf16": bool(args.bf16),
            "gradient_checkpointing": bool(args.activation_checkpointing),
        },
    }


def _write_report(metrics: dict[str, Any], out: Path, scratch: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    curve = metrics["loss_curve"]
    ax.plot([p["step"] for p in curve], [p["loss"] for p in curve])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (completion tokens)")
    ax.set_yscale("log" if curve and min(p["loss"] for p in curve) > 0 else "linear")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
    if (scratch / "tensorboard").is_dir():
        shutil.copytree(scratch / "tensorboard", out / "tensorboard")


# ----------------------------------------------------------------------------- entry points


def run(params: Params, ctx: StepContext) -> None:
    """In-process on CPU / one GPU; under `accelerate launch` with several GPUs. Decided here,
    once: CUDA is usable where GPUs were granted, and there is something to learn."""
    from arcjobs.models.loading import require_cuda
    from arcjobs.models.tokenizer import load_tokenizer

    gpus = int(ctx.resources.get("gpus") or 0)
    require_cuda(gpus)
    try:
        usable = usable_samples(params, load_tokenizer(params.model))
    except NothingToLearn as e:
        _publish_untrained(params, ctx, e.args[0])
        return
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        _launch(params, ctx, gpus)
    else:
        train(params, ctx.out, ctx.scratch, usable)


def _launch(params: Params, ctx: StepContext, gpus: int) -> None:
    """One DDP process per GPU, each running this module's `__main__` (the recipe above)."""
    from arcjobs.models.loading import pick_attention

    # Bad input is refused here as one line, not as one traceback per rank.
    _accumulation(params, gpus)
    _check_device_options(params, gpu=True)
    _flattened_batches(params, pick_attention(params.attn_implementation))
    # Port 0: torchrun's agent binds a free port itself and hands it to the ranks. The
    # default, 29500, makes two multi-GPU steps started together on one machine collide
    # (accelerate only moves off it when it sees the port taken, and two launches can both
    # see it free).
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(gpus), "--num_machines", "1",
        "--main_process_port", "0",
        "--mixed_precision", "bf16", "--dynamo_backend", "no",
        "-m", "arcjobs.steps.train",
        params.model_dump_json(), str(ctx.out), str(ctx.scratch),
    ]  # fmt: skip
    print("train: " + " ".join(cmd[:-3]) + " ...", flush=True)
    code = subprocess.run(cmd).returncode
    if code:
        raise SystemExit(code)


KIND = StepKind(
    name="train",
    params=Params,
    run=run,
    image="train",
    description="Fine-tune the model (LoRA/rsLoRA/DoRA or full) on a relabelled dataset with TRL.",
    check_job=check_job,
)

if __name__ == "__main__":  # one rank under `accelerate launch` (see `_launch`)
    train(Params.model_validate_json(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
