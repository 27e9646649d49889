"""Step kind `evaluate`: executions → metrics.json, metrics.md, submission.json.

Scores every executed prediction against the dataset's answers (definitions in
`arcjobs.arc.metrics`), picks 2 attempts per test output from train evidence only, and
writes the Kaggle submission those attempts make.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, load_tasks


class Params(DatasetParams):
    executions: str = Field(description="executions.jsonl, or the execute step's out/ directory")
    pass_k: list[Annotated[int, Field(ge=1)]] = Field(
        [1, 2, 8, 32, 128, 512],
        description="k values for pass@k (those above a task's n are skipped)",
    )
    attempts: int = Field(2, ge=1, description="attempts per test output in the ARC score")


def run(params: Params, ctx: StepContext) -> None:
    import json

    from arcjobs import atomic
    from arcjobs.arc.executions import read_executions
    from arcjobs.arc.metrics import evaluate, to_markdown

    tasks = load_tasks(params)
    executions = read_executions(params.executions, tasks, params.dataset)
    metrics, submission = evaluate(tasks, executions, sorted(set(params.pass_k)), params.attempts)
    metrics = {"dataset": params.dataset, **metrics}
    atomic.write_json(ctx.out / "metrics.json", metrics)
    atomic.write_text(ctx.out / "metrics.md", to_markdown(metrics))
    # compact, like the files Kaggle serves: one grid per line would make it unreadably long
    atomic.write_text(
        ctx.out / "submission.json", json.dumps(submission, separators=(",", ":")) + "\n"
    )


KIND = StepKind(
    name="evaluate",
    params=Params,
    run=run,
    image="sandbox",
    description="Score executions: metrics.json, metrics.md and a Kaggle submission.json.",
)
