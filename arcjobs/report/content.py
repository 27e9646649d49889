"""What the report says, as a list of sections of simple blocks, before any markup.

The HTML page and the Markdown file show the same tables, charts and grids; building the
content once and rendering it twice (`html`, `markdown`) keeps them from drifting apart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arcjobs.report import plots
from arcjobs.report.collect import ReportData, eval_label, round_points
from arcjobs.report.examples import Example
from arcjobs.report.grids import as_grid, grid_png


@dataclass
class Para:
    text: str


@dataclass
class Heading:
    """A sub-heading inside a section (one per example task)."""

    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    name: str  # file name under img/
    caption: str
    png: bytes


@dataclass
class GridRow:
    """Small grid images side by side, each with a caption; png None = nothing to draw."""

    items: list[tuple[str, Image | None]]


@dataclass
class Code:
    text: str


@dataclass
class Details:
    """A collapsible block (collapsed in the browser): long tables, program listings."""

    summary: str
    blocks: list[Block]


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


Block = Para | Heading | Table | Image | GridRow | Code | Details


def cell(value: Any) -> str:
    """A metric as the evaluate step's metrics.md writes it: 3 decimals, – for unknown."""
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


MAX_IDS = 20  # task ids listed in a table cell; longer lists go below it, folded


def _ids(ids: list[str]) -> str:
    if not ids:
        return "–"
    more = f" … (+{len(ids) - MAX_IDS} more)" if len(ids) > MAX_IDS else ""
    return ", ".join(ids[:MAX_IDS]) + more


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "–"


def _seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


class _Images:
    """Names every image uniquely (img/NNN-what.png) in the order the page shows them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, what: str, caption: str, png: bytes | None) -> Image | None:
        if png is None:
            return None
        self.count += 1
        slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", what)[:60]
        return Image(f"{self.count:03d}-{slug}.png", caption, png)


def _metrics_section(data: ReportData) -> Section:
    from arcjobs.arc.metrics import COLUMNS

    # metrics.json stores pass@k keys as sorted text ("128" before "8"): order them as numbers
    ks = sorted({k for ev in data.evals for k in ev.mean.get("pass_at_k", {})}, key=int)
    header = [title for _, title in COLUMNS] + [f"pass@{k}" for k in ks] + ["ARC score"]

    def row(m: dict[str, Any]) -> list[str]:
        values = [m.get(key) for key, _ in COLUMNS]
        values += [m.get("pass_at_k", {}).get(k) for k in ks] + [m.get("arc_score")]
        return [cell(v) for v in values]

    sec = Section("metrics", "Metrics per evaluate step")
    sec.blocks.append(
        Para(
            "Means over the tasks of each evaluate step's dataset (definitions in "
            "arcjobs/arc/metrics.py); n is the total number of predictions."
        )
    )
    sec.blocks.append(
        Table(
            ["evaluate step", "dataset", "tasks"] + header,
            [
                [eval_label(data, ev), ev.dataset, str(len(ev.per_task)), *row(ev.mean)]
                for ev in data.evals
            ],
        )
    )
    for ev in data.evals:
        rows = [[tid, *row(m)] for tid, m in sorted(ev.per_task.items())]
        sec.blocks.append(
            Details(f"per task: {eval_label(data, ev)}", [Table(["task", *header], rows)])
        )
    studied = [ev for ev in data.evals if ev.study]
    if studied:
        from arcjobs.arc.study_metrics import COLUMNS as STUDY

        sec.blocks.append(Heading("The seed study's table"))
        sec.blocks.append(
            Para(
                "The same searches with the seed study's own definitions (ironbar/arc25 at "
                "2871b24), to compare with its write-up, not with the table above: valid code "
                "= a code block was found; pixel similarity, correct grids and the pass rates "
                "are means over the predictions with valid outputs only (the study's known "
                "bug; the last column is its fix, pass rate × valid outputs); pixel similarity "
                "counts partial overlaps; the mean is over the tasks with predictions."
            )
        )
        sec.blocks.append(
            Table(
                ["evaluate step"] + [title for _, title in STUDY],
                [
                    [eval_label(data, ev), *(cell(ev.study.get(k)) for k, _ in STUDY)]
                    for ev in studied
                ],
            )
        )
    return sec


def _legitimacy_section(data: ReportData, image: _Images) -> Section | None:
    """The base model's odds on each task an evaluate step solved and its `before` did not."""
    from arcjobs.arc.legitimacy import shown

    checked = [ev for ev in data.evals if ev.legitimacy is not None]
    if not checked:
        return None
    sec = Section("legitimacy", "Was the gain legitimate?")
    sec.blocks.append(
        Para(
            "For each task solved after learning and not before: the base model's pass rate on "
            "it in a large reference search, and the predictions that implies (1 / rate; "
            '"> N" where the reference never solved it in its N). A task the base model would '
            "need more predictions for than the search after learning had is not explained by "
            "luck at that budget."
        )
    )
    for ev in checked:
        label = eval_label(data, ev)
        found = ev.legitimacy or {}
        rows = found.get("tasks", [])
        share = found.get("beyond_budget")
        sec.blocks.append(
            Heading(
                f"{label}: {len(rows)} newly solved"
                + ("" if share is None else f", {share:.0%} beyond the budget")
            )
        )
        chart = image(f"legitimacy-{label}", label, plots.legitimacy_chart(rows, label))
        if chart:
            sec.blocks.append(chart)
        sec.blocks.append(
            Table(
                ["task", "budget", "base pass rate", "base predictions needed"],
                [
                    [r["task_id"], str(r["budget"]), cell(r["base_pass_rate"]), shown(r)]
                    for r in rows
                ],
            )
        )
    return sec


def _rounds_section(data: ReportData, image: _Images) -> Section:
    points = round_points(data)
    sec = Section("rounds", "pass@n and ARC score per round")
    chart = image("rounds", "pass@n and ARC score per evaluate step", plots.rounds_chart(points))
    if chart:
        sec.blocks.append(chart)
    sec.blocks.append(
        Table(
            ["run / branch", "step", "pass@n", "ARC score"],
            [[p.series, p.stage, cell(p.pass_at_n), cell(p.arc_score)] for p in points],
        )
    )
    return sec


def _learning_section(data: ReportData, image: _Images) -> Section:
    ref = data.reference
    sec = Section("learning", "Newly solved tasks")
    basis = "pass@n" if ref.answers_known else "train pass@n (test answers unknown)"
    sec.blocks.append(
        Para(
            f"Solved means {basis} = 1. Compared with the reference, the first evaluate step "
            f"{eval_label(data, ref)}, on the tasks both scored."
        )
    )
    rows, full_lists = [], []
    for ev in data.evals:
        c = data.compare(ev)
        rows.append(
            [
                eval_label(data, ev),
                f"{c.solved} / {len(ev.per_task)}",
                str(len(c.newly_solved)),
                _ids(c.newly_solved),
                _ids(c.lost),
            ]
        )
        for what, ids in (("newly solved", c.newly_solved), ("lost", c.lost)):
            if len(ids) > MAX_IDS:
                title = f"all {len(ids)} tasks {what} by {eval_label(data, ev)}"
                full_lists.append(Details(title, [Para(", ".join(ids))]))
    sec.blocks.append(
        Table(["evaluate step", "solved", "newly solved", "newly solved tasks", "lost"], rows)
    )
    sec.blocks += full_lists
    sec.blocks.append(
        Para(
            "Correct-grids ratio of solved and unsolved tasks: unsolved tasks with a high "
            "ratio are close, and the ones learning can tip over."
        )
    )
    for ev in data.evals:
        label = eval_label(data, ev)
        chart = image(f"correct-grids-{label}", label, plots.correct_grids_chart(ev, label))
        if chart:
            sec.blocks.append(chart)
    return sec


def _training_section(data: ReportData, image: _Images) -> Section:
    trains = [t for run in data.runs for t in run.trains]
    sec = Section("training", "Training")
    if not trains:
        sec.blocks.append(Para("No finished train step in these runs."))
        return sec
    labels = [f"{t.run_id} · {t.step}" if len(data.runs) > 1 else t.step for t in trains]
    chart = image("loss", "training loss", plots.loss_chart(trains, labels))
    if chart:
        sec.blocks.append(chart)
    count, rate = _count, lambda v: "–" if v is None else f"{v:,.1f}"
    keys = [
        ("global_step", "steps", count),
        ("samples", "samples", count),
        ("samples_skipped", "skipped", count),
        ("final_loss", "final loss", cell),
        ("tokens_seen", "tokens", count),
        ("tokens_per_s", "tokens/s", rate),
        ("train_runtime_s", "runtime s", rate),
    ]
    sec.blocks.append(
        Table(
            ["train step"] + [title for _, title, _ in keys],
            [
                [label] + [shown(t.metrics.get(k)) for k, _, shown in keys]
                for t, label in zip(trains, labels, strict=True)
            ],
        )
    )
    return sec


def _count(value: Any) -> str:
    """A count as a whole number (metrics.json may hold 1234.0)."""
    return "–" if value is None else f"{round(value):,}"


# steps shorter than this get no rate: 16 trivial programs in 0.5 s say nothing of speed
MIN_TIMED_S = 10.0


def _steps_section(data: ReportData, image: _Images) -> Section:
    sec = Section("steps", "Step durations and throughput")
    for run in data.runs:
        chart = image(f"timeline-{run.run_id}", f"steps of {run.run_id}", plots.timeline_chart(run))
        if chart:
            sec.blocks.append(chart)
        rows = [
            [
                s.name,
                s.kind,
                s.status,
                _seconds(s.seconds),
                ", ".join(f"{k} {v:,.1f}" for k, v in s.throughput.items())
                if s.seconds is not None and s.seconds >= MIN_TIMED_S
                else "–",
            ]
            for s in run.steps
        ]
        sec.blocks.append(Table(["step", "kind", "status", "time", "throughput"], rows))
        sec.blocks.append(Para(f"Rates are given for steps of {MIN_TIMED_S:.0f} s or more."))
    return sec


def _grid(image: _Images, what: str, caption: str, value: Any) -> tuple[str, Image | None]:
    grid = as_grid(value)
    return caption, image(what, caption, grid_png(grid) if grid is not None else None)


def _example_section(
    examples: list[Example], image: _Images, progress: Callable[[str], None]
) -> Section:
    sec = Section("tasks", "Example tasks")
    if not examples:
        sec.blocks.append(Para("No tasks to show."))
    for ex in examples:
        progress(f"drawing task {ex.task_id}")
        sec.blocks.append(Heading(f"{ex.task_id} — {ex.why}"))
        if ex.note:
            sec.blocks.append(Para(ex.note))
            continue
        tid = ex.task_id
        items = []
        for i, (inp, out) in enumerate(ex.train):
            items.append(_grid(image, f"{tid}-train{i}-in", f"train {i + 1} input", inp))
            items.append(_grid(image, f"{tid}-train{i}-out", f"train {i + 1} output", out))
        if ex.train_total > len(ex.train):
            sec.blocks.append(Para(f"first {len(ex.train)} of {ex.train_total} train pairs"))
        sec.blocks.append(GridRow(items))
        for j, inp in enumerate(ex.test_inputs):
            items = [_grid(image, f"{tid}-test{j}-in", f"test {j + 1} input", inp)]
            if ex.test_outputs is not None:
                items.append(_grid(image, f"{tid}-test{j}-out", "expected", ex.test_outputs[j]))
            for a in ex.attempts:
                tries = a.tries[j] if j < len(a.tries) else []
                if not tries:  # no program of this step produced a grid for this input
                    items.append((f"{a.label}: no program gave a grid", None))
                for n, grid in enumerate(tries):
                    mark = ""
                    if a.hits is not None and j < len(a.hits):
                        mark = " ✓" if a.hits[j][n] else " ✗"
                    caption = f"{a.label} attempt {n + 1}{mark}"
                    items.append(_grid(image, f"{tid}-test{j}-{a.label}-{n}", caption, grid))
            sec.blocks.append(GridRow(items))
        for a in ex.attempts:
            if a.program:
                p = a.program
                train = p.get("train_correct") or []
                test = p.get("test_correct")
                score = f"{sum(map(bool, train))}/{len(train)} train pairs"
                if test is not None:
                    score += f", {sum(map(bool, test))}/{len(test)} test outputs"
                sec.blocks.append(
                    Details(
                        f"best program of {a.label} ({p.get('sample_id')}: {score})",
                        [Code(p.get("code") or "")],
                    )
                )
    return sec


def build(
    data: ReportData, examples: list[Example], progress: Callable[[str], None]
) -> list[Section]:
    """Every section of the report, charts and grids drawn; `progress` hears each stage."""
    image = _Images()
    overview = Section("runs", "Runs")
    overview.blocks.append(
        Table(
            ["run", "job", "backend", "status", "created", "steps", "evaluate steps"],
            [
                [
                    r.run_id,
                    r.job,
                    r.backend,
                    r.status,
                    _when(r.created),
                    str(len(r.steps)),
                    str(len(r.evals)),
                ]
                for r in data.runs
            ],
        )
    )
    described = {r.job: r.description for r in data.runs if r.description}
    overview.blocks += [Para(f"{job}: {text}") for job, text in described.items()]
    sections = [overview]
    for stage, make in (
        ("metrics tables", lambda: _metrics_section(data)),
        ("rounds chart", lambda: _rounds_section(data, image)),
        ("solved/unsolved charts", lambda: _learning_section(data, image)),
        ("training curves", lambda: _training_section(data, image)),
        ("step timelines", lambda: _steps_section(data, image)),
    ):
        progress(stage)
        sections.append(make())
    legitimacy = _legitimacy_section(data, image)
    if legitimacy is not None:
        sections.append(legitimacy)
    sections.append(_example_section(examples, image, progress))
    return sections


def images(sections: list[Section]) -> list[Image]:
    """Every image of the report, in page order (each once)."""
    found: list[Image] = []

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            if isinstance(b, Image):
                found.append(b)
            elif isinstance(b, GridRow):
                found.extend(img for _, img in b.items if img is not None)
            elif isinstance(b, Details):
                walk(b.blocks)

    for s in sections:
        walk(s.blocks)
    return found
