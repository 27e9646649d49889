"""`arcjobs sandbox run`: execute a predictions file safely (also the sandbox image's tool)."""

from __future__ import annotations

import os
from pathlib import Path

import click


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
@click.option(
    "--fork-per-program",
    is_flag=True,
    help="A fresh process for every program, even those proven pure (slower).",
)
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
    fork_per_program: bool,
    cache: Path | None,
) -> None:
    """Run every prediction's program on its task; write OUT/executions.jsonl and summary.json.

    OUT appears complete or not at all: it is written beside OUT and renamed into place.
    """
    from arcjobs import atomic
    from arcjobs.arc.tasks import load_dataset
    from arcjobs.sandbox.files import read_predictions, resolve_predictions, run_batch
    from arcjobs.sandbox.limits import Limits
    from arcjobs.sandbox.pool import SandboxError

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
                programs, loaded, tmp, limits, workers, cache_path, not fork_per_program
            )
    except SandboxError as e:  # the sandbox itself cannot start: one line, not a traceback
        raise click.ClickException(str(e)) from None
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
    click.echo(
        f"{summary['programs']} programs in {summary['seconds']}s: {counts or 'none'} → {out}",
        err=True,
    )


def _writable(path: Path) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


__all__ = ["sandbox"]
