"""The report's charts, drawn with matplotlib into PNG bytes.

Figures are made with `matplotlib.figure.Figure` directly, not pyplot: no global figure
registry to leak between charts, and no GUI backend is ever chosen — the report renders on
a headless cluster node as it does on a laptop. Each function returns None when it has
nothing to draw, so the page can say so instead of showing an empty frame.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from matplotlib import ticker
from matplotlib.figure import Figure

from arcjobs.report.collect import EvalInfo, RoundPoint, RunInfo, TrainInfo

DPI = 100


def _plain_ticks(ax: Any) -> None:
    """Plain numbers on a log-scaled y axis ("7.6", not "7.62×10⁰"), major ticks only."""
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def rounds_chart(points: list[RoundPoint]) -> bytes | None:
    """pass@n and ARC score per evaluate step, one line per run/branch across its rounds."""
    if not points:
        return None
    series: dict[str, list[RoundPoint]] = defaultdict(list)
    for p in points:
        series[p.series].append(p)
    stages = list(dict.fromkeys(p.stage for p in points))
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, attr, title in ((axes[0], "pass_at_n", "pass@n"), (axes[1], "arc_score", "ARC score")):
        for name, pts in series.items():
            xs = [stages.index(p.stage) for p in pts if getattr(p, attr) is not None]
            ys = [getattr(p, attr) for p in pts if getattr(p, attr) is not None]
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_title(f"{title} (mean over tasks)")
        ax.set_xticks(range(len(stages)), stages, rotation=20, ha="right")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    if len(series) > 1:
        axes[1].legend(fontsize="small", loc="best")
    return _png(fig)


def loss_chart(trains: list[TrainInfo], labels: list[str]) -> bytes | None:
    """Training loss against optimizer step, one curve per train step."""
    curves = [(t, label) for t, label in zip(trains, labels, strict=True) if t.loss]
    if not curves:
        return None
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for t, label in curves:
        ax.plot([s for s, _ in t.loss], [v for _, v in t.loss], label=label)
    if all(v > 0 for t, _ in curves for _, v in t.loss):
        ax.set_yscale("log")
        _plain_ticks(ax)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (completion tokens)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def correct_grids_chart(ev: EvalInfo, title: str) -> bytes | None:
    """Histogram of each task's correct-grids ratio, solved tasks against unsolved ones.

    The ratio (mean over a task's predictions of the fraction of known grids exactly right)
    separates the groups when search is close: unsolved tasks with a high ratio are the
    ones learning can tip over.
    """
    fig = correct_grids_figure(ev, title)
    return None if fig is None else _png(fig)


def correct_grids_figure(ev: EvalInfo, title: str) -> Figure | None:
    if not ev.per_task:
        return None
    solved = ev.solved()
    groups = {"solved": [], "unsolved": []}
    for tid, m in ev.per_task.items():
        groups["solved" if tid in solved else "unsolved"].append(m.get("correct_grids") or 0.0)
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    bins = [i / 10 for i in range(11)]
    # stacked, so each bar spans its whole bin: side by side, a ratio of 0.0 would be drawn
    # near 0.07
    ax.hist(
        [groups["solved"], groups["unsolved"]],
        bins=bins,
        stacked=True,
        label=[f"solved ({len(groups['solved'])})", f"unsolved ({len(groups['unsolved'])})"],
        color=["#2ECC40", "#FF4136"],
        edgecolor="white",
    )
    ax.set_xticks(bins)
    ax.set_xlabel("correct-grids ratio of the task")
    ax.set_ylabel("tasks")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    return fig


def timeline_chart(run: RunInfo) -> bytes | None:
    """When each step ran: one bar per step from its start to its end (a Gantt chart)."""
    timed = [s for s in run.steps if s.seconds is not None]
    if not timed:
        return None
    t0 = min(s.started for s in timed if s.started is not None)
    fig = Figure(figsize=(8, 0.8 + 0.32 * len(timed)), layout="constrained")
    ax = fig.subplots()
    colours = {"succeeded": "#0074D9", "failed": "#FF4136"}
    names = [s.name for s in timed]
    ax.barh(
        range(len(timed)),
        [s.seconds for s in timed],
        left=[s.started - t0 for s in timed],
        color=[colours.get(s.status, "#AAAAAA") for s in timed],
    )
    ax.set_yticks(range(len(timed)), names, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first step started")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def legitimacy_chart(rows: list[dict], title: str) -> bytes | None:
    """Per newly solved task, the base-model predictions it would need (log scale), against
    the budget the search after learning had; a task the reference never solved is drawn at
    the reference's size, hatched, as "more than"."""
    rows = [r for r in rows if r["reference_predictions"]]
    if not rows:
        return None
    fig = Figure(figsize=(max(5, 0.5 * len(rows) + 2), 3.6), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        never = r["predictions_needed"] is None
        height = r["reference_predictions"] if never else r["predictions_needed"]
        ax.bar(i, height, color="#bbb" if never else "#4477aa", hatch="//" if never else None)
    budget = max(r["budget"] for r in rows)
    ax.axhline(budget, color="#cc3311", linestyle="--", label=f"budget after learning ({budget})")
    if any(r["predictions_needed"] is None for r in rows):
        ax.bar([0], [0], color="#bbb", hatch="//", label="never solved by the reference (> N)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1)
    _plain_ticks(ax)
    ax.set_xticks(range(len(rows)), [r["task_id"] for r in rows], rotation=60, ha="right")
    ax.set_ylabel("base-model predictions needed")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
