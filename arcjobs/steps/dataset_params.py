"""Parameters shared by every step that reads an ARC dataset (evaluate, relabel, infer).

The same names everywhere — `dataset`, `solutions`, `task_ids`, `limit` — so a job file can
pass one `${dataset}` to every step and each step sees the same tasks. Light at module level
(pydantic only); the dataset itself is loaded by `load_tasks` inside a step's `run`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from arcjobs.steps.base import StepParams
from arcjobs.steps.inputs import DatasetSource, Input, InputPath

if TYPE_CHECKING:
    from arcjobs.arc.tasks import Task


def _paths(value: Any) -> Any:
    """One path or several: a list (nested lists, as `${step.outs}` beside other paths
    gives, are flattened), or the JSON list text the launcher writes on a command line."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        flat: list[Any] = []
        for item in value:
            flat += _paths(item) if isinstance(item, list) else [item]
        return flat
    return value


# executions.jsonl files, or step output directories holding one
Paths = Annotated[list[str], BeforeValidator(_paths), Input("path")]


class DatasetParams(StepParams):
    dataset: DatasetSource = Field(
        description="built-in name (arc-agi-1/evaluation, arc-agi-2/training, kaggle-2025/evaluation, ...) "
        "or path to a Kaggle challenges JSON or a directory of <task_id>.json"
    )
    solutions: InputPath | None = Field(
        None, description="Kaggle solutions JSON for a file dataset"
    )
    task_ids: str | list[str] | None = Field(
        None, description="only these tasks: a list, or ids separated by commas"
    )
    limit: int | None = Field(None, ge=0, description="only the first N tasks (in id order)")

    @field_validator("task_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        """Task ids as a list of strings, refusing numbers (YAML reads 00576224 as octal).

        Text comes from the command line: `a,b`, `[a, b]` or the JSON list the launcher writes.
        """
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else text.split(",")
            except json.JSONDecodeError:
                value = text[1:-1].split(",")
            if isinstance(value, list):
                value = [v.strip().strip("'\"") if isinstance(v, str) else v for v in value]
                value = [v for v in value if v != ""]
        for v in value if isinstance(value, list) else []:
            if not isinstance(v, str):
                raise ValueError(
                    f"task id {v!r} must be quoted text (YAML reads digits as numbers)"
                )
        return value


def load_tasks(params: DatasetParams) -> dict[str, Task]:
    """The tasks the parameters select (UserError on a bad file or unknown id)."""
    from arcjobs.arc.tasks import load_dataset

    ids = params.task_ids
    return load_dataset(
        params.dataset,
        task_ids=list(ids) if ids is not None else None,
        limit=params.limit,
        solutions=params.solutions,
    )
