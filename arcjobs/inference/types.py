"""The contract between the prompt plan, the engines and the records (plain data, no torch).

Both engines take the same `PromptRequest`s and `Sampling` and return, for each request in
order, exactly `samples_per_prompt` `Completion`s, so the step, the tests and the benchmark
treat them interchangeably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """How to sample. `seed` is the step's seed; each request also carries its own."""

    samples_per_prompt: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    stop_token_ids: tuple[int, ...]


@dataclass(frozen=True)
class PromptRequest:
    """One prompt: a test input of a task under one augmentation and train-pair order.

    token_ids: the whole prompt, exactly one BOS, ending where the model continues (after
        the assistant header, and after the pre-filled prefix when there is one).
    seed: this prompt's own sampling seed, drawn from the step seed, the task id and the
        prompt index; vLLM uses it (unless `per_prompt_seeds` is off), so that a prompt
        samples the same way whatever other prompts share its batch or GPU.
    trained_sample_id: the training sample whose prompt this is, when the step samples on a
        relabel dataset's prompts (infer's `prompts`); None for prompts drawn from the tasks.
    """

    task_id: str
    prompt_index: int
    test_index: int
    augmentation: dict[str, Any] | None
    shuffle_seed: int | None
    seed: int
    token_ids: tuple[int, ...]
    trained_sample_id: str | None = None


@dataclass(frozen=True)
class Completion:
    """What the model generated after the prompt (pre-filled prefix not included).

    tokens counts the generated tokens including the stop token when there was one;
    finish_reason is "stop" (a stop token ended it) or "length" (max_new_tokens did).
    """

    text: str
    tokens: int
    finish_reason: str


@dataclass(frozen=True)
class Timed:
    """An engine's completions (per request, in order) with its load and generation seconds.

    Throughput is reported over generation only: loading an 8B model (and vLLM's graph
    capture) takes minutes that do not grow with the number of programs sampled.
    """

    results: list[list[Completion]]
    load_seconds: float
    generate_seconds: float
