"""The resolved job: plain data, independent of any backend.

`load_job` turns a job file into a `Job` whose steps are fully expanded (rounds and matrix
branches are separate steps with their own names) and whose parameters are validated.
References to other steps' outputs remain as `${<step>.out}` text until the engine places
the run on a backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resources:
    """What a step needs. The GPU selectors and `requirements` only narrow where a cluster
    may place it; local and compose run on the GPUs the machine has."""

    gpus: int = 0
    cpus: int = 1
    memory_mb: int | None = None
    gpu_memory_mb: int | None = None
    gpu_capability: float | None = None
    requirements: str | None = None


@dataclass(frozen=True)
class Step:
    """One node of the DAG.

    name: unique, e.g. `learn`, `learn.r2` (round 2) or `learn.lora_rank=16` (a branch).
    base: the step's name in the job file (errors and docs refer to it).
    params: what the job file gave, parameters substituted — the command line's content.
    full_params: the kind's validated parameters including defaults — the cache key's content.
    gpus_line: the job file's line for this step's GPU count (its `resources.gpus`, else the
      step), for the one check that waits for a backend: whether it has that many GPUs.
    lines: the job file's line of each parameter (its `with:` key, else the nearest above),
      for the checks that wait for the machine: whether the files the step reads are there.
    """

    name: str
    base: str
    kind: str
    params: dict[str, Any]
    full_params: dict[str, Any]
    needs: tuple[str, ...]
    image: str
    resources: Resources
    round: int | None = None
    matrix: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    description: str = ""
    gpus_line: int | None = None
    lines: dict[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    name: str
    file: str
    params: dict[str, Any]
    steps: dict[str, Step]  # in a topological order
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The job as resolved, for `runs/<id>/job.yaml`."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.file,
            "params": self.params,
            "steps": {
                n: {
                    k: v
                    for k, v in asdict(s).items()
                    if k not in ("name", "full_params", "gpus_line", "lines")
                }
                for n, s in self.steps.items()
            },
        }
