"""`arcjobs status`, `arcjobs logs` and `arcjobs cancel`: read and steer runs from run.json."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from arcjobs.backends import get_backend, outlives_launcher
from arcjobs.backends.base import Backend
from arcjobs.commands import options
from arcjobs.engine.progress import STYLE, steps_table, warning_lines
from arcjobs.engine.states import DONE, LIVE, StepState
from arcjobs.engine.store import RunStore
from arcjobs.errors import UserError


def _effective_status(store: RunStore, state: dict[str, Any]) -> str:
    """A run marked running whose launcher holds no lock was interrupted (a cluster run goes on
    without its launcher)."""
    if (
        state.get("status") == "running"
        and not outlives_launcher(state.get("backend", ""))
        and not store.is_locked(state["run_id"])
    ):
        return "interrupted"
    return state.get("status", "?")


def _refresh_detached(
    store: RunStore, state: dict[str, Any], backend: Backend | None = None
) -> dict[str, Any]:
    """Steps of a cluster run that no launcher follows: ask the backend (display only)."""
    if not outlives_launcher(state.get("backend", "")) or store.is_locked(state["run_id"]):
        return state
    live = {
        n: i["handle"]
        for n, i in state["steps"].items()
        if i.get("status") in LIVE and i.get("handle")
    }
    if not live:
        return state
    backend = backend or get_backend(state["backend"], data_root=store.data_root)
    for name, st in backend.poll(live).items():
        info = state["steps"][name]
        if st.state in LIVE:
            info.update(status=st.state, reason=st.detail or info.get("reason", ""))
        else:
            ended: StepState = (
                "succeeded" if st.state == "exited" and st.exit_code == 0 else "failed"
            )
            info.update(
                status=ended,
                reason=st.detail or f"exit code {st.exit_code}",
            )
    return state


@click.command()
@click.argument("run_id", required=False)
@options.data_root
@click.option("--watch", "-w", is_flag=True, help="Keep refreshing while the run is live.")
def status(run_id: str | None, data_root: Path, watch: bool) -> None:
    """Without RUN_ID: a table of runs. With it: the run's steps."""
    store = RunStore(data_root)
    console = Console()
    if run_id is None:
        # run ids are what every other command takes: never cut, the other columns wrap
        console.print(f"runs under {store.data_root}")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column("run", no_wrap=True)
        table.add_column("job", overflow="fold")
        table.add_column("status", no_wrap=True)
        for col in ("done", "backend", "start", "took"):
            table.add_column(col, overflow="fold")
        for state in store.list_runs():
            st = _effective_status(store, state)
            steps = state.get("steps", {}).values()
            done = sum(1 for s in steps if s.get("status") in DONE)
            took = (state.get("ended") or state.get("updated", time.time())) - state.get(
                "created", 0
            )
            table.add_row(
                state["run_id"],
                state.get("job", ""),
                f"[{STYLE.get(st, '')}]{st}[/]",
                f"{done}/{len(state.get('steps', {}))}",
                state.get("backend", ""),
                time.strftime("%m-%d %H:%M", time.localtime(state.get("created", 0))),
                f"{took:.0f}s",
            )
        console.print(table)
        return

    def current() -> dict[str, Any]:
        state = _refresh_detached(store, store.read(run_id))
        state["status"] = _effective_status(store, state)
        return state

    def warn(state: dict[str, Any]) -> None:
        for line in warning_lines(state, store.layout(run_id)):
            click.echo(line)

    if not watch:
        state = current()
        console.print(steps_table(state))
        warn(state)
        return
    with Live(steps_table(current()), console=console, refresh_per_second=2) as live:
        while store.is_locked(run_id):
            time.sleep(0.5)
            live.update(steps_table(current()))
        state = current()
        live.update(steps_table(state))
    warn(state)


def _step_name(state: dict[str, Any], step: str) -> str:
    if step in state["steps"]:
        return step
    matches = [n for n in state["steps"] if n.split(".")[0] == step]
    if len(matches) == 1:
        return matches[0]
    raise UserError(
        f"run {state['run_id']} has no step {step!r}"
        + (
            f"; did you mean one of: {', '.join(matches)}"
            if matches
            else f"; its steps: {', '.join(state['steps'])}"
        )
    )


@click.command()
@click.argument("run_id")
@click.argument("step")
@options.data_root
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the step runs.")
def logs(run_id: str, step: str, data_root: Path, follow: bool) -> None:
    """Print STEP's log (stdout and stderr) from run RUN_ID."""
    store = RunStore(data_root)
    state = store.read(run_id)
    name = _step_name(state, step)
    path = store.layout(run_id).log(name)
    pos = 0
    detached = follow and outlives_launcher(state.get("backend", ""))
    backend = get_backend(state["backend"], data_root=store.data_root) if detached else None
    live, asked = follow, -float("inf")
    while True:
        # Decided before reading, so that the last read has everything the step wrote; a
        # cluster that no launcher follows is asked at its backend's pace, no faster.
        pace = backend.poll_interval_s if backend and not store.is_locked(run_id) else 0.0
        if follow and time.monotonic() - asked >= pace:
            asked = time.monotonic()
            live = _step_live(store, run_id, name, backend)
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos += len(chunk)
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except FileNotFoundError:
            if not follow:
                raise UserError(f"step {name} of run {run_id} has no log yet ({path})") from None
        if not live:
            return
        time.sleep(0.5)


def _step_live(store: RunStore, run_id: str, name: str, backend: Backend | None) -> bool:
    """Whether the step may still write to its log: its launcher says so, or, for a cluster
    run that no launcher follows, the cluster does (asked through one backend per `logs`)."""
    state = store.read(run_id)
    if store.is_locked(run_id):
        return state["steps"][name].get("status") in {"pending", *LIVE}
    if not outlives_launcher(state.get("backend", "")):
        return False
    state = _refresh_detached(store, state, backend)
    return state["steps"][name].get("status") in LIVE


@click.command()
@click.argument("run_id")
@options.data_root
def cancel(run_id: str, data_root: Path) -> None:
    """Stop a live run: its launcher cancels its steps; orphaned steps are stopped directly."""
    store = RunStore(data_root)
    state = store.read(run_id)
    launcher = state.get("launcher", {})
    if store.is_locked(run_id):
        if launcher.get("host") != socket.gethostname():
            raise UserError(
                f"run {run_id} is driven by a launcher on {launcher.get('host')}; cancel it there"
            )
        os.kill(launcher["pid"], signal.SIGTERM)
        deadline = time.time() + 60
        while store.is_locked(run_id) and time.time() < deadline:
            time.sleep(0.2)
        if store.is_locked(run_id):
            raise UserError(f"launcher {launcher['pid']} of run {run_id} did not stop within 60 s")
        click.echo(f"run {run_id} cancelled")
        return
    backend = get_backend(state["backend"], data_root=store.data_root)
    stopped = 0
    for info in state["steps"].values():
        if info.get("status") in LIVE and info.get("handle"):
            backend.cancel(info["handle"])
            info.update(status="cancelled", handle=None)
            stopped += 1
    if stopped or state.get("status") == "running":
        state["status"] = "cancelled"
        store.write(state)
    click.echo(
        f"run {run_id}: {stopped} step(s) stopped"
        if stopped
        else f"run {run_id} has nothing running"
    )
