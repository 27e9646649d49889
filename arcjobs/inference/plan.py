"""The prompt plan: which prompts a step sends, and their token ids.

Every choice is seeded from (step seed, task id, prompt index) alone, so prompt `p` of a task
is the same prompt — same test input, augmentation, train order and sampling seed — whatever
other tasks are selected, however the prompts are batched or sharded across GPUs. That is
what makes sample ids (`task.prompt.sample`) stable for a seed.

Token ids are rendered by the tokenizer's own chat template straight to ids, never to text
and back (re-encoding text that already holds `<|begin_of_text|>` doubles the BOS). With
`prefill`, the BARC answer's first sentence and its newline are appended as ids after the
assistant header, so the model continues the assistant message exactly where every trained
answer continues it: with the ```` ```python ```` fence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.prompts import ASSISTANT_PREFIX, build_messages
from arcjobs.arc.tasks import Task
from arcjobs.errors import UserError
from arcjobs.inference.types import PromptRequest

# What the pre-filled assistant turn holds; a prediction's text starts with it.
PREFILL_TEXT = ASSISTANT_PREFIX + "\n"


@dataclass(frozen=True)
class Draw:
    """The random choices for one prompt, before tokenization."""

    task_id: str
    prompt_index: int
    test_index: int
    augmentation: Augmentation | None
    shuffle_seed: int | None
    seed: int


def _task_key(task_id: str) -> int:
    """A stable integer for a task id (Python's hash() varies between processes)."""
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "little")


def draw(
    task: Task,
    prompt_index: int,
    *,
    augment: bool,
    shuffle_train: bool,
    seed: int,
    permute_black: float = 0.0,
) -> Draw:
    """The choices for prompt `prompt_index` of `task`.

    All values are drawn every time, in a fixed order, so switching `augment` or
    `shuffle_train` off changes nothing else (the same test input, the same sampling seed).
    With probability `permute_black` the colour permutation moves black too (the seed study
    does so with 0.1); that choice is drawn after the others, so that 0 gives exactly the
    prompts it always gave.
    """
    rng = np.random.default_rng([seed, _task_key(task.task_id), prompt_index])
    test_index = int(rng.integers(len(task.test_inputs)))
    augmentation = Augmentation.random(rng)
    shuffle_seed = int(rng.integers(2**31))
    sample_seed = int(rng.integers(2**31))
    if rng.random() < permute_black:
        colors = Augmentation.random(rng, permute_black=True).colors
        augmentation = Augmentation(augmentation.dihedral, colors)
    return Draw(
        task_id=task.task_id,
        prompt_index=prompt_index,
        test_index=test_index,
        augmentation=augmentation if augment else None,
        shuffle_seed=shuffle_seed if shuffle_train else None,
        seed=sample_seed,
    )


def _ids(encoded: Any) -> list[int]:
    """Token ids from apply_chat_template/encode, whichever container this version returns."""
    if hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]], prefill: bool) -> list[int]:
    """The prompt's token ids: the chat template with the assistant header, plus the prefix."""
    ids = _ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))
    if prefill:
        ids += _ids(tokenizer.encode(PREFILL_TEXT, add_special_tokens=False))
    return ids


def assistant_text(completion: str, prefill: bool) -> str:
    """The whole assistant message: what `extract_code` and the relabel step expect."""
    return PREFILL_TEXT + completion if prefill else completion


def build_requests(
    tasks: dict[str, Task],
    prompts_per_task: int,
    tokenizer: Any,
    *,
    augment: bool,
    shuffle_train: bool,
    prefill: bool,
    seed: int,
    max_prompt_tokens: int,
    progress: Callable[[], None] | None = None,
    permute_black: float = 0.0,
) -> tuple[list[PromptRequest], list[Draw]]:
    """Every prompt of the plan that fits `max_prompt_tokens`, and the draws that did not.

    Too-long prompts are skipped, never truncated: a truncated BARC prompt loses train pairs
    or the test input, and its programs would be scored against a task the model never saw.
    `progress` is called once per prompt (tens of thousands take minutes to tokenize).
    """
    requests: list[PromptRequest] = []
    skipped: list[Draw] = []
    for task in tasks.values():
        for p in range(prompts_per_task):
            d = draw(
                task,
                p,
                augment=augment,
                shuffle_train=shuffle_train,
                seed=seed,
                permute_black=permute_black,
            )
            messages = build_messages(task, d.test_index, d.augmentation, d.shuffle_seed)
            ids = encode_prompt(tokenizer, messages, prefill)
            if progress is not None:
                progress()
            if len(ids) > max_prompt_tokens:
                skipped.append(d)
                continue
            requests.append(_request(d, ids))
    return requests, skipped


def sample_requests(
    samples: list[dict[str, Any]],
    tasks: dict[str, Task],
    tokenizer: Any,
    *,
    prefill: bool,
    seed: int,
    max_prompt_tokens: int,
) -> tuple[list[PromptRequest], list[Draw]]:
    """One request per training sample of a selected task, its prompt exactly as trained.

    The k-th sample of a task is its prompt k, with prompt k's sampling seed from `draw`; the
    prompt's frame is the relabelled task's own, so no augmentation is recorded. Too-long
    prompts are skipped, as in `build_requests`.
    """
    requests: list[PromptRequest] = []
    skipped: list[Draw] = []
    index: dict[str, int] = {}
    for sample in samples:
        task = tasks.get(sample.get("task_id"))
        if task is None:
            continue
        p = index[task.task_id] = index.get(task.task_id, -1) + 1
        # the training prompt asks for test input 0, whatever test the draw would pick
        d = replace(draw(task, p, augment=False, shuffle_train=False, seed=seed), test_index=0)
        ids = encode_prompt(tokenizer, sample["prompt"], prefill)
        if len(ids) > max_prompt_tokens:
            skipped.append(d)
            continue
        requests.append(_request(d, ids, trained_sample_id=str(sample.get("sample_id", p))))
    return requests, skipped


def _request(d: Draw, ids: list[int], **fields: Any) -> PromptRequest:
    """The request for draw `d`, with its token ids; `fields` replace what the draw says."""
    drawn = {
        "task_id": d.task_id,
        "prompt_index": d.prompt_index,
        "test_index": d.test_index,
        "augmentation": None if d.augmentation is None else d.augmentation.to_dict(),
        "shuffle_seed": d.shuffle_seed,
        "seed": d.seed,
        "token_ids": tuple(ids),
    }
    return PromptRequest(**{**drawn, **fields})


def _config(model_dir: Path, name: str) -> dict[str, Any]:
    path = model_dir / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None


def _as_ids(value: Any) -> set[int]:
    if value is None:
        return set()
    return {int(v) for v in (value if isinstance(value, list) else [value])}


def stop_token_ids(model_dir: Path, tokenizer: Any) -> tuple[int, ...]:
    """Every token that ends a turn: the tokenizer's eos, the model's eos list, `<|eot_id|>`.

    Llama-3.1 configs list several (`<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>`); BARC's
    answers end with `<|eot_id|>`, which is also the tokenizer's eos.
    """
    stops = _as_ids(tokenizer.eos_token_id)
    stops |= _as_ids(_config(model_dir, "generation_config.json").get("eos_token_id"))
    stops |= _as_ids(_config(model_dir, "config.json").get("eos_token_id"))
    eot = tokenizer.get_vocab().get("<|eot_id|>")
    if eot is not None:
        stops.add(int(eot))
    return tuple(sorted(stops))


def context_length(model_dir: Path, max_model_len: int | None) -> int:
    """The context the engine will run with: the model's, or `max_model_len` when smaller."""
    config = _config(model_dir, "config.json")
    config = config.get("text_config", config)
    model_max = config.get("max_position_embeddings")
    if not isinstance(model_max, int):
        if max_model_len is None:
            raise UserError(
                f"{model_dir / 'config.json'}: no max_position_embeddings; set max_model_len"
            )
        return max_model_len
    return min(model_max, max_model_len) if max_model_len else model_max
