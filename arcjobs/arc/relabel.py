"""Hindsight relabelling and selection: turn executed programs into training samples.

A program that ran cleanly is a correct solution of *some* task: the one whose outputs are
what it produced. For each such prediction we build that task in the frame the program saw
(its augmentation re-applied to the original inputs and to its de-augmented outputs, which
is exactly what it returned), and the sample is (BARC prompt of that task, the program).
Programs that behave identically (same fingerprint) are one sample, with the shortest code.
Per task, samples are ranked by how close they came to the real train outputs — never the
test outputs, which a test-time method cannot know — and the top k are kept.
"""

from __future__ import annotations

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
    """

    per_task: int = 8
    rank_by: RankBy = "correct_grids"
    keep_solved: bool = True
    augment: bool = True


@dataclass(frozen=True)
class _Candidate:
    ex: Execution
    score: PredictionScore

    def rank_key(self, rank_by: RankBy) -> tuple[Any, ...]:
        s, code = self.score, self.ex.code or ""
        first, second = s.train_correct_ratio, s.train_pixel_mean
        if rank_by == "pixel":
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


def sample(task: Task, ex: Execution, source: str) -> dict[str, Any]:
    """One prompt–completion training sample (TRL conversational format)."""
    return {
        "task_id": task.task_id,
        "sample_id": ex.sample_id,
        "source": source,
        "prompt": build_messages(relabelled_task(task, ex), test_index=ex.test_index),
        "completion": [assistant_message(ex.code)],
    }


def relabel(
    tasks: dict[str, Task], executions: Iterable[Execution], options: Options
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(samples in task-id then rank order, stats)."""
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
    samples, per_task = [], {}
    for tid, by_fp in best.items():
        if tid in solved and not options.keep_solved:
            continue
        ranked = sorted(by_fp.values(), key=lambda c: c.rank_key(options.rank_by))
        chosen = ranked[: options.per_task]
        per_task[tid] = len(chosen)
        for c in chosen:
            source = "correct" if c.score.train_pass else "relabelled"
            samples.append(sample(tasks[tid], c.ex, source))
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
    }
    return samples, stats
