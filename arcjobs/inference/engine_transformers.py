"""Engine `transformers`: batched `generate`, for CPUs, the tiny model, tests and GPUs without vLLM.

Prompts are sorted by length and batched `batch_size` at a time, left-padded with the
project's pad token (never eos: see `arcjobs.models.tokenizer`), and each is sampled
`samples_per_prompt` times in the same call (`num_return_sequences`), so a prompt is encoded
once per batch. Sampling is seeded once per step: the samples are reproducible for the same
seed, prompts and `batch_size` (unlike vLLM's per-request seeds, a batch shares one RNG).

`top_k` is switched off (transformers defaults to 50, vLLM to none) so that both engines
sample from the same distribution for the same temperature and top_p.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError
from arcjobs.inference.types import Completion, PromptRequest, Sampling, Timed


def require_adapter_dir(adapter: str | Path) -> Path:
    """A PEFT adapter directory (adapter_config.json inside), or a UserError naming it."""
    p = Path(adapter)
    if not (p / "adapter_config.json").is_file():
        raise UserError(f"{p}: not a PEFT adapter directory (no adapter_config.json)")
    return p


def load(model_dir: Path, adapter: str | None, tokenizer: Any, device: str) -> Any:
    """The model in eval mode on `device`, with the adapter (if any) merged into its weights.

    Merged, a LoRA costs nothing per generated token; left as a PEFT wrapper it adds two
    small matmuls to every adapted layer at every step.
    """
    from arcjobs.models.loading import load_model

    model = load_model(model_dir, dtype="float32" if device == "cpu" else None)
    if adapter is not None:
        from peft import PeftModel

        path = require_adapter_dir(adapter)
        try:
            model = PeftModel.from_pretrained(model, path, is_trainable=False)
        except (OSError, ValueError, RuntimeError) as e:
            raise UserError(f"{path}: cannot load adapter: {str(e).splitlines()[0]}") from None
        model = model.merge_and_unload()
    model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    return model


def _completion(row: list[int], stops: set[int], tokenizer: Any) -> Completion:
    """Cut one generated row at its first stop token (kept in the count) and decode it."""
    end = next((i for i, t in enumerate(row) if t in stops), None)
    kept = row if end is None else row[: end + 1]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    return Completion(
        text=text, tokens=len(kept), finish_reason="length" if end is None else "stop"
    )


def generate(
    model: Any,
    tokenizer: Any,
    requests: list[PromptRequest],
    sampling: Sampling,
    batch_size: int,
    progress: Any = None,
) -> list[list[Completion]]:
    """`samples_per_prompt` completions for each request, in the requests' order.

    `progress`, when given, is called with the number of completions finished after each batch.
    """
    import torch
    from transformers import GenerationConfig

    k = sampling.samples_per_prompt
    sample = sampling.temperature > 0
    config = GenerationConfig(
        do_sample=sample,
        temperature=sampling.temperature if sample else None,
        top_p=sampling.top_p if sample else None,
        top_k=0 if sample else None,
        max_new_tokens=sampling.max_new_tokens,
        num_return_sequences=k,
        eos_token_id=list(sampling.stop_token_ids),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    stops = set(sampling.stop_token_ids)
    device = next(model.parameters()).device
    torch.manual_seed(sampling.seed)
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].token_ids))
    results: list[list[Completion]] = [[] for _ in requests]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        enc = tokenizer.pad(
            {"input_ids": [list(requests[i].token_ids) for i in batch]},
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            out = model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                generation_config=config,
            )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        for j, i in enumerate(batch):
            results[i] = [_completion(row, stops, tokenizer) for row in new[j * k : (j + 1) * k]]
        if progress is not None:
            progress(len(batch) * k)
    return results


def run_engine(
    model_dir: Path,
    adapter: str | None,
    tokenizer: Any,
    requests: list[PromptRequest],
    sampling: Sampling,
    batch_size: int,
    device: str,
) -> Timed:
    """Load the model, then generate every request with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    started = time.perf_counter()
    model = load(model_dir, adapter, tokenizer, device)
    loaded = time.perf_counter()
    bar = Progress(
        TextColumn(f"sampling on {device}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("sampling", total=len(requests) * sampling.samples_per_prompt)
        results = generate(
            model,
            tokenizer,
            requests,
            sampling,
            batch_size,
            progress=lambda k: bar.advance(task, k),
        )
    return Timed(results, loaded - started, time.perf_counter() - loaded)
