"""Step kind `run`: a raw shell command (the job file's `run:`), for glue the kinds don't cover.

The command runs under `bash -c` in the step's private output directory, with `$OUT` set to
that directory; whatever it writes there is published as the step's `out/`. A non-zero exit
fails the step.
"""

from __future__ import annotations

import os
import subprocess

from pydantic import Field

from arcjobs.steps.base import StepContext, StepKind, StepParams


class Params(StepParams):
    command: str = Field(
        description="bash script; $OUT is the output directory, $SCRATCH a scratch one"
    )


def run(params: Params, ctx: StepContext) -> None:
    env = dict(os.environ, OUT=str(ctx.out), SCRATCH=str(ctx.scratch))
    proc = subprocess.run(["bash", "-c", params.command], cwd=ctx.out, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)


KIND = StepKind(
    name="run",
    params=Params,
    run=run,
    image="sandbox",
    description="A raw shell command; it writes its outputs into $OUT.",
)
