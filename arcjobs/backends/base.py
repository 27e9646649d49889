"""The backend interface: place steps somewhere and watch them; know nothing about ARC.

Modelled on TorchX schedulers: `request` is a dry run that returns the exact request as
data (command, environment, mounts, resources) with no side effects — `arcjobs plan` prints
it — and `submit` is the separate call that acts on it. Status is polled in batches
(`poll` takes every live handle at once), as submitit does, so a backend can answer with
one query to its scheduler.

What crosses the boundary is typed per backend, and stays JSON:
- `StepRequest[E].extra`: the backend's own frozen dataclass (compose: `ComposeExtra`, ...),
  shown by `plan --json` through `to_dict`;
- handles: the backend's own `TypedDict` (`LocalHandle`, ...), stored as is in run.json,
  so a handle written by an earlier version of arcjobs is still a valid one.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from arcjobs.backends.gpus import too_few
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Resources, Step

ExtraT = TypeVar("ExtraT")  # a backend's StepRequest.extra: a frozen dataclass, or None
HandleT = TypeVar("HandleT", bound=Mapping[str, Any])  # a backend's handle: a TypedDict


@dataclass(frozen=True)
class StepRequest(Generic[ExtraT]):
    """Everything needed to start one step, as plain data."""

    step: str
    image: str
    command: list[str]
    env: dict[str, str]
    mounts: dict[str, str]  # host path → path seen by the step
    workdir: str
    log: str
    resources: Resources
    extra: ExtraT  # what only this backend needs (a container name, a submit description)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepStatus:
    state: Literal["queued", "running", "exited", "lost"]  # queued: waiting for a machine
    exit_code: int | None = None
    detail: str = ""  # e.g. an HTCondor hold reason


def step_env(
    key: str, image_id: str, gpus: int, cpus: int, memory_mb: int | None
) -> dict[str, str]:
    """The environment every backend gives a step, whatever runs it.

    - `ARCJOBS_CACHE_KEY`, `ARCJOBS_IMAGE`: what the step's manifest records;
    - `ARCJOBS_RESOURCES`: what the step was given (the runner sizes itself by it);
    - thread pools sized to the CPUs given, and unbuffered output for live logs.
    """
    threads = str(cpus)
    return {
        "ARCJOBS_CACHE_KEY": key,
        "ARCJOBS_IMAGE": image_id,
        "ARCJOBS_RESOURCES": json.dumps(
            {"gpus": gpus, "cpus": cpus, "memory_mb": memory_mb}, separators=(",", ":")
        ),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "PYTHONUNBUFFERED": "1",
    }


class Backend(ABC, Generic[ExtraT, HandleT]):
    name: ClassVar[str]
    # True for schedulers that take the whole DAG at once (HTCondor's DAGMan): the engine then
    # calls `submit_dag` once instead of `submit` per ready step, and only follows progress.
    whole_dag: ClassVar[bool] = False
    # True for whole-DAG schedulers whose jobs a new launcher can follow again by their handles
    # (Slurm job ids): a resumed run then reattaches to its live steps instead of reaping them,
    # and submits only the rest, after them. Such handles carry the cache key their job
    # computes (`key`), so a job of an older version of a step is reaped, not reattached.
    reattach: ClassVar[bool] = False
    # The keyword options the constructor takes beside `data_root`, each optional:
    # `get_backend` refuses any other, so a misspelt or misplaced option fails, not vanishes.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_root: str | Path | None = None) -> None:
        """`data_root`: the launcher's (else $ARCJOBS_DATA_ROOT, else `data`), absolute."""
        given = data_root or os.environ.get("ARCJOBS_DATA_ROOT") or "data"
        self.data_root = Path(os.path.normpath(Path(given).absolute()))

    @property
    def poll_interval_s(self) -> float:
        """Seconds between two polls of the engine (and of `logs -f`): the backend sets its
        own pace, so none needs a cache to survive a fast caller. Here 0.1: a poll of host
        processes is a waitpid."""
        return 0.1

    @abstractmethod
    def data_mount(self, layout: RunLayout) -> str:
        """Where steps see the data root (`/data` in containers)."""

    @abstractmethod
    def image_id(self, image: str) -> str:
        """The identity of `image` for cache keys (a digest where one is known)."""

    @abstractmethod
    def capacity(self) -> Resources:
        """What may run at once: the engine never starts steps beyond it."""

    @abstractmethod
    def request(
        self,
        step: Step,
        params: dict[str, Any],
        layout: RunLayout,
        key: str,
        gpu_ids: list[int] | None = None,
    ) -> StepRequest[ExtraT]:
        """The exact request for `step` (params already rendered for this backend).

        1. Pure: no side effect but cached probes (image digests), so `plan` may call it.
        2. What `submit` runs is this request and nothing else: `plan` shows the truth.
        """

    @abstractmethod
    def submit(self, request: StepRequest[ExtraT]) -> HandleT:
        """Start the step and return its handle.

        1. Returns once the step is started or queued, never waits for it to end.
        2. The handle is JSON: run.json keeps it, and `status`, `cancel` and a resumed
           launcher (other processes, maybe on another machine) hand it back.
        3. A refusal (an image not built, a scheduler that said no) is one `UserError` line.
        """

    @abstractmethod
    def poll(self, handles: Mapping[str, HandleT]) -> dict[str, StepStatus]:
        """The status of every given step (step name → handle), in one batch.

        1. Answers for every name given, and only those.
        2. Data only: it never calls back and never changes a step, so any caller may ask.
        3. Works from the handles alone: a backend made by another process (`status`)
           answers as the launcher's would, but for what only the submitting process can
           know (its own child's exit code): such a step that is gone is `lost`.
        4. `exited` with code 0 says the process succeeded; the engine still asks the
           manifest whether the step is complete.
        5. Each call may cost a query to a shared service: callers keep `poll_interval_s`.
        """

    @abstractmethod
    def cancel(self, handle: HandleT) -> None:
        """Stop the step and everything it started.

        1. Idempotent: a step that ended, was cancelled already or never ran is no error.
        2. Waits, for a bounded time, until the step is gone.
        3. Works from the handle alone, in any process (`arcjobs cancel` without a launcher).
        4. Never touches what is not the step's: a recycled pid or a reused name is left alone.
        """

    def gpu_refusal(self, step: Step, capacity: Resources) -> str | None:
        """Why `step` cannot have its GPUs here, as the end of "step S asks for N GPU(s) and
        ...", or None. GPUs cannot be scaled down like CPUs, so the engine refuses such a run
        before it starts. By default: more GPUs than `capacity`."""
        if step.resources.gpus > capacity.gpus:
            return too_few(capacity.gpus, self.name)
        return None

    def submit_dag(
        self,
        requests: dict[str, StepRequest[ExtraT]],
        needs: dict[str, list[str]],
        layout: RunLayout,
    ) -> dict[str, HandleT]:
        """Submit every request at once with its dependencies; a handle per step.

        1. All or nothing: a refusal part-way leaves none of this call's steps queued.
        2. A `reattach` backend also takes `live`: the handles of needed steps still in the
           scheduler from an earlier launcher (`needs` names them too); new jobs wait for them.
        """
        raise NotImplementedError(f"the {self.name} backend submits steps one by one")

    def reap(self, handle: HandleT) -> None:
        """Stop what a dead launcher left running for this handle, before a resumed run
        starts anything. The same promises as `cancel`; by default it is `cancel`."""
        self.cancel(handle)

    def artefacts(self, requests: list[StepRequest[ExtraT]], layout: RunLayout) -> dict[str, str]:
        """Files the backend would generate for these requests (shown by `plan`)."""
        return {}
