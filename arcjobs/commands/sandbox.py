"""`arcjobs sandbox run`: execute a predictions file safely (also the sandbox image's tool);
`arcjobs sandbox check`: which of the sandbox's layers are in force here."""

from __future__ import annotations

import os
from pathlib import Path

import click

from arcjobs.errors import UserError

FORK_PER_PROGRAM_NOTICE = (
    "notice: --fork-per-program is how every program runs now (a fresh process each); "
    "the flag does nothing and will be removed"
)
UNPROTECTED_HELP = (
    "Run programs even where a kernel layer of the sandbox (Landlock, seccomp) cannot be put "
    "up. Recorded in summary.json and in every execution record."
)


def default_cache() -> Path:
    """$ARCJOBS_SANDBOX_CACHE, else the user's cache directory (XDG)."""
    if os.environ.get("ARCJOBS_SANDBOX_CACHE"):
        return Path(os.environ["ARCJOBS_SANDBOX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "arcjobs" / "sandbox.sqlite"


@click.group()
def sandbox() -> None:
    """Execute model-written programs safely."""


@sandbox.command()
@click.option("--tasks", required=True, help="Kaggle challenges JSON (or a built-in dataset name).")
@click.option("--predictions", required=True, help="predictions.jsonl, or a directory holding one.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--solutions", default=None, help="Kaggle solutions JSON, to score test outputs.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Default: CPUs available."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="Seconds per program.",
)
@click.option(
    "--memory", type=click.IntRange(min=16), default=1024, show_default=True, help="MB per program."
)
@click.option("--no-cache", is_flag=True, help="Run every program, ignoring the result cache.")
@click.option("--unprotected", is_flag=True, help=UNPROTECTED_HELP)
@click.option(
    "--reject",
    type=click.Choice(["none", "study"]),
    default="none",
    show_default=True,
    help="Refuse sources by what they say, unrun (`study`: the seed study's list).",
)
@click.option("--fork-per-program", is_flag=True, hidden=True, help="Deprecated: does nothing.")
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Result cache file (default: ~/.cache/arcjobs/sandbox.sqlite).",
)
def run(
    tasks: str,
    predictions: str,
    out: Path,
    solutions: str | None,
    workers: int | None,
    timeout: float,
    memory: int,
    no_cache: bool,
    unprotected: bool,
    reject: str,
    fork_per_program: bool,
    cache: Path | None,
) -> None:
    """Run every prediction's program on its task; write OUT/executions.jsonl and summary.json.

    Every program runs in a fresh process of its own, locked down by the kernel before its
    source is compiled; the run refuses to start where that cannot be done (see `arcjobs
    sandbox check`). OUT appears complete or not at all: it is written beside OUT and renamed
    into place.
    """
    from arcjobs import atomic
    from arcjobs.arc.tasks import load_dataset
    from arcjobs.sandbox.files import read_predictions, resolve_predictions, run_batch
    from arcjobs.sandbox.limits import Limits
    from arcjobs.sandbox.pool import SandboxError

    if fork_per_program:
        click.echo(FORK_PER_PROGRAM_NOTICE, err=True)
    loaded = load_dataset(tasks, solutions=solutions)
    programs = read_predictions(resolve_predictions(predictions), loaded)
    cache_path = None if no_cache else (cache or default_cache())
    if cache_path is not None and not _writable(cache_path):
        click.echo(f"warning: {cache_path}: not writable, running without the cache", err=True)
        cache_path = None
    out = out.absolute()
    limits = Limits(timeout_s=timeout, memory_mb=memory)
    try:
        with atomic.staged_dir(out) as tmp:
            summary = run_batch(
                programs, loaded, tmp, limits, workers, cache_path, unprotected, reject
            )
    except SandboxError as e:  # the sandbox itself cannot start: one line, not a traceback
        raise UserError(str(e)) from None
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
    click.echo(
        f"{summary['programs']} programs in {summary['seconds']}s: {counts or 'none'} → {out}",
        err=True,
    )


@sandbox.command()
@click.option("--json", "as_json", is_flag=True, help="The probe's report as JSON.")
def check(as_json: bool) -> None:
    """Show each layer of the sandbox and whether it is in force here.

    Starts one worker as `sandbox run` would; its probe child locks itself down like every
    program's process and tries what each layer must refuse. Exits 2 when a layer that
    runs require is missing.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from arcjobs.sandbox.dsl import DSL_PATH
    from arcjobs.sandbox.executor import isolation_report
    from arcjobs.sandbox.pool import Pool, SandboxError
    from arcjobs.sandbox.probe import REQUIRED

    try:
        with Pool(1, str(DSL_PATH), require=False) as pool:
            pool.start()
            report = isolation_report(pool.layers, False)
    except SandboxError as e:
        raise UserError(str(e)) from None
    report.pop("unprotected")
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        table = Table("layer", "in force", "what it stops", title="arcjobs sandbox")
        why = report.get("why") or {}
        for name, stops in LAYERS:
            value = report.get(name)
            shown = _shown(value) + (f" ({why[name]})" if name in why else "")
            mark = " (required)" if name in REQUIRED else ""
            table.add_row(name + mark, shown, stops)
        Console().print(table)
    if report["missing"]:
        raise UserError(f"missing: {', '.join(report['missing'])}")


# what `check` prints, in the order a child puts the layers up
LAYERS = (
    ("fresh_process", "one program's state reaching another's"),
    ("uid", "reading files only the worker's user may read (65534 where root can switch)"),
    ("no_capabilities", "privileged operations, also for a root process"),
    ("no_new_privs", "gaining privileges; lets an unprivileged process install the rest"),
    ("seccomp", "processes, exec, sockets, signals and limits of others, ptrace, mounts"),
    ("landlock", "reading beyond the code imports need; writing anything"),
    ("landlock_tcp", "TCP binds and connections (Landlock ABI 4)"),
    ("landlock_scoped_signals", "signals and abstract sockets beyond the program (ABI 6)"),
    ("rlimits", "CPU time, memory, file size, open files, processes, core dumps"),
    ("network_namespace", "any network at all (an empty namespace)"),
    ("pids_cgroup", "a fork bomb, also as root"),
    ("subreaper", "descendants that escape the program's process group"),
    ("worker_undumpable", "ptrace and /proc of the worker by processes of its uid"),
    ("audit_hook", "nothing: it explains refusals with an `unsafe` status"),
    ("container", "the container's own hardening, when True"),
)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "-" if value is None else str(value)


def _writable(path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


__all__ = ["sandbox"]
