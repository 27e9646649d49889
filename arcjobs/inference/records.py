"""predictions.jsonl lines and summary.json: what the infer step hands to execute and relabel.

One line per completion, in plan order (task, prompt, sample), with deterministic bytes for a
seed; timings live in summary.json only. Sampled on a relabel dataset's prompts (infer's
`prompts`), a line also names the training sample (`trained_sample_id`). `text` is the whole
assistant message — the pre-filled prefix included — so `extract_code(text)` and the relabel
step's training samples see exactly what the model's answer was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from arcjobs.arc.prompts import extract_code
from arcjobs.inference.plan import Draw, assistant_text
from arcjobs.inference.types import Completion, PromptRequest


def sample_id(task_id: str, prompt_index: int, sample_index: int) -> str:
    """Stable for a seed: the plan fixes what prompt p of a task is, the engine sample s of it."""
    return f"{task_id}.{prompt_index}.{sample_index}"


def prediction_lines(
    requests: list[PromptRequest],
    results: list[list[Completion]],
    *,
    model: str,
    adapter: str | None,
    prefill: bool,
) -> Iterator[dict[str, Any]]:
    """One predictions.jsonl object per completion."""
    for request, completions in zip(requests, results, strict=True):
        trained = {}
        if request.trained_sample_id is not None:
            trained = {"trained_sample_id": request.trained_sample_id}
        for s, completion in enumerate(completions):
            text = assistant_text(completion.text, prefill)
            yield trained | {
                "task_id": request.task_id,
                "sample_id": sample_id(request.task_id, request.prompt_index, s),
                "test_index": request.test_index,
                "augmentation": request.augmentation,
                "shuffle_seed": request.shuffle_seed,
                "model": model,
                "adapter": adapter,
                "prompt_tokens": len(request.token_ids),
                "completion_tokens": completion.tokens,
                "finish_reason": completion.finish_reason,
                "text": text,
                "code": extract_code(text),
            }


def to_jsonl(lines: Iterator[dict[str, Any]]) -> tuple[str, dict[str, int]]:
    """The file's text and counts of completions, programs found, and completion tokens."""
    out, counts = [], {"completions": 0, "with_code": 0, "completion_tokens": 0}
    for line in lines:
        out.append(json.dumps(line, sort_keys=True) + "\n")
        counts["completions"] += 1
        counts["with_code"] += line["code"] is not None
        counts["completion_tokens"] += line["completion_tokens"]
    return "".join(out), counts


def summary(
    *,
    requests: list[PromptRequest],
    skipped: list[Draw],
    counts: dict[str, int],
    seconds: float,
    load_seconds: float,
    info: dict[str, Any],
) -> dict[str, Any]:
    """summary.json: counts, throughput over the generation phase (model loading apart)."""
    rate = (lambda x: round(x / seconds, 3)) if seconds > 0 else (lambda x: None)
    return {
        **info,
        "prompts": len(requests),
        "skipped_prompts": len(skipped),
        "skipped": [
            {"task_id": d.task_id, "prompt_index": d.prompt_index, "test_index": d.test_index}
            for d in skipped
        ],
        "prompt_tokens": sum(len(r.token_ids) for r in requests),
        **counts,
        "load_seconds": round(load_seconds, 3),
        "generate_seconds": round(seconds, 3),
        "tokens_per_s": rate(counts["completion_tokens"]),
        "programs_per_s": rate(counts["completions"]),
    }
