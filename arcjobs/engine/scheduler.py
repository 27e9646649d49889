"""Run a job's DAG on a backend: reuse what is published, start ready steps within the
resources available, watch them, and keep `run.json` true at every moment.

Invariants that make a kill at any moment harmless:
- a step's `out/` appears only by rename, once complete (see `arcjobs.steps.runner`);
- `run.json` is replaced atomically and is never the source of truth for completion —
  the manifests are (`arcjobs.manifest`); a resumed launcher recomputes everything from them;
- leftovers of a dead launcher (its step processes, private temp directories) are reaped
  before anything new starts — except, on a `reattach` backend, live jobs that compute the
  same cache key: those are followed again and never submitted twice.

One turn of the loop, at the backend's pace (`Backend.poll_interval_s`):
1. on SIGINT/SIGTERM, cancel every running step and stop (`_cancel_all`);
2. poll the live steps in one batch and record how those that ended ended (`_settle`);
3. skip what waits on a step that did not succeed (`_skip_blocked`);
4. start the ready steps that fit in what is left of the capacity (`_admit_ready`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from arcjobs import atomic
from arcjobs.backends.base import Backend, StepStatus
from arcjobs.engine.planner import Decision
from arcjobs.engine.states import BLOCKING, DONE, LIVE, TERMINAL, WAITING, StepState
from arcjobs.engine.store import RunStore
from arcjobs.layout import RunLayout
from arcjobs.manifest import MANIFEST, is_complete, read_manifest
from arcjobs.spec.interpolate import render
from arcjobs.spec.model import Job, Resources, Step

Reporter = Callable[[dict[str, Any]], None]
SIGNAL_CHECK_S = 0.1  # how soon SIGINT/SIGTERM is acted on, whatever the backend's pace


def render_params(step: Step, layout: RunLayout, mount: str) -> dict[str, Any]:
    """Replace `${x.out}` and `${data}` with paths as the backend's steps see them."""

    def resolve(ref: str) -> Any:
        if ref == "data":
            return mount
        return layout.seen_from(mount, layout.out_dir(ref[: -len(".out")]))

    return render(step.params, resolve, final=True)


class Cancelled(Exception):
    """The launcher got SIGINT/SIGTERM; running steps were stopped."""


class Scheduler:
    def __init__(
        self,
        job: Job,
        decisions: dict[str, Decision],
        backend: Backend,
        store: RunStore,
        layout: RunLayout,
        state: dict[str, Any],
        report: Reporter,
        capacity: Resources,
    ):
        self.job, self.decisions, self.backend = job, decisions, backend
        self.store, self.layout, self.state, self.report = store, layout, state, report
        self.capacity = capacity
        self.mount = backend.data_mount(layout)
        self.stop_signal: int | None = None
        self.running: dict[str, dict[str, Any]] = {}  # step → its backend handle
        self.gpus_free = list(range(capacity.gpus))
        self.gpus_held: dict[str, list[int]] = {}
        self.attempts: dict[str, int] = {}

    # --- state ---------------------------------------------------------------------------

    def _set(self, step: str, status: StepState, **fields: Any) -> None:
        self.state["steps"][step].update(status=status, **fields)
        self.store.write(self.state)
        self.report(self.state)

    def _status(self, step: str) -> StepState:
        return self.state["steps"][step]["status"]

    # --- before starting -----------------------------------------------------------------

    def reap_leftovers(self) -> None:
        """Stop steps a dead launcher left running (on a `reattach` backend: follow the live
        ones again instead) and remove half-written temp directories."""
        leftovers = {
            name: info["handle"]
            for name, info in self.state["steps"].items()
            if info.get("status") in LIVE and info.get("handle")
        }
        followed = self._reattach(leftovers) if self.backend.reattach else set()
        for name, handle in leftovers.items():
            if name not in followed:
                self.backend.reap(handle)
                self.state["steps"][name].update(status="pending", handle=None)
        steps_dir = self.layout.run_dir / "steps"
        for leftover in steps_dir.glob("*/.*") if steps_dir.exists() else []:
            if leftover.parent.name in followed:
                continue  # a live step's own work in progress
            if leftover.name.startswith((".out-", ".trash-", ".reuse-")):
                shutil.rmtree(leftover, ignore_errors=True)

    def _reattach(self, leftovers: dict[str, dict[str, Any]]) -> set[str]:
        """The leftover jobs still queued or running that compute exactly what this run would
        submit (same cache key): followed from now on, never submitted twice."""
        same = {
            name: handle
            for name, handle in leftovers.items()
            if self.decisions[name].action == "run"
            and handle.get("key") == self.decisions[name].key
        }
        polled = self.backend.poll(same) if same else {}
        for name, status in polled.items():
            if status.state in ("queued", "running"):
                self.running[name] = same[name]
                self.state["steps"][name].update(status=status.state, reason=status.detail)
        return set(self.running)

    def reuse(self, name: str, source: tuple[str, str]) -> None:
        """Publish another run's output of the same key as this step's, by hard links."""
        src_dir = self.store.layout(source[0]).step_dir(source[1])
        step_dir = self.layout.step_dir(name)
        step_dir.mkdir(parents=True, exist_ok=True)
        tmp = step_dir / f".reuse-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        atomic.link_tree(src_dir / "out", tmp)
        (step_dir / MANIFEST).unlink(missing_ok=True)
        atomic.publish_dir(tmp, step_dir / "out")
        manifest = read_manifest(src_dir) or {}
        manifest.update(reused_from={"run": source[0], "step": source[1]}, reused_at=time.time())
        atomic.write_json(step_dir / MANIFEST, manifest)
        atomic.write_text(
            self.layout.log(name), f"reused the output of run {source[0]} step {source[1]}\n"
        )

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> bool:
        """Run to the end; True when every step succeeded or was reused."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def _loop(self) -> bool:
        self._take_planned()
        if self.backend.whole_dag:
            self._submit_dag()
        while True:
            if self.stop_signal is not None:
                self._cancel_all()
            self._settle(self.backend.poll(self.running) if self.running else {})
            self._skip_blocked()
            self._admit_ready()
            if not self.running and all(self._status(n) in TERMINAL for n in self.job.steps):
                return all(self._status(n) in DONE for n in self.job.steps)
            self._pause()

    def _take_planned(self) -> None:
        """Steps planning found complete in this run (`done`) or published by another
        (`reuse`: linked in now)."""
        for name, d in self.decisions.items():
            if d.action == "done":
                self._set(name, "succeeded", reason=d.reason)
            elif d.action == "reuse":
                assert d.source is not None
                self.reuse(name, d.source)
                self._set(name, "reused", reason=d.reason, reused_from=d.source[0])
                self._record(name)

    def _pause(self) -> None:
        """Wait the backend's poll interval, in short slices so that a signal is acted on
        at once even where the backend polls every few seconds."""
        until = time.monotonic() + self.backend.poll_interval_s
        while self.stop_signal is None and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, SIGNAL_CHECK_S))

    def _cancel_all(self) -> NoReturn:
        assert self.stop_signal is not None
        for name, handle in self.running.items():
            self.backend.cancel(handle)
            self._set(name, "cancelled", ended=time.time(), handle=None)
        raise Cancelled(signal.Signals(self.stop_signal).name)

    def _settle(self, polled: dict[str, StepStatus]) -> None:
        """Record what the backend says of each polled step, upstream first (so that skips
        cascade); a step that is no longer live gives its GPUs back and is ended."""
        for name in [n for n in self.job.steps if n in polled]:
            status = polled[name]
            if status.state in ("queued", "running"):
                if self.backend.whole_dag:
                    self._follow(name, status)
                continue
            self.running.pop(name)
            self.gpus_free += self.gpus_held.pop(name, [])
            self._end(name, status)

    def _end(self, name: str, status: StepStatus) -> None:
        """Succeeded (exit 0 and complete), pending again (a retry left, on backends where
        the engine retries), skipped (its scheduler never ran it) or failed."""
        info = self.state["steps"][name]
        step_dir, key = self.layout.step_dir(name), self.decisions[name].key
        if status.state == "exited" and status.exit_code == 0 and is_complete(step_dir, key):
            reason = status.detail or info["reason"]
            self._set(name, "succeeded", ended=time.time(), exit_code=0, handle=None, reason=reason)
            self._record(name)
            return
        if not self.backend.whole_dag and self.attempts[name] <= self.job.steps[name].retries:
            reason = f"retrying after exit {status.exit_code}"
            self._set(name, "pending", handle=None, reason=reason)
            return
        blocked = self._blocked_by(name) if self.backend.whole_dag else None
        if blocked:
            self._set(name, "skipped", handle=None, reason=f"upstream {blocked} did not succeed")
            return
        detail = status.detail or (
            f"exit code {status.exit_code}" if status.state == "exited" else status.state
        )
        self._set(
            name,
            "failed",
            ended=time.time(),
            exit_code=status.exit_code,
            handle=None,
            reason=detail,
            error_tail=_tail(self.layout.log(name)),
        )

    def _admit_ready(self) -> None:
        """Start each pending step whose needs are done while it fits in what is left; a
        whole-DAG scheduler was handed every step at the start instead."""
        if self.backend.whole_dag:
            return
        for name, step in self.job.steps.items():
            if (
                self._status(name) == "pending"
                and all(self._status(n) in DONE for n in step.needs)
                and self._fits(step)
            ):
                self._start(step)

    def _cpus(self, name: str) -> int:
        return min(self.job.steps[name].resources.cpus, self.capacity.cpus)

    def _memory(self, name: str) -> int:
        wanted = self.job.steps[name].resources.memory_mb or 0
        return min(wanted, self.capacity.memory_mb) if self.capacity.memory_mb else wanted

    def _fits(self, step: Step) -> bool:
        """Whether `step` fits beside the running ones. Alone it always does: its CPUs and
        memory are clamped to the machine, and GPUs it cannot have were refused before."""
        if not self.running:
            return True
        cpus = sum(self._cpus(n) for n in self.running) + self._cpus(step.name)
        memory = sum(self._memory(n) for n in self.running) + self._memory(step.name)
        return (
            cpus <= self.capacity.cpus
            and len(self.gpus_free) >= step.resources.gpus
            and not (self.capacity.memory_mb and memory > self.capacity.memory_mb)
        )

    def _start(self, step: Step) -> None:
        gpus = step.resources.gpus
        gpu_ids, self.gpus_free = self.gpus_free[:gpus], self.gpus_free[gpus:]
        self.gpus_held[step.name] = gpu_ids
        params = render_params(step, self.layout, self.mount)
        key = self.decisions[step.name].key
        request = self.backend.request(step, params, self.layout, key, gpu_ids)
        self.attempts[step.name] = self.attempts.get(step.name, 0) + 1
        self.running[step.name] = self.backend.submit(request)
        self._set(
            step.name,
            "running",
            started=time.time(),
            handle=self.running[step.name],
            attempt=self.attempts[step.name],
            reason=self.decisions[step.name].reason,
        )

    def _blocked_by(self, name: str) -> str | None:
        bad = [n for n in self.job.steps[name].needs if self._status(n) in BLOCKING]
        return bad[0] if bad else None

    def _skip_blocked(self) -> None:
        """Skip what waits on a step that did not succeed; a whole-DAG scheduler will never
        start those either, so they are no longer followed."""
        changed = True
        while changed:
            changed = False
            for name in self.job.steps:
                if self._status(name) not in WAITING:
                    continue
                bad = self._blocked_by(name)
                if bad:
                    self.running.pop(name, None)
                    self._set(
                        name, "skipped", handle=None, reason=f"upstream {bad} did not succeed"
                    )
                    changed = True

    def _submit_dag(self) -> None:
        """Hand every step still to run to the backend's scheduler at once; from then on the
        loop only follows them."""
        todo = [n for n in self.job.steps if self._status(n) == "pending"]
        if not todo:
            return
        requests = {
            n: self.backend.request(
                self.job.steps[n],
                render_params(self.job.steps[n], self.layout, self.mount),
                self.layout,
                self.decisions[n].key,
            )
            for n in todo
        }
        # Needs on steps already complete are satisfied; on reattached live ones, kept.
        live = {
            d: self.running[d] for n in todo for d in self.job.steps[n].needs if d in self.running
        }
        needs = {
            n: [d for d in self.job.steps[n].needs if d in requests or d in live] for n in todo
        }
        extra = {"live": live} if live else {}  # only `reattach` backends have live steps
        handles = self.backend.submit_dag(requests, needs, self.layout, **extra)
        now = time.time()
        for n in todo:
            self.running[n] = handles[n]
            self.state["steps"][n].update(
                status="queued", handle=handles[n], started=now, reason=self.decisions[n].reason
            )
        self.store.write(self.state)
        self.report(self.state)

    def _follow(self, name: str, status: StepStatus) -> None:
        """Show what the scheduler says of a step it holds (queued, running where, held why)."""
        info = self.state["steps"][name]
        state: StepState = "queued" if status.state == "queued" else "running"
        reason = status.detail or info.get("reason")
        if (info.get("status"), info.get("reason")) != (state, reason):
            self._set(name, state, reason=reason)

    def _record(self, name: str) -> None:
        d, step = self.decisions[name], self.job.steps[name]
        self.store.record(
            self.layout.run_id,
            self.job.name,
            name,
            d.key,
            d.keyed_params or {},
            d.image_id,
            [self.decisions[n].key for n in step.needs],
        )


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_bytes()[-8192:].decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def new_state(
    job: Job,
    run_id: str,
    backend: str,
    decisions: dict[str, Decision],
    overrides: list[str],
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """run.json for a (re)started run; steps carry their key, and a handle left by a dead
    launcher is kept so that it can be reaped."""
    now = time.time()
    old_steps = (previous or {}).get("steps", {})
    steps = {}
    for name, step in job.steps.items():
        old = old_steps.get(name, {})
        steps[name] = {
            "status": "running" if old.get("status") in LIVE else "pending",
            "handle": old.get("handle") if old.get("status") in LIVE else None,
            "kind": step.kind,
            "image": step.image,
            "key": decisions[name].key,
            "image_id": decisions[name].image_id,
            "needs": list(step.needs),
            "params": decisions[name].keyed_params,
            "reason": decisions[name].reason,
        }
    return {
        "run_id": run_id,
        "job": job.name,
        "source": job.file,
        "overrides": list(overrides),
        "backend": backend,
        "created": (previous or {}).get("created", now),
        "status": "running",
        "launcher": {"pid": os.getpid(), "host": socket.gethostname(), "started": now},
        "steps": steps,
    }
