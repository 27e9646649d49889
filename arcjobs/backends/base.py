"""The backend interface: place steps somewhere and watch them; know nothing about ARC.

Modelled on TorchX schedulers: `request` is a dry run that returns the exact request as
data (command, environment, mounts, resources) with no side effects — `arcjobs plan` prints
it — and `submit` is the separate call that acts on it. Status is polled in batches
(`poll` takes every live handle at once), as submitit does, so a backend can answer with
one query to its scheduler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from arcjobs.backends.gpus import too_few
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Resources, Step


@dataclass(frozen=True)
class StepRequest:
    """Everything needed to start one step, as plain data."""

    step: str
    image: str
    command: list[str]
    env: dict[str, str]
    mounts: dict[str, str]  # host path → path seen by the step
    workdir: str
    log: str
    resources: Resources
    extra: dict[str, Any] = field(default_factory=dict)  # backend specifics (container name, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepStatus:
    state: Literal["queued", "running", "exited", "lost"]  # queued: waiting for a machine
    exit_code: int | None = None
    detail: str = ""  # e.g. an HTCondor hold reason


class Backend(ABC):
    name: ClassVar[str]
    # True for schedulers that take the whole DAG at once (HTCondor's DAGMan): the engine then
    # calls `submit_dag` once instead of `submit` per ready step, and only follows progress.
    whole_dag: ClassVar[bool] = False
    # True for whole-DAG schedulers whose jobs a new launcher can follow again by their handles
    # (Slurm job ids): a resumed run then reattaches to its live steps instead of reaping them,
    # and submits only the rest, after them. Such handles carry the cache key their job
    # computes (`key`), so a job of an older version of a step is reaped, not reattached.
    reattach: ClassVar[bool] = False

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
    ) -> StepRequest:
        """The exact request for `step` (params already rendered for this backend). Pure."""

    @abstractmethod
    def submit(self, request: StepRequest) -> dict[str, Any]:
        """Start the step; return a JSON-able handle stored in run.json."""

    @abstractmethod
    def poll(self, handles: dict[str, dict[str, Any]]) -> dict[str, StepStatus]:
        """The status of every given handle (step name → handle), in one batch."""

    @abstractmethod
    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop the step and everything it started; wait until it is gone."""

    def gpu_refusal(self, step: Step, capacity: Resources) -> str | None:
        """Why `step` cannot have its GPUs here, as the end of "step S asks for N GPU(s) and
        ...", or None. GPUs cannot be scaled down like CPUs, so the engine refuses such a run
        before it starts. By default: more GPUs than `capacity`."""
        if step.resources.gpus > capacity.gpus:
            return too_few(capacity.gpus, self.name)
        return None

    def submit_dag(
        self, requests: dict[str, StepRequest], needs: dict[str, list[str]], layout: RunLayout
    ) -> dict[str, dict[str, Any]]:
        """Submit every request at once with its dependencies; a handle per step.

        A `reattach` backend also takes `live`: the handles of needed steps still in the
        scheduler from an earlier launcher (`needs` names them too); the new jobs wait for them.
        """
        raise NotImplementedError(f"the {self.name} backend submits steps one by one")

    def reap(self, handle: dict[str, Any]) -> None:
        """Stop what a dead launcher left running for this handle, if anything."""
        self.cancel(handle)

    def artefacts(self, requests: list[StepRequest], layout: RunLayout) -> dict[str, str]:
        """Files the backend would generate for these requests (shown by `plan`)."""
        return {}
