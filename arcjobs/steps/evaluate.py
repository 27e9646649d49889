"""Step kind `evaluate`: executions → metrics.json, metrics.md, submission.json.

Scores every executed prediction against the dataset's answers (definitions in
`arcjobs.arc.metrics`), picks 2 attempts per test output from train evidence only, and
writes the Kaggle submission those attempts make. Beside them:
- the seed study's own table (`arcjobs.arc.study_metrics`), under `study` in metrics.json
  and as a second table in metrics.md, so that its numbers compare with the study's;
- with `before` and `reference`, whether the gain was legitimate (`arcjobs.arc.legitimacy`):
  for each task solved now and not before, the base model's pass rate on it in a large
  reference search, and the predictions it implies.
Several executions inputs are scored as one search over their whole budget.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, Paths, load_tasks


class Params(DatasetParams):
    executions: Paths = Field(
        description="executions.jsonl or an execute step's out/; a list is scored as one "
        "search over the whole budget (every round of a loop)"
    )
    before: Paths | None = Field(
        None,
        description="executions of the search before learning: the tasks solved now and not "
        "then are listed, with `reference`'s odds on them",
    )
    reference: Paths | None = Field(
        None,
        description="executions of a large search with the base model (e.g. jobs/baseline.yaml "
        "--set predictions=6144): the base pass rate of each task solved now and not `before`",
    )
    pass_k: list[Annotated[int, Field(ge=1)]] = Field(
        [1, 2, 8, 32, 128, 512],
        description="k values for pass@k (those above a task's n are skipped)",
    )
    attempts: int = Field(2, ge=1, description="attempts per test output in the ARC score")

    @model_validator(mode="after")
    def _reference_needs_before(self) -> Params:
        if self.reference is not None and self.before is None:
            raise ValueError("`reference` needs `before`: newly solved is solved now, not before")
        return self


STUDY_NOTE = """
## The seed study's table

Computed with the study's own definitions (ironbar/arc25 at 2871b24), not the project's
above: valid code = a code block was found; pixel similarity, correct grids and the pass
rates are means over the predictions with valid outputs only (the study's known bug; the last
column is its fix); pixel similarity also counts partial overlaps; the mean is over the tasks
with predictions.

"""


def run(params: Params, ctx: StepContext) -> None:
    import json

    from arcjobs import atomic
    from arcjobs.arc import legitimacy, study_metrics
    from arcjobs.arc.executions import read_all
    from arcjobs.arc.metrics import evaluate, to_markdown

    tasks = load_tasks(params)

    def executions(paths: list[str]):
        return read_all(paths, tasks, params.dataset)

    # Read and checked once for all three passes: the study's table holds every execution
    # by task anyway, so a stream per pass saved no memory, only re-parsed the files.
    scored = list(executions(params.executions))
    ks = sorted(set(params.pass_k))
    metrics, submission = evaluate(tasks, scored, ks, params.attempts)
    study = study_metrics.study_metrics(tasks, scored)
    metrics = {"dataset": params.dataset, **metrics, "study": study}
    text = to_markdown(metrics) + STUDY_NOTE + study_metrics.to_markdown(study)
    if params.before is not None:
        found = legitimacy.newly_solved(
            tasks, scored, executions(params.before), executions(params.reference or [])
        )
        metrics["legitimacy"] = found
        text += "\n## Was the gain legitimate?\n\n" + legitimacy.to_markdown(found)
    atomic.write_json(ctx.out / "metrics.json", metrics)
    atomic.write_text(ctx.out / "metrics.md", text)
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
