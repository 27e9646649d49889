"""Step kind `relabel`: executions → dataset.jsonl (BARC prompt–completion samples), stats.json.

Hindsight relabelling and top-k selection per task (see `arcjobs.arc.relabel`); the output
is what the train step fine-tunes on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, load_tasks


class Params(DatasetParams):
    executions: str = Field(description="executions.jsonl, or the execute step's out/ directory")
    per_task: int = Field(8, ge=1, description="samples kept per task after deduplication")
    rank_by: Literal["correct_grids", "pixel"] = Field(
        "correct_grids", description="first ranking criterion against the real train outputs"
    )
    keep_solved: bool = Field(True, description="keep tasks a program already solves on train")
    augment: bool = Field(
        True, description="also relabel predictions made on augmented tasks (in their frame)"
    )


def run(params: Params, ctx: StepContext) -> None:
    import json

    from arcjobs import atomic
    from arcjobs.arc.executions import read_executions
    from arcjobs.arc.relabel import Options, relabel

    tasks = load_tasks(params)
    options = Options(
        per_task=params.per_task,
        rank_by=params.rank_by,
        keep_solved=params.keep_solved,
        augment=params.augment,
    )
    samples, stats = relabel(
        tasks, read_executions(params.executions, tasks, params.dataset), options
    )
    lines = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in samples)
    atomic.write_text(ctx.out / "dataset.jsonl", lines)
    atomic.write_json(ctx.out / "stats.json", stats)


KIND = StepKind(
    name="relabel",
    params=Params,
    run=run,
    image="sandbox",
    description="Hindsight-relabel executions into a BARC prompt-completion dataset.jsonl.",
)
