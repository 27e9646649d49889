"""Plan a run, then carry it out on a backend: the two calls behind `plan` and `run`."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
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
from arcjobs.spec.model import Job, Resources, Step
from arcjobs.steps import get_kind
from arcjobs.steps.inputs import anchor, problems

__all__ = ["Cancelled", "Plan", "Readiness", "make_plan", "readiness", "run_plan"]


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
    job = _on_data_root(job, store.data_root)
    image_ids = {image: backend.image_id(image) for image in {s.image for s in job.steps.values()}}
    return Plan(job, backend, store, layout, decide(job, store, layout, image_ids), resuming)


def _on_data_root(job: Job, data_root: Path) -> Job:
    """The job with every input path under the data root written `${data}/...`: each backend
    then shows it where its steps see the data root, and cache keys do not depend on where
    the data root lies (`arcjobs.steps.inputs`)."""

    def placed(step: Step) -> Step:
        schema = get_kind(step.kind).params
        return replace(
            step,
            params=anchor(schema, step.params, data_root),
            full_params=anchor(schema, step.full_params, data_root),
        )

    return replace(job, steps={name: placed(step) for name, step in job.steps.items()})


@dataclass(frozen=True)
class Readiness:
    """What `readiness` found: the backend's capacity, and every refusal in job order."""

    capacity: Resources | None  # None: the backend itself refused (no engine, no sbatch, ...)
    refusals: list[UserError]


def readiness(plan: Plan) -> Readiness:
    """Everything `run` refuses before it writes anything, found by one code path so that
    `plan` (which shows all of it) and `run` (which stops at the first) agree:
    1. the backend itself (no Docker engine, unbuilt images, no `sbatch`);
    2. GPUs it cannot give a step that would run (`_gpu_refusal`);
    3. inputs such a step would fail on at once: a missing path or model directory, a task
       id its dataset lacks, a path a container cannot see (`arcjobs.steps.inputs`).
    Steps that are done or reused are not checked: they will not run."""
    refusals: list[UserError] = []
    try:
        capacity: Resources | None = plan.backend.capacity()
    except UserError as e:
        capacity, refusals = None, [e]
    mount = plan.backend.data_mount(plan.layout)
    confined = None if mount == str(plan.layout.data_root) else plan.backend.name
    for step in plan.job.steps.values():
        if plan.decisions[step.name].action != "run":
            continue
        if capacity is not None and step.resources.gpus:
            refusals += _gpu_refusal(plan, step, capacity)
        schema = get_kind(step.kind).params
        for key, message in problems(schema, step.full_params, plan.layout.data_root, confined):
            where = f"steps.{step.base}.with.{key}"
            refusals.append(SpecError(plan.job.file, step.lines.get(key), where, message))
    unique = {str(e): e for e in refusals}  # rounds repeat a base step's line and message
    return Readiness(capacity, list(unique.values()))


def run_plan(plan: Plan, overrides: list[str], report: Reporter) -> dict[str, Any]:
    """Carry out `plan`; returns the final run.json. Raises Cancelled on SIGINT/SIGTERM."""
    store, layout = plan.store, plan.layout
    ready = readiness(plan)  # refusals come before anything is written
    if ready.refusals:
        raise ready.refusals[0]
    assert ready.capacity is not None
    capacity = ready.capacity
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


def _gpu_refusal(plan: Plan, step: Step, capacity: Resources) -> list[UserError]:
    """GPUs are the one request that cannot be scaled down, so a step the backend cannot give
    its GPUs (too few, MIG instances for a multi-GPU step, a driver too old for the images)
    is refused before the run starts; CPUs and memory beyond the machine are clamped to it
    instead (the step then runs alone)."""
    why = plan.backend.gpu_refusal(step, capacity)
    if why is None:
        return []
    return [
        SpecError(
            plan.job.file,
            step.gpus_line,
            f"steps.{step.base}.resources.gpus",
            f"step {step.name} asks for {step.resources.gpus} GPU(s) and {why}",
        )
    ]


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
