"""How a live run shows itself: a rich table on a terminal, one line per change otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from arcjobs.engine.states import DONE, StepState
from arcjobs.layout import RunLayout
from arcjobs.manifest import warnings

STYLE: dict[str, str] = {  # by StepState, and RunState for runs
    "succeeded": "green",
    "reused": "cyan",
    "failed": "bold red",
    "running": "yellow",
    "queued": "blue",
    "skipped": "magenta",
    "cancelled": "red",
    "pending": "dim",
}
TIMED: frozenset[StepState] = frozenset({"running", "succeeded", "failed"})  # have a duration


def steps_table(state: dict[str, Any]) -> Table:
    table = Table(title=f"run {state['run_id']} [{state.get('status', '?')}]", title_justify="left")
    for col in ("step", "kind", "status", "time", "note"):
        table.add_column(col, overflow="fold")
    now = time.time()
    for name, info in state["steps"].items():
        status = info.get("status", "?")
        started, ended = info.get("started"), info.get("ended")
        took = f"{(ended or now) - started:.1f}s" if started and status in TIMED else ""
        note = info.get("reason", "") or ""
        table.add_row(
            name, info.get("kind", ""), f"[{STYLE.get(status, '')}]{status}[/]", took, note
        )
    return table


def warning_lines(state: dict[str, Any], layout: RunLayout) -> list[str]:
    """`warning: step S: ...` for each warning the manifest of a published step keeps."""
    return [
        f"warning: step {name}: {text}"
        for name, info in state["steps"].items()
        if info.get("status") in DONE
        for text in warnings(layout.step_dir(name))
    ]


class Progress:
    """Callable reporter for the scheduler; use as a context manager around the run."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        self.seen: dict[str, str] = {}

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, state: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(steps_table(state))
            return
        for name, info in state["steps"].items():
            status = info.get("status", "?")
            if self.seen.get(name) != status:
                self.seen[name] = status
                if status != "pending":
                    note = (
                        f" ({info['reason']})" if info.get("reason") and status != "running" else ""
                    )
                    print(
                        f"{time.strftime('%H:%M:%S')} {name}: {status}{note}",
                        file=sys.stderr,
                        flush=True,
                    )
