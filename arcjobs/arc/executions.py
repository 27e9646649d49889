"""The executions file (written by the execute step) as validated records.

One JSON line per executed prediction: task_id, sample_id, status, error, code,
augmentation, train_outputs / test_outputs (one grid or null per input, already mapped back
to the original task frame, or null when the program produced nothing), fingerprint, and
optionally test_index (which test input the prompt showed; 0 when absent). A null
augmentation means none (the identity). Grids are kept as
the JSON values they are — a program may have returned floats, and the metrics must see that
rather than a cast that hides it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.jsonl import read_jsonl
from arcjobs.arc.statuses import STATUSES
from arcjobs.arc.tasks import Task
from arcjobs.errors import UserError

# The program ran to the end on every input (its outputs may still be malformed).
RAN = ("ok", "invalid_output")
FILENAME = "executions.jsonl"


@dataclass(frozen=True)
class Execution:
    task_id: str
    sample_id: Any
    status: str
    code: str | None
    augmentation: Augmentation
    test_index: int
    train_outputs: list[Any] | None
    test_outputs: list[Any] | None

    def record(self) -> dict[str, Any]:
        """The execution as a line of an executions file (what `read_executions` reads)."""
        return {
            "task_id": self.task_id,
            "sample_id": self.sample_id,
            "status": self.status,
            "code": self.code,
            "augmentation": None if self.augmentation.is_identity else self.augmentation.to_dict(),
            "test_index": self.test_index,
            "train_outputs": self.train_outputs,
            "test_outputs": self.test_outputs,
        }


def resolve(path: str, filename: str = FILENAME) -> Path:
    """The executions file itself, or `filename` inside a step's output directory."""
    p = Path(path)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    return p


def read_executions(path: str, tasks: dict[str, Task], dataset: str) -> Iterator[Execution]:
    """Stream the executions of `path`, checking each line against the dataset's tasks.

    A line for a task not in the (selected) dataset, or with outputs that don't line up with
    the task's inputs, is an error: scoring it against the wrong task would be silent nonsense.
    """
    for execution, _ in read_with_lines(path, tasks, dataset):
        yield execution


def read_with_lines(
    path: str, tasks: dict[str, Task], dataset: str, filename: str = FILENAME
) -> Iterator[tuple[Execution, dict[str, Any]]]:
    """`read_executions`, each execution with its line's object: for the fields an Execution
    does not keep (a relabel's `selected.jsonl` adds the model's `text`), in the same pass."""
    p = resolve(path, filename)
    for lineno, obj in read_jsonl(p, "reading executions"):
        yield _parse(obj, tasks, f"{p}:{lineno}", dataset), obj


def read_all(paths: list[str], tasks: dict[str, Task], dataset: str) -> Iterator[Execution]:
    """The executions of every file in `paths`, one after the other: several searches
    scored or relabelled together, as one search over their whole budget."""
    for path in paths:
        yield from read_executions(path, tasks, dataset)


def _parse(obj: dict[str, Any], tasks: dict[str, Task], where: str, dataset: str) -> Execution:
    for key in ("task_id", "sample_id", "status"):
        if key not in obj:
            raise UserError(f"{where}: missing key {key!r}")
    tid = obj["task_id"]
    task = tasks.get(tid)
    if task is None:
        raise UserError(f"{where}: unknown task id {tid!r} (not in dataset {dataset})")
    status = obj["status"]
    if status not in STATUSES:
        raise UserError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    code = obj.get("code")
    if code is not None and not isinstance(code, str):
        raise UserError(f"{where}: code must be a string or null")
    try:
        aug = Augmentation.from_dict(obj.get("augmentation"))
    except (ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{where}: bad augmentation: {e}") from None
    test_index = obj.get("test_index", 0)
    if not isinstance(test_index, int) or not 0 <= test_index < len(task.test_inputs):
        raise UserError(f"{where}: test_index {test_index!r} out of range for task {tid}")
    outputs = {}
    for key, n in (("train_outputs", len(task.train)), ("test_outputs", len(task.test_inputs))):
        value = obj.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != n):
            raise UserError(f"{where}: {key} must be null or a list of {n} grids (task {tid})")
        outputs[key] = value
    return Execution(
        task_id=tid,
        sample_id=obj["sample_id"],
        status=status,
        code=code,
        augmentation=aug,
        test_index=test_index,
        **outputs,
    )
