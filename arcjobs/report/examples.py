"""Example tasks for the report: which ones to show, their grids and the best predictions.

By default the page shows what a researcher looks at first after a round of learning: tasks
newly solved (what learning bought) and tasks still unsolved (what it did not), a few each.
For every example it shows the task (train pairs, test inputs, expected outputs), and for
the reference evaluate step and each run's last one, the attempts that step submitted (chosen
from train evidence only) and the program that did best on the task, read from the
executions that step scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError
from arcjobs.report.collect import EvalInfo, ReportData, eval_label, host_path

NEWLY_SOLVED = 3
EXAMPLES = 5
MAX_TRAIN_PAIRS = 3


@dataclass
class Attempts:
    """What one evaluate step predicted for a task."""

    label: str
    tries: list[list[Any]]  # per test input: the submitted attempts (grids)
    hits: list[list[bool]] | None  # per test input, per attempt: right? (None: answers unknown)
    program: dict[str, Any] | None  # the best execution record for the task, if found


@dataclass
class Example:
    task_id: str
    why: str
    train: list[tuple[Any, Any]] = field(default_factory=list)
    train_total: int = 0
    test_inputs: list[Any] = field(default_factory=list)
    test_outputs: list[Any] | None = None
    attempts: list[Attempts] = field(default_factory=list)
    note: str | None = None  # why the grids are missing, when they are


def choose(data: ReportData, requested: list[str] | None) -> list[tuple[str, str]]:
    """(task id, why it is shown): the requested ones, else newly solved then unsolved."""
    scored = {tid for ev in data.evals for tid in ev.per_task}
    if requested:
        unknown = [t for t in requested if t not in scored]
        if unknown:
            raise UserError(
                f"--tasks: {unknown[0]!r} is not scored by any evaluate step of these runs"
            )
        return [(t, "requested") for t in dict.fromkeys(requested)]
    chosen: dict[str, str] = {}
    for ev in data.evals[1:]:
        for tid in data.compare(ev).newly_solved:
            if len(chosen) < NEWLY_SOLVED:
                chosen.setdefault(tid, f"newly solved by {eval_label(data, ev)}")
    last = data.runs[0].evals[-1]
    solved = last.solved()
    for tid in sorted(last.per_task):
        if len(chosen) < EXAMPLES and tid not in solved:
            chosen.setdefault(tid, _status(data, tid))
    for tid in sorted(last.per_task):
        if len(chosen) < EXAMPLES:
            chosen.setdefault(tid, _status(data, tid))
    return list(chosen.items())


def _status(data: ReportData, tid: str) -> str:
    """Which evaluate steps solve the task, and how close the others came (its best
    correct-grids ratio)."""
    scoring = [ev for ev in data.evals if tid in ev.per_task]
    solving = [eval_label(data, ev) for ev in scoring if tid in ev.solved()]
    if len(solving) == len(scoring):
        return "solved by every evaluate step"
    closest = max(scoring, key=lambda ev: ev.per_task[tid].get("correct_grids") or 0.0)
    ratio = closest.per_task[tid].get("correct_grids") or 0.0
    near = f"closest: {ratio:.2f} of its grids right, in {eval_label(data, closest)}"
    if not solving:
        return f"solved by no evaluate step ({near})"
    return f"solved by {', '.join(solving)}, not by the others ({near})"


def shown_evals(data: ReportData) -> list[EvalInfo]:
    """The reference evaluate step and each run's last one (before vs after learning)."""
    picked = [data.reference] + [run.evals[-1] for run in data.runs]
    return list({id(ev): ev for ev in picked}.values())


def best_programs(paths: list[Path], task_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Per task, the execution that did best: right everywhere, then most train pairs right,
    then the shortest code. Streams the files and parses only lines naming a wanted task,
    because an executions file of a full run holds hundreds of thousands of lines."""
    best: dict[str, tuple[tuple, dict[str, Any]]] = {}
    try:
        for path in paths:
            for line in _lines(path / "executions.jsonl" if path.is_dir() else path):
                if not any(tid in line for tid in task_ids):
                    continue
                rec = json.loads(line)
                if rec.get("task_id") not in task_ids or rec.get("status") != "ok":
                    continue
                train = rec.get("train_correct") or []
                test = rec.get("test_correct") or []
                rank = (
                    all(train) and all(test),
                    sum(map(bool, train)),
                    -len(rec.get("code") or ""),
                )
                if rec["task_id"] not in best or rank > best[rec["task_id"]][0]:
                    best[rec["task_id"]] = (rank, rec)
    except (OSError, ValueError):
        return {}  # the page still shows the submitted attempts
    return {tid: rec for tid, (_, rec) in best.items()}


def _lines(path: Path) -> Iterator[str]:
    with open(path) as f:
        yield from f


def _load_task(ev: EvalInfo, data_root: Path, tid: str) -> Any:
    from arcjobs.arc.tasks import BUILTIN, load_dataset

    dataset = ev.dataset if ev.dataset in BUILTIN else str(host_path(data_root, ev.dataset))
    solutions = str(host_path(data_root, ev.solutions)) if ev.solutions else None
    return load_dataset(dataset, task_ids=[tid], solutions=solutions)[tid]


def build(data: ReportData, chosen: list[tuple[str, str]]) -> list[Example]:
    from arcjobs.arc.grids import grid_to_list, grids_equal

    evals = shown_evals(data)
    wanted = {tid for tid, _ in chosen}
    programs = {id(ev): best_programs(ev.executions, wanted) for ev in evals}
    examples = []
    for tid, why in chosen:
        ex = Example(task_id=tid, why=why)
        source = next(ev for ev in data.evals if tid in ev.per_task)
        try:
            task = _load_task(source, data.data_root, tid)
        except UserError as e:
            ex.note = f"task grids unavailable here: {e}"
            examples.append(ex)
            continue
        ex.train = [(grid_to_list(i), grid_to_list(o)) for i, o in task.train[:MAX_TRAIN_PAIRS]]
        ex.train_total = len(task.train)
        ex.test_inputs = [grid_to_list(g) for g in task.test_inputs]
        if task.test_outputs is not None:
            ex.test_outputs = [grid_to_list(g) for g in task.test_outputs]
        for ev in evals:
            if tid not in ev.submission:
                continue
            made = ev.per_task.get(tid, {}).get("attempts_made")
            tries = [list(entry.values()) for entry in ev.submission[tid]]
            if made is not None:  # the rest is the submission's padding, not a prediction
                tries = [ts[:k] for ts, k in zip(tries, made, strict=False)]
            hits = None
            if ex.test_outputs is not None:
                hits = [
                    [grids_equal(t, y) for t in ts]
                    for ts, y in zip(tries, ex.test_outputs, strict=False)
                ]
            ex.attempts.append(
                Attempts(eval_label(data, ev), tries, hits, programs[id(ev)].get(tid))
            )
        examples.append(ex)
    return examples
