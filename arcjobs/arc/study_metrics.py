"""The seed study's search table, computed with the study's own definitions.

The study (ironbar/arc25 at 2871b24) reports its searches with `compute_search_metrics` in
`notebooks/010_search_with_BARC_models.ipynb`, which uses `pixel_similarity_score` and
`correct_grids_score` from `arc25/metrics.py`. They are re-implemented here from their
definitions, so that a number in this table compares with a number in the study's write-up.
They are NOT the project's metrics (`arcjobs.arc.metrics`), which are better defined; keep
the two apart (every key here starts with `study_`). Where they differ:

- valid code: a ```python block with code in it was found (project: ran to the end);
- pixel similarity, correct grids and both pass rates: means over the predictions whose
  outputs are valid, 0 when none is (project: over all predictions). The study notes this as
  a bug; `study_pass_rate_corrected` is its later fix, pass_rate × valid outputs;
- pixel similarity: the best alignment of the two grids at any offset, partial overlaps
  included, ÷ max(h)·max(w) (project: the smaller grid slid inside the larger only);
- correct grids and pass: over train AND test outputs;
- the mean: over the tasks that have predictions (project: every task of the dataset).

Valid outputs: the study accepts sides up to 35, the sandbox 30; nothing else differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from arcjobs.arc.executions import Execution
from arcjobs.arc.tasks import Task

COLUMNS = [
    ("study_n_preds", "n_preds"),
    ("study_valid_code", "valid code"),
    ("study_valid_outputs", "valid outputs"),
    ("study_unique_outputs", "unique outputs"),
    ("study_pixel_similarity", "pixel similarity"),
    ("study_correct_grids", "correct grids"),
    ("study_train_pass_rate", "train_pass_rate"),
    ("study_train_pass_at_n", "train_pass@n"),
    ("study_pass_rate", "pass_rate"),
    ("study_pass_at_n", "pass@n"),
    ("study_pass_rate_corrected", "pass_rate × valid outputs"),
]


def pixel_similarity(expected: Any, predicted: Any) -> float:
    """The study's `pixel_similarity_score`: the fraction of equal cells for equal shapes;
    otherwise the most equal cells over every placement of one grid on the other (any
    overlap, also a partial one at an edge) ÷ the area of max(h)×max(w)."""
    a, b = np.asarray(expected), np.asarray(predicted)
    (h1, w1), (h2, w2) = a.shape, b.shape
    if (h1, w1) == (h2, w2):
        return float(np.mean(a == b))
    best = 0
    for dy in range(-(h2 - 1), h1):  # b's top-left corner on a's rows
        for dx in range(-(w2 - 1), w1):
            top, bottom = max(0, dy), min(h1, h2 + dy)
            left, right = max(0, dx), min(w1, w2 + dx)
            if bottom > top and right > left:
                region = (
                    a[top:bottom, left:right] == b[top - dy : bottom - dy, left - dx : right - dx]
                )
                best = max(best, int(np.count_nonzero(region)))
    return best / float(max(h1, h2) * max(w1, w2))


def correct_grids(expected: list[Any], predicted: list[Any]) -> float:
    """The study's `correct_grids_score`: the fraction of grids equal in shape and cells."""
    flags = [
        np.asarray(e).shape == np.asarray(p).shape and bool(np.all(np.asarray(e) == np.asarray(p)))
        for e, p in zip(expected, predicted, strict=True)
    ]
    return float(np.mean(flags))


def study_metrics(tasks: dict[str, Task], executions: Iterable[Execution]) -> dict[str, Any]:
    """{"mean", "per_task"} of the study's columns, for the tasks with predictions; None
    where a column needs the test answers and they are unknown."""
    by_task: dict[str, list[Execution]] = {}
    for ex in executions:
        by_task.setdefault(ex.task_id, []).append(ex)
    per_task = {tid: _task_row(tasks[tid], found) for tid, found in sorted(by_task.items())}
    mean: dict[str, Any] = {}
    if per_task:
        for key, _ in COLUMNS:
            values = [row[key] for row in per_task.values()]
            mean[key] = None if None in values else float(np.mean(values))
    return {"tasks": len(per_task), "mean": mean, "per_task": per_task}


def _task_row(task: Task, found: list[Execution]) -> dict[str, Any]:
    n = len(found)
    valid = [ex for ex in found if ex.status == "ok"]
    train_expected = [y for _, y in task.train]
    known = task.test_outputs is not None
    expected = train_expected + (list(task.test_outputs) if known else [])
    row: dict[str, Any] = {
        "study_n_preds": n,
        "study_valid_code": sum(bool(ex.code and ex.code.strip()) for ex in found) / n,
        "study_valid_outputs": len(valid) / n,
        "study_unique_outputs": len({_fingerprint(ex) for ex in valid}) / n,
    }
    if not known:
        row.update({key: None for key, _ in COLUMNS if key not in row})
        return row
    outputs = [list(ex.train_outputs or []) + list(ex.test_outputs or []) for ex in valid]
    pixel = [
        np.mean([pixel_similarity(e, p) for e, p in zip(expected, o, strict=True)]) for o in outputs
    ]
    grids = [correct_grids(expected, o) for o in outputs]
    train = [correct_grids(train_expected, o[: len(train_expected)]) for o in outputs]
    passes = [g == 1 for g in grids]
    row.update(
        study_pixel_similarity=float(np.mean(pixel)) if pixel else 0.0,
        study_correct_grids=float(np.mean(grids)) if grids else 0.0,
        study_train_pass_rate=float(np.mean([t == 1 for t in train])) if train else 0.0,
        study_train_pass_at_n=float(any(t == 1 for t in train)),
        study_pass_rate=float(np.mean(passes)) if passes else 0.0,
        study_pass_at_n=float(any(passes)),
        study_pass_rate_corrected=sum(passes) / n,
    )
    return row


def _fingerprint(ex: Execution) -> str:
    """Distinct outputs, as the study counts them: shapes and cells of every output grid."""
    grids = list(ex.train_outputs or []) + list(ex.test_outputs or [])
    return repr([np.asarray(g, dtype=int).tolist() for g in grids])


def to_markdown(table: dict[str, Any]) -> str:
    """The study's table: its mean row first, then one row per task."""
    header = ["task"] + [title for _, title in COLUMNS]

    def cell(v: Any) -> str:
        return "–" if v is None else str(v) if isinstance(v, int) else f"{v:.3f}"

    def row(name: str, values: dict[str, Any]) -> str:
        return "| " + " | ".join([name] + [cell(values.get(key)) for key, _ in COLUMNS]) + " |"

    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|",
    ]
    if table["mean"]:
        lines.append(row(f"**MEAN of {table['tasks']}**", table["mean"]))
    lines += [row(tid, values) for tid, values in table["per_task"].items()]
    return "\n".join(lines) + "\n"
