"""`arcjobs report RUN [RUN...]`: an HTML + Markdown report of one run or several.

Only click and the options are imported at module level: the report's numpy/matplotlib
work is imported inside the command, so listing commands stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from arcjobs.commands import options


@click.command()
@click.argument("run_ids", metavar="RUN [RUN...]", nargs=-1, required=True)
@options.data_root
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Report directory (replaced whole). Default: <data-root>/reports/<first run id>.",
)
@click.option(
    "--tasks",
    metavar="ID,...",
    help="Task ids whose grids to show. Default: a few newly solved and unsolved tasks.",
)
def report(run_ids: tuple[str, ...], data_root: Path, out: Path | None, tasks: str | None) -> None:
    """Render RUNs side by side (metrics, rounds, learning, training, timings, grids).

    Writes index.html (self-contained, works offline), report.md and img/ into the report
    directory and prints the path of index.html. The first run's first evaluate step is
    the reference that "newly solved" is measured against.
    """
    from arcjobs.report.build import default_out, make_report

    ids = list(run_ids)
    wanted = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    index = make_report(data_root, ids, out or default_out(data_root, ids), wanted)
    click.echo(str(index))
