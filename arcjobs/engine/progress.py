"""How a live run shows itself: a rich table on a terminal, one line per change otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from arcjobs.engine.states import DONE, StepState
from arcjobs.layout import RunLayout
from arcjobs.manifest import warnings
from arcjobs.spec.names import parse_step_name, step_order

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


def steps_table(state: dict[str, Any]) -> Group:
    """The run's steps in the order the work flows (`step_order`: by the DAG, then round),
    a rule where the round changes, a matrix step's branches side by side.

    Nothing is cut at 80 columns: the run id is a line of its own, the step column holds
    the name without its branch (`learn.r2`), the branch one `axis=value` a line, neither
    wraps, and the note (the one column that may) wraps instead."""
    run_status = state.get("status", "?")
    title = Text.assemble(
        "run ", (state["run_id"], "bold"), " ", (run_status, STYLE.get(run_status, ""))
    )
    names = {name: parse_step_name(name) for name in step_order(state["steps"])}
    branched = any(n.branch for n in names.values())
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("step", no_wrap=True)
    if branched:
        table.add_column("branch", no_wrap=True)  # an axis a line
    table.add_column("status", no_wrap=True)
    table.add_column("time", no_wrap=True, justify="right")
    table.add_column("note", overflow="fold")
    now = time.time()
    previous = None
    for name, parsed in names.items():
        info = state["steps"][name]
        if previous is not None and parsed.round != previous.round:
            table.add_section()
        previous = parsed
        status = info.get("status", "?")
        started, ended = info.get("started"), info.get("ended")
        took = f"{(ended or now) - started:.1f}s" if started and status in TIMED else ""
        branch = ["\n".join(f"{axis}={value}" for axis, value in parsed.branch)] if branched else []
        styled = f"[{STYLE.get(status, '')}]{status}[/]"
        table.add_row(parsed.stage, *branch, styled, took, info.get("reason", "") or "")
    return Group(title, table)


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
