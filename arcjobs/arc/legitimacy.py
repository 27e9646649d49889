"""Was a gain legitimate? The base model's odds on each task solved after learning.

The seed study's check: a task solved after test-time training but not before might have
been solved by the base model anyway, given more samples. A large search with the base model
(the reference: thousands of predictions per task, `jobs/baseline.yaml --set
predictions=6144`) gives its pass rate on each newly solved task, and 1 / that rate is about
how many predictions it would have needed; "> N" where it never solved the task in its N.
The study found that 72% of its newly solved tasks would need more than 1024.

"Solved" is pass@n: some prediction correct on every train and every test output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from arcjobs.arc.executions import Execution
from arcjobs.arc.scoring import score_prediction
from arcjobs.arc.tasks import Task


def _passes(tasks: dict[str, Task], executions: Iterable[Execution]) -> dict[str, list[int]]:
    """task id → [predictions, passing predictions]."""
    counts: dict[str, list[int]] = {}
    for ex in executions:
        tally = counts.setdefault(ex.task_id, [0, 0])
        tally[0] += 1
        tally[1] += bool(score_prediction(tasks[ex.task_id], ex).passes)
    return counts


def newly_solved(
    tasks: dict[str, Task],
    after: Iterable[Execution],
    before: Iterable[Execution],
    reference: Iterable[Execution],
) -> dict[str, Any]:
    """For every task `after` solves and `before` does not: the reference's predictions and
    passes on it, the base pass rate, and the predictions it implies (None: never solved)."""
    now, then, base = _passes(tasks, after), _passes(tasks, before), _passes(tasks, reference)
    rows = []
    for tid in sorted(t for t, (_, c) in now.items() if c and not then.get(t, [0, 0])[1]):
        n, c = base.get(tid, [0, 0])
        rows.append(
            {
                "task_id": tid,
                "budget": now[tid][0],
                "reference_predictions": n,
                "reference_passes": c,
                "base_pass_rate": c / n if n else None,
                "predictions_needed": n / c if c else None,
            }
        )
    return {"tasks": rows, "beyond_budget": beyond_budget(rows)}


def shown(row: dict[str, Any]) -> str:
    """The predictions needed as people read it: "≈ 41", or "> 6144" where the reference
    never solved the task, or "no reference" where it did not sample it."""
    if not row["reference_predictions"]:
        return "no reference"
    needed = row["predictions_needed"]
    return f"> {row['reference_predictions']}" if needed is None else f"≈ {needed:.0f}"


def beyond_budget(rows: list[dict[str, Any]]) -> float | None:
    """The share of newly solved tasks the base model would need more predictions for than
    the search after learning had (its budget): those luck at that budget does not explain.
    None without a task the reference sampled."""
    sampled = [r for r in rows if r["reference_predictions"]]
    if not sampled:
        return None
    over = [
        r
        for r in sampled
        if r["predictions_needed"] is None or r["predictions_needed"] > r["budget"]
    ]
    return len(over) / len(sampled)


def to_markdown(found: dict[str, Any]) -> str:
    lines = [
        "| task | budget after learning | base pass rate | base predictions needed |",
        "|---|---:|---:|---:|",
    ]
    for row in found["tasks"]:
        rate = row["base_pass_rate"]
        lines.append(
            f"| {row['task_id']} | {row['budget']} | "
            f"{'–' if rate is None else f'{rate:.4f}'} | {shown(row)} |"
        )
    share = found["beyond_budget"]
    if share is not None:
        lines.append(
            f"\n{share:.0%} of the newly solved tasks would need more base-model predictions "
            "than the search after learning had."
        )
    return "\n".join(lines) + "\n"
