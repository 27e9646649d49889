"""Make a report directory: collect, draw, render, publish — in that order, atomically.

The directory (index.html, report.md, img/) is written into a private sibling and renamed
into place in one step, so a browser pointed at a report being regenerated sees the old one
or the new one, never half of each, and a failure leaves the old report untouched.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from arcjobs import atomic
from arcjobs.errors import UserError
from arcjobs.report import content, examples, html, markdown
from arcjobs.report.collect import collect


def default_out(data_root: Path, run_ids: list[str]) -> Path:
    """`reports/RUN` for one run; a comparison gets a directory of its own
    (`reports/RUN+OTHER+...`), so it never replaces a run's single report."""
    return Path(data_root).absolute() / "reports" / "+".join(dict.fromkeys(run_ids))


def _check_out(out: Path) -> None:
    """Refuse to replace a directory that is not a report: publishing replaces it whole."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "index.html").exists())
    ):
        raise UserError(f"--out {out}: exists and is not an arcjobs report; choose another path")


def make_report(
    data_root: Path, run_ids: list[str], out: Path, tasks: list[str] | None = None
) -> Path:
    """Write the report of `run_ids` to `out`; returns the path of its index.html."""
    out = Path(out).absolute()
    _check_out(out)
    data = collect(Path(data_root), run_ids)
    chosen = examples.choose(data, tasks)
    title = "arcjobs report: " + ", ".join(r.run_id for r in data.runs)
    # stages: the examples' data, five chart groups, one per example task
    with Progress(
        TextColumn("report"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        job = bar.add_task("reading example tasks", total=6 + len(chosen))
        shown = examples.build(data, chosen)
        bar.advance(job)

        def progress(stage: str) -> None:
            bar.update(job, description=stage, advance=1)

        sections = content.build(data, shown, progress)
    with atomic.staged_dir(out) as tmp:
        (tmp / markdown.IMG_DIR).mkdir()
        for img in content.images(sections):
            (tmp / markdown.IMG_DIR / img.name).write_bytes(img.png)
        (tmp / "index.html").write_text(html.render(title, sections))
        (tmp / "report.md").write_text(markdown.render(title, sections))
    return out / "index.html"
