"""Plan a run, then carry it out on a backend: the two calls behind `plan` and `run`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from arcjobs import atomic
from arcjobs.backends import get_backend
from arcjobs.backends.base import Backend, StepRequest
from arcjobs.engine.planner import Decision, decide
from arcjobs.engine.scheduler import Cancelled, Reporter, Scheduler, new_state, render_params
from arcjobs.engine.states import RunState
from arcjobs.engine.store import RunStore
from arcjobs.errors import SpecError, UserError
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Job, Resources

__all__ = ["Cancelled", "Plan", "make_plan", "run_plan"]


@dataclass
class Plan:
    job: Job
    backend: Backend
    store: RunStore
    layout: RunLayout
    decisions: dict[str, Decision]
    resuming: bool

    def requests(self) -> dict[str, StepRequest]:
        """The exact request of every step, with the GPUs it gets when it starts alone (the
        first ones): `run` picks among the free ones when it starts, and a printed command
        with an empty CUDA_VISIBLE_DEVICES would hide every GPU when pasted."""
        mount = self.backend.data_mount(self.layout)
        return {
            name: self.backend.request(
                step,
                render_params(step, self.layout, mount),
                self.layout,
                self.decisions[name].key,
                list(range(step.resources.gpus)),
            )
            for name, step in self.job.steps.items()
        }


def make_plan(
    job: Job,
    backend_name: str,
    store: RunStore,
    run_id: str | None,
    backend_options: dict[str, Any] | None = None,
) -> Plan:
    """Decide what a run would do. Reads the store; writes nothing."""
    backend = get_backend(backend_name, store.data_root, **(backend_options or {}))
    resuming = run_id is not None and store.exists(run_id)
    if resuming:
        previous = store.read(run_id)  # type: ignore[arg-type]
        if previous.get("job") != job.name:
            raise UserError(
                f"run {run_id} belongs to job {previous.get('job')!r}, not {job.name!r}"
            )
    layout = store.layout(run_id or store.new_run_id(job.name))
    image_ids = {image: backend.image_id(image) for image in {s.image for s in job.steps.values()}}
    return Plan(job, backend, store, layout, decide(job, store, layout, image_ids), resuming)


def run_plan(plan: Plan, overrides: list[str], report: Reporter) -> dict[str, Any]:
    """Carry out `plan`; returns the final run.json. Raises Cancelled on SIGINT/SIGTERM."""
    store, layout = plan.store, plan.layout
    capacity = plan.backend.capacity()  # refusals come before anything is written
    _check_gpus(plan, capacity)
    with store.lock(layout.run_id):
        previous = store.read(layout.run_id) if store.exists(layout.run_id) else None
        state = new_state(
            plan.job, layout.run_id, plan.backend.name, plan.decisions, overrides, previous
        )
        scheduler = Scheduler(
            plan.job, plan.decisions, plan.backend, store, layout, state, report, capacity
        )
        scheduler.reap_leftovers()
        atomic.write_text(layout.run_dir / "job.yaml", _dump_yaml(plan.job.to_dict()))
        store.write(state)
        outcome: RunState = "failed"  # e.g. a submit refused: run.json must not say running
        try:
            outcome = "succeeded" if scheduler.run() else "failed"
        except Cancelled:
            outcome = "cancelled"
            raise
        finally:
            state["status"] = outcome
            state["ended"] = time.time()
            store.write(state)
            report(state)
    return state


def _check_gpus(plan: Plan, capacity: Resources) -> None:
    """GPUs are the one request that cannot be scaled down, so a step the backend cannot give
    its GPUs (too few, MIG instances for a multi-GPU step, a driver too old for the images)
    is refused before the run starts; CPUs and memory beyond the machine are clamped to it
    instead (the step then runs alone). `plan` does not check this: a job is often planned on
    one machine and run on another."""
    for step in plan.job.steps.values():
        if plan.decisions[step.name].action != "run" or not step.resources.gpus:
            continue
        why = plan.backend.gpu_refusal(step, capacity)
        if why is not None:
            raise SpecError(
                plan.job.file,
                step.gpus_line,
                f"steps.{step.base}.resources.gpus",
                f"step {step.name} asks for {step.resources.gpus} GPU(s) and {why}",
            )


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
