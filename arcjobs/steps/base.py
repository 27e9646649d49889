"""The contract between a step kind and the rest of arcjobs.

A step kind is one module in `arcjobs.steps` that defines `KIND = StepKind(...)`: a pydantic
parameter model (the schema the job language validates `with:` against, before anything
runs) and a `run(params, ctx)` function (what `arcjobs step KIND ...` executes inside an
image). Module level must stay light — pydantic and the standard library only — because
the launcher imports every kind's schema; heavy libraries are imported inside `run`.

`run` writes its outputs into `ctx.out`, a fresh private directory that `arcjobs step`
publishes atomically as the step's `out/` once `run` returns; it must not write anywhere
else except `ctx.scratch` (kept across attempts of the same cache key, for checkpoints).
Bad inputs raise `arcjobs.errors.UserError` with one line naming the file and the problem.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

IMAGES = ("train", "infer", "sandbox")


class StepParams(BaseModel):
    """Base of every kind's parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StepContext:
    """Where a running step writes.

    out: the private directory that becomes `steps/<step>/out/` when `run` returns.
    scratch: `steps/<step>/scratch/`, kept across re-runs with the same cache key
        (checkpoints live here) and wiped when the key changes.
    step_dir: `steps/<step>/`, for reading the manifest of a previous attempt.
    resources: the resources the backend granted (gpus, cpus, memory), as given in the job.
    warnings: what `warn` said, kept in the manifest.
    """

    out: Path
    scratch: Path
    step_dir: Path
    resources: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Something the user should know about a step that still succeeds (it trained on
        nothing, say): printed to its log now, and kept in its manifest, from where `run`
        and `status` print it."""
        print(f"warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)


@dataclass(frozen=True)
class StepKind:
    """A registered step kind.

    image: the image the step runs in unless the job file says otherwise.
    resources: defaults merged under the job file's `resources:`.
    check_job: optional hook run on the whole resolved job after every step validated,
        for rules that span steps (e.g. a DoRA adapter served by vLLM); it returns a list
        of (step name, key path, message) problems. It reads each step's `full_params`
        only: raw `with:` text would be parsed otherwise than the schema parses it.
    """

    name: str
    params: type[StepParams]
    run: Callable[[Any, StepContext], None]
    image: str
    description: str
    resources: dict[str, Any] = field(default_factory=dict)
    check_job: Callable[[Any], list[tuple[str, str, str]]] | None = None
