"""Step kind `execute`: predictions → executions.jsonl and summary.json, safely.

Runs every predicted program on its task in the sandbox (`arcjobs.sandbox`): a fresh
forked process for every program, locked down by the kernel before its source is compiled
(Landlock, seccomp, rlimits, no capabilities; another uid and an empty network namespace
where they are available), plus the container's own hardening in the sandbox image. The
step refuses to run where a kernel layer cannot be put up, unless `unprotected` is set.
summary.json records which layers were in force.

The result cache defaults to `<data-root>/cache/sandbox.sqlite`, where the data root is
found from the run layout (`<data-root>/runs/<run>/steps/<step>`): every run on the same
data volume shares it, so re-scoring the same programs on the same tasks is instant. Outside
that layout there is no default cache unless `cache` names a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from arcjobs.errors import UserError
from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, load_tasks
from arcjobs.steps.inputs import InputPath, Place


class Params(DatasetParams):
    predictions: InputPath = Field(
        description="predictions.jsonl, or the infer step's out/ directory"
    )
    timeout_s: float = Field(2.0, gt=0, description="wall-clock seconds per program (all inputs)")
    memory_mb: int = Field(1024, ge=16, description="memory a program may allocate, MB")
    workers: int | None = Field(None, ge=1, description="parallel programs; default: granted cpus")
    cache: Place | None = Field(
        None, description="sqlite result cache; default <data-root>/cache/sandbox.sqlite"
    )
    no_cache: bool = Field(False, description="run every program, ignoring the cache")
    unprotected: bool = Field(
        False,
        description="run programs even where a kernel layer of the sandbox (Landlock, "
        "seccomp) cannot be put up; recorded in summary.json and every execution record",
    )
    fork_per_program: bool = Field(
        False, description="deprecated, does nothing: every program gets a fresh process"
    )
    reject: Literal["none", "study"] = Field(
        "none",
        description="refuse sources by what they say, without running them (`unsafe`): "
        "`study` is the seed study's list (`random`, `time.`, `open(`, ...); see "
        "arcjobs/sandbox/rejection.py",
    )


def default_cache(step_dir: Path) -> Path | None:
    """`<data-root>/cache/sandbox.sqlite` when step_dir is `<data-root>/runs/<run>/steps/<step>`."""
    parents = step_dir.absolute().parents
    if len(parents) >= 4 and parents[0].name == "steps" and parents[2].name == "runs":
        return parents[3] / "cache" / "sandbox.sqlite"
    return None


def workers_for(params: Params, resources: dict) -> int | None:
    """Explicit workers, else the cpus the backend granted, else every CPU we may use."""
    if params.workers is not None:
        return params.workers
    try:
        return max(1, int(float(resources["cpus"])))
    except (KeyError, TypeError, ValueError):
        return None


def run(params: Params, ctx: StepContext) -> None:
    from arcjobs.sandbox.files import read_predictions, resolve_predictions, run_batch
    from arcjobs.sandbox.limits import Limits
    from arcjobs.sandbox.pool import SandboxError

    if params.fork_per_program:
        print("notice: fork_per_program does nothing: every program gets a fresh process")
    tasks = load_tasks(params)
    programs = read_predictions(resolve_predictions(params.predictions), tasks)
    cache = None
    if not params.no_cache:
        cache = Path(params.cache) if params.cache else default_cache(ctx.step_dir)
    limits = Limits(timeout_s=params.timeout_s, memory_mb=params.memory_mb)
    workers = workers_for(params, ctx.resources)
    try:
        run_batch(
            programs, tasks, ctx.out, limits, workers, cache, params.unprotected, params.reject
        )
    except SandboxError as e:
        raise UserError(str(e).replace("--unprotected", "the parameter unprotected")) from None


KIND = StepKind(
    name="execute",
    params=Params,
    run=run,
    image="sandbox",
    description="Run predicted programs safely: executions.jsonl and summary.json.",
    resources={"cpus": 4},
)
