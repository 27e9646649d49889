"""Training throughput: (A) a plain TRL configuration like the seed's vs (B) the train step's defaults.

Both run in one process on the same synthetic workload, so B/A is a fair ratio on any machine:

- model: Llama-3.1-8B's architecture with random bf16 weights built on the GPU (no download);
  `--cpu-smoke` swaps in the tiny model's sizes so CI can check the script does not rot;
- samples: prompt lengths of the real ARC-AGI-1 evaluation prompts in BARC format (tokenized
  with the tiny tokenizer, whose BPE, like Llama-3's, spends about one token per grid cell),
  plus completions of ~400 tokens (normal, sd 120, clipped to 64..1024); samples longer than
  max_length are dropped as the step drops them; token ids are random;
- A: padded batches, no Liger, gradient checkpointing, per-device batch 1 with accumulation,
  LoRA r32 rsLoRA on q/k/v/o, plain AdamW, SDPA attention (even where flash-attention is
  installed: the seed's setup did not use it);
- B: `arcjobs.steps.train`'s own config builder and adapter with its default parameters
  (flash-attention and padding-free batches where installed).

Reported per configuration, over the steps after `--warmup`: tokens/s (non-pad tokens),
samples/s, peak GPU memory, and MFU = model FLOPs per token x tokens/s / the GPU's dense bf16
peak. Model FLOPs (`flops_per_token`) count the work the model needs, not what a config
spends: not the recomputed forward of gradient checkpointing, not the head's projection of
prompt positions. So both configurations have the same FLOPs per token, and "x A", B's
tokens/s over A's on the same samples in the same process on the same GPU, is also their
MFU ratio.

    python benchmarks/train_throughput.py                 # GPU, 8B architecture
    python benchmarks/train_throughput.py --cpu-smoke     # CPU, tiny, ~1 minute
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Dense bf16 tensor-core peaks (FLOP/s, NVIDIA's datasheets: half the "with sparsity"
# figures), by a fragment of torch.cuda.get_device_name(), most specific first: the PCIe and
# NVL parts share the H100/H200 names and run slower ("NVIDIA H100 PCIe", "NVIDIA H100 NVL";
# the SXM part is "NVIDIA H100 80GB HBM3").
PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A6000", 155e12),
)

LLAMA_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def peak_bf16(gpu_name: str | None) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s, None when unknown (then no MFU is reported)."""
    return next((peak for part, peak in PEAK_BF16 if gpu_name and part in gpu_name), None)


def flops_per_token(sizes: dict[str, int], lengths: list[tuple[int, int]], lora: bool) -> float:
    """Model FLOPs of one training step per trained token, averaged over (prompt, completion)
    lengths: MFU's numerator. Per matmul weight and token, the forward costs 2 FLOPs, the
    gradient of its input 2 and the gradient of the weight 2:

    - body (every layer's q/k/v/o and MLP weights): 6 per weight and token fully fine-tuned,
      4 with LoRA, whose frozen base has no weight gradients (the adapters' own ~1 % is left
      out);
    - embeddings: a lookup, no matmul;
    - LM head: the same factor, but only at completion positions, the only ones with a loss
      (TRL's and Liger's fused heads project nothing else);
    - attention (QK^T and AV, 4 x width FLOPs per query-key pair forward, twice that
      backward): 12 x width per pair and layer, over the causal pairs S(S+1)/2 of each sample.
    """
    d, layers = sizes["hidden_size"], sizes["num_hidden_layers"]
    head_dim = d // sizes["num_attention_heads"]
    kv_width = sizes["num_key_value_heads"] * head_dim
    body = layers * (2 * d * d + 2 * d * kv_width + 3 * d * sizes["intermediate_size"])
    lm_head = d * sizes["vocab_size"]
    per_weight = 4 if lora else 6
    tokens = sum(p + c for p, c in lengths)
    completions = sum(c for _, c in lengths)
    pairs = sum((p + c) * (p + c + 1) // 2 for p, c in lengths)
    total = (
        per_weight * body * tokens + per_weight * lm_head * completions + 12 * layers * d * pairs
    )
    return total / tokens


def sample_lengths(
    tok: Any, n: int, seed: int, scale: float, max_length: int
) -> list[tuple[int, int]]:
    """(prompt, completion) token counts: real BARC prompt lengths, ~400-token completions."""
    import numpy as np

    from arcjobs.arc.prompts import build_messages
    from arcjobs.arc.tasks import load_dataset

    prompts = []
    for task in load_dataset("arc-agi-1/evaluation").values():
        ids = tok.apply_chat_template(build_messages(task), add_generation_prompt=True)
        prompts.append(len(ids["input_ids"] if hasattr(ids, "keys") else ids))
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        p = int(rng.choice(prompts) * scale)
        c = int(np.clip(rng.normal(400, 120), 64, 1024) * scale)
        if p + c <= max_length:
            out.append((max(p, 8), max(c, 4)))
    return out


def synthetic_dataset(lengths: list[tuple[int, int]], vocab: int, seed: int) -> Any:
    """Pre-tokenized rows (input_ids + completion_mask), as TRL accepts them."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, vocab, p + c).tolist() for p, c in lengths]
    masks = [[0] * p + [1] * c for p, c in lengths]
    return Dataset.from_dict({"input_ids": ids, "completion_mask": masks})


def model_sizes(cpu: bool) -> dict[str, Any]:
    """Llama-3.1-8B's architecture, or the tiny model's for the CPU smoke run."""
    from arcjobs.models.tiny import TinySpec

    if not cpu:
        return LLAMA_8B
    s = TinySpec()
    return dict(
        vocab_size=s.vocab_size,
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=s.num_heads,
        num_key_value_heads=s.num_kv_heads,
        max_position_embeddings=s.max_positions,
    )


def build_model(cpu: bool, attn: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**model_sizes(cpu), attn_implementation=attn, pad_token_id=0)
    torch.manual_seed(0)
    if cpu:
        return LlamaForCausalLM(config)
    with torch.device("cuda"):  # initialised in bf16 on the GPU: 16 GB, not 32 GB of fp32 first
        return LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)


class StepClock:
    """Wall-clock time of each optimizer step (a TrainerCallback, made lazily)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Clock(TrainerCallback):
            def __init__(self):
                self.begin: list[float] = []
                self.end: list[float] = []

            def on_step_begin(self, args, state, control, **kw):
                _sync()
                self.begin.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kw):
                _sync()
                self.end.append(time.perf_counter())

        return _Clock()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def config_a(out: Path, global_batch: int, steps: int, cpu: bool) -> tuple[Any, Any]:
    """The seed-like plain setup."""
    from peft import LoraConfig
    from trl import SFTConfig

    sft = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=1,
        gradient_accumulation_steps=global_batch,
        activation_checkpointing=True,
        padding_free=False,
        use_liger_kernel=False,
        optim="adamw_torch",
        bf16=not cpu,
        use_cpu=cpu,
        max_steps=steps,
        max_length=None,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        completion_only_loss=True,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=32,
        lora_alpha=32,
        use_rslora=True,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    return sft, lora


def config_b(out: Path, global_batch: int, per_device: int, steps: int, cpu: bool) -> Any:
    """The train step's defaults, through the step's own config builder."""
    from arcjobs.models.loading import pick_attention
    from arcjobs.steps import train as step

    params = step.Params(
        model="-",
        dataset="-",
        max_steps=steps,
        save_steps=10**9,
        report_to=[],
        **({"global_batch_size": global_batch, "per_device_batch_size": per_device} if cpu else {}),
    )
    liger = step._check_device_options(params, not cpu)
    sft = step._sft_config(params, out, not cpu, liger, pick_attention(None))
    sft.save_strategy = "no"
    return sft, params


def measure(
    name: str, cpu: bool, attn: str, data: Any, tok: Any, sft: Any, adapter: Any
) -> dict[str, Any]:
    import torch
    from peft import get_peft_model
    from trl import SFTTrainer

    from arcjobs.steps import train as step

    model = build_model(cpu, attn)
    if isinstance(adapter, step.Params):
        model = step._peft_model(adapter, model)
    else:
        model = get_peft_model(model, adapter)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clock = StepClock()
    trainer = SFTTrainer(
        model=model, args=sft, train_dataset=data, processing_class=tok, callbacks=[clock]
    )
    trainer.train()
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    result = {
        "name": name,
        "tokens": tokens,
        "clock": clock,
        "global_batch": sft.per_device_train_batch_size * sft.gradient_accumulation_steps,
        "peak_mem": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
        "padding_free": bool(trainer.args.padding_free),
        "liger": bool(trainer.args.use_liger_kernel),
        "attn": model.config._attn_implementation,
    }
    del trainer, model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def summarise(r: dict[str, Any], warmup: int, peak: float | None, flops: float) -> dict[str, Any]:
    clock, tokens = r["clock"], r["tokens"]
    seconds = clock.end[-1] - clock.end[warmup - 1] if warmup else clock.end[-1] - clock.begin[0]
    toks = tokens[-1] - (tokens[warmup - 1] if warmup else 0)
    steps = len(clock.end) - warmup
    tps = toks / seconds
    return {
        "tokens_per_s": tps,
        "samples_per_s": steps * r["global_batch"] / seconds,
        "peak_mem_gib": r["peak_mem"] / 2**30 if r["peak_mem"] else None,
        "mfu": flops * tps / peak if peak else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="Tiny model on CPU, toy scale.")
    ap.add_argument("--steps", type=int, default=None, help="Timed optimizer steps per config.")
    ap.add_argument("--warmup", type=int, default=None, help="Untimed steps first.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="Also write the results here as JSON.")
    args = ap.parse_args()

    import torch

    from arcjobs.models.loading import pick_attention
    from arcjobs.models.tiny import TinySpec, build_tokenizer
    from arcjobs.models.tokenizer import choose_pad

    cpu = args.cpu_smoke
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: run with --cpu-smoke for the CPU toy scale")
    if cpu:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    steps = args.steps or (3 if cpu else 10)
    warmup = args.warmup if args.warmup is not None else (1 if cpu else 2)
    global_batch, per_device = (4, 2) if cpu else (16, 4)
    scale, max_length = (1 / 8, 1024) if cpu else (1.0, 8192)
    total = steps + warmup
    # The tiny tokenizer measures prompt lengths and supplies the pad id (data are token ids).
    tok = build_tokenizer(TinySpec())
    choose_pad(tok)
    lengths = sample_lengths(tok, total * global_batch, args.seed, scale, max_length)
    vocab = 2048 if cpu else LLAMA_8B["vocab_size"]
    data = synthetic_dataset(lengths, vocab, args.seed)
    gpu_name = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    peak = peak_bf16(gpu_name)
    flops = flops_per_token(model_sizes(cpu), lengths, lora=True)

    with tempfile.TemporaryDirectory() as tmp:
        sft_a, lora_a = config_a(Path(tmp) / "a", global_batch, total, cpu)
        sft_b, params_b = config_b(Path(tmp) / "b", global_batch, per_device, total, cpu)
        runs = [
            measure("A", cpu, "sdpa", data, tok, sft_a, lora_a),
            measure("B", cpu, pick_attention(None), data, tok, sft_b, params_b),
        ]
    rows = [(r, summarise(r, warmup, peak, flops)) for r in runs]
    a = rows[0][1]

    machine = gpu_name or f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"\n## train throughput — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- machine: {platform.node()} ({machine}), torch {torch.__version__}")
    print(f"- command: python benchmarks/train_throughput.py {'--cpu-smoke ' if cpu else ''}"
          f"--steps {steps} --warmup {warmup} --seed {args.seed}")  # fmt: skip
    mean_len = sum(p + c for p, c in lengths) / len(lengths)
    print(f"- workload: {len(lengths)} samples, mean {mean_len:.0f} tokens, global batch "
          f"{global_batch}, {steps} timed steps after {warmup}")  # fmt: skip
    print(
        "\n| config | attention | padding-free | liger | tokens/s | samples/s | × A | peak GiB | MFU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r, s in rows:
        mem = f"{s['peak_mem_gib']:.1f}" if s["peak_mem_gib"] else "n/a"
        mfu = f"{100 * s['mfu']:.1f} %" if s["mfu"] else "n/a"
        print(
            f"| {r['name']} | {r['attn']} | {r['padding_free']} | {r['liger']} "
            f"| {s['tokens_per_s']:.0f} | {s['samples_per_s']:.2f} "
            f"| {s['tokens_per_s'] / a['tokens_per_s']:.2f} | {mem} | {mfu} |"
        )
    print(
        f"\n× A: tokens/s over A's (same samples, order, process and device). MFU: "
        f"{flops:.3g} FLOP per token (LoRA model FLOPs: `flops_per_token`) over "
        f"{'the dense bf16 peak of ' + gpu_name if peak else 'no known peak'}."
    )
    if args.json:
        results = {
            "machine": machine,
            "torch": torch.__version__,
            "gpu": gpu_name,
            "peak_bf16_flops": peak,
            "flops_per_token": flops,
            "steps": steps,
            "warmup": warmup,
            "configs": {
                r["name"]: {
                    **s,
                    "attention": r["attn"],
                    "padding_free": r["padding_free"],
                    "liger": r["liger"],
                    "x_a": s["tokens_per_s"] / a["tokens_per_s"],
                }
                for r, s in rows
            },
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
