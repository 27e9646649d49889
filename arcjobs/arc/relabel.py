"""Hindsight relabelling and selection: turn executed programs into training samples.

A program that ran cleanly is a correct solution of *some* task: the one whose outputs are
what it produced. For each such prediction we build that task in the frame the program saw
(its augmentation re-applied to the original inputs and to its de-augmented outputs, which
is exactly what it returned), and the sample is (BARC prompt of that task, the program).
Programs that behave identically (same fingerprint) are one sample, with the shortest code.
Per task, samples are ranked by how close they came to the real train outputs — never the
test outputs, which a test-time method cannot know, unless `Options.rank_with_test` says so
(the seed study did; its results then used the test answers) — and the top k are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from arcjobs.arc.executions import Execution
from arcjobs.arc.prompts import assistant_message, build_messages
from arcjobs.arc.scoring import PredictionScore, score_prediction
from arcjobs.arc.tasks import Task

RankBy = Literal["correct_grids", "pixel"]


@dataclass(frozen=True)
class Options:
    """per_task: samples kept per task (top k after ranking and deduplication).
    rank_by: "correct_grids" ranks by (train grids correct, pixel similarity, shorter code);
        "pixel" by (pixel similarity, train grids correct, shorter code).
    keep_solved: keep tasks some program already solves on every train pair (their samples
        then include the solution itself); False drops them to spend training on the rest.
    augment: True relabels every prediction in the frame its program ran in, augmented or
        not; False keeps only predictions made on the un-augmented task.
    rank_with_test: rank by the test outputs too (the correct-grids ratio over train and
        test, as the seed study did): it uses the answers, so a score after it is no test-time
        result.
    shuffle_train: shuffle each sample's train pairs (seeded by the sample), as the search's
        prompts were when it shuffled them.
    texts: the model's whole answer per (task id, sample id), to train on instead of the
        re-fenced program (a completion in the model's own words); None trains on the code.
    """

    per_task: int = 8
    rank_by: RankBy = "correct_grids"
    keep_solved: bool = True
    augment: bool = True
    rank_with_test: bool = False
    shuffle_train: bool = False
    texts: dict[tuple[str, str], str] | None = None


@dataclass(frozen=True)
class _Candidate:
    ex: Execution
    score: PredictionScore

    def rank_key(self, options: Options) -> tuple[Any, ...]:
        s, code = self.score, self.ex.code or ""
        if options.rank_with_test:
            first, second = s.correct_grids, s.pixel
        else:
            first, second = s.train_correct_ratio, s.train_pixel_mean
        if options.rank_by == "pixel":
            first, second = second, first
        return (-first, -second, len(code), code)


def relabelled_task(task: Task, ex: Execution) -> Task:
    """The task `ex`'s program solves exactly: its own outputs, in the frame it ran in."""
    aug = ex.augmentation

    def out(g: Any) -> np.ndarray:
        return aug.apply(np.asarray(g, dtype=np.int64))

    return Task(
        task_id=task.task_id,
        train=[
            (aug.apply(x), out(y)) for (x, _), y in zip(task.train, ex.train_outputs, strict=True)
        ],
        test_inputs=[aug.apply(x) for x in task.test_inputs],
        test_outputs=[out(y) for y in ex.test_outputs],
    )


def sample(task: Task, ex: Execution, source: str, options: Options) -> dict[str, Any]:
    """One prompt–completion training sample (TRL conversational format)."""
    shuffle = _seed(task.task_id, ex.sample_id) if options.shuffle_train else None
    text = (options.texts or {}).get((task.task_id, str(ex.sample_id)))
    return {
        "task_id": task.task_id,
        "sample_id": ex.sample_id,
        "source": source,
        "prompt": build_messages(relabelled_task(task, ex), ex.test_index, None, shuffle),
        "completion": [
            {"role": "assistant", "content": text} if text else assistant_message(ex.code)
        ],
    }


def _seed(task_id: str, sample_id: Any) -> int:
    """A stable shuffle seed for one sample (Python's hash() varies between processes)."""
    digest = hashlib.sha256(f"{task_id}\0{sample_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def relabel(
    tasks: dict[str, Task], executions: Iterable[Execution], options: Options
) -> tuple[list[dict[str, Any]], dict[str, Any], list[Execution]]:
    """(samples in task-id then rank order, stats, the executions they came from)."""
    best: dict[str, dict[str, _Candidate]] = {tid: {} for tid in tasks}
    solved: set[str] = set()
    seen = valid = 0
    for ex in executions:
        seen += 1
        task = tasks[ex.task_id]
        s = score_prediction(task, ex)
        if s.train_pass:
            solved.add(ex.task_id)
        if not s.valid_outputs or not ex.code:
            continue
        if not options.augment and not ex.augmentation.is_identity:
            continue
        valid += 1
        kept = best[ex.task_id].get(s.fingerprint)
        if kept is None or (len(ex.code), ex.code) < (len(kept.ex.code), kept.ex.code):
            best[ex.task_id][s.fingerprint] = _Candidate(ex, s)
    samples, per_task, selected = [], {}, []
    for tid, by_fp in best.items():
        if tid in solved and not options.keep_solved:
            continue
        ranked = sorted(by_fp.values(), key=lambda c: c.rank_key(options))
        chosen = ranked[: options.per_task]
        per_task[tid] = len(chosen)
        for c in chosen:
            source = "correct" if c.score.train_pass else "relabelled"
            samples.append(sample(tasks[tid], c.ex, source, options))
            selected.append(c.ex)
    correct = sum(s["source"] == "correct" for s in samples)
    stats = {
        "tasks": len(tasks),
        "tasks_with_samples": sum(1 for v in per_task.values() if v),
        "solved_tasks": len(solved),
        "dropped_solved_tasks": 0 if options.keep_solved else len(solved),
        "predictions": seen,
        "usable_predictions": valid,
        "unique_behaviours": sum(len(v) for v in best.values()),
        "samples": len(samples),
        "fraction_correct": correct / len(samples) if samples else 0.0,
        "samples_per_task": per_task,
        "uses_test_answers": options.rank_with_test,
    }
    return samples, stats, selected
