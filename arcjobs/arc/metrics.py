"""Search metrics per task and their mean, the ARC score, and the Kaggle submission.

Definitions (n = the task's predictions, ALL of them: a crash, a timeout or a program with no
code is a prediction that failed, never left out of a denominator):

- valid_code: fraction that ran to the end on every input (status ok or invalid_output).
- valid_outputs: fraction whose outputs on every input are valid grids (status ok).
- unique_outputs: distinct behaviours (fingerprints of the de-augmented outputs of the
  predictions with valid outputs) ÷ n.
- pixel_similarity: mean over predictions of the mean `pixel_similarity` over every grid
  with a known answer (train outputs, plus test outputs when solutions are known).
- correct_grids: mean over predictions of the fraction of those grids that are exact.
- train_pass_rate: fraction correct on every train pair; train_pass_at_n: 1 if any is.
- pass_rate: fraction correct on every train pair AND every test output; pass_at_n: 1 if
  any is; pass_at_k: the unbiased estimator `pass_at_k(n, c, k)` with c = passing predictions.
- arc_score: the competition score with 2 attempts per test output, chosen from train
  evidence only (see `choose_attempts`); the fraction of the task's test outputs hit.

Test-dependent metrics are None when the test answers are unknown. A task of the dataset
with no prediction at all scores 0 everywhere; the mean is over every task of the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from arcjobs.arc.executions import Execution
from arcjobs.arc.grids import grids_equal, is_grid
from arcjobs.arc.scoring import outputs_or_nulls, score_prediction
from arcjobs.arc.tasks import Task

FALLBACK_GRID = [[0]]  # Kaggle wants two attempts for every test output


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k draws without replacement from n passes).

    Exactly 1 − C(n−c, k) / C(n, k) (Chen et al., 2021), evaluated as the product
    1 − Π_{i=n−c+1}^{n} (1 − k/i), which never forms the astronomically large binomials.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@dataclass
class _Candidate:
    """One distinct test-output grid and the train evidence of the programs that produced it."""

    grid: list[list[int]]
    best_train: int  # most train pairs correct among the programs producing this grid
    votes: int  # programs producing it with that best train score
    shortest: int  # shortest code among those

    def add(self, train_correct: int, code_len: int) -> None:
        if train_correct > self.best_train:
            self.best_train, self.votes, self.shortest = train_correct, 1, code_len
        elif train_correct == self.best_train:
            self.votes += 1
            self.shortest = min(self.shortest, code_len)


@dataclass
class _TaskTally:
    task: Task
    n: int = 0
    ran: int = 0
    valid: int = 0
    fingerprints: set[str] = field(default_factory=set)
    pixel: float = 0.0
    correct_grids: float = 0.0
    train_pass: int = 0
    passes: int = 0
    candidates: list[dict[tuple, _Candidate]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.candidates = [{} for _ in self.task.test_inputs]

    def add(self, ex: Execution) -> None:
        s = score_prediction(self.task, ex)
        self.n += 1
        self.ran += s.ran
        self.valid += s.valid_outputs
        if s.fingerprint is not None:
            self.fingerprints.add(s.fingerprint)
        self.pixel += s.pixel
        self.correct_grids += s.correct_grids
        self.train_pass += s.train_pass
        self.passes += bool(s.passes)
        code_len = len(ex.code or "")
        test_out = outputs_or_nulls(ex.test_outputs, len(self.task.test_inputs))
        for j, grid in enumerate(test_out):
            if not is_grid(grid):
                continue
            key = tuple(map(tuple, grid))
            cand = self.candidates[j].get(key)
            if cand is None:
                self.candidates[j][key] = _Candidate(grid, sum(s.train_correct), 1, code_len)
            else:
                cand.add(sum(s.train_correct), code_len)


def choose_attempts(
    candidates: dict[tuple, _Candidate], attempts: int = 2
) -> list[list[list[int]]]:
    """The best `attempts` distinct grids for one test output, never looking at its answer.

    Rank: most train pairs correct (best program producing the grid), then most programs
    voting for it with that score (a majority vote over de-augmented outputs), then the
    shortest program, then the grid's cells in
    lexicographic order (only so that ties break the same way every run).
    """
    ranked = sorted(
        candidates.items(), key=lambda kv: (-kv[1].best_train, -kv[1].votes, kv[1].shortest, kv[0])
    )
    return [c.grid for _, c in ranked[:attempts]]


def _task_metrics(t: _TaskTally, ks: list[int], attempts: int) -> tuple[dict[str, Any], list]:
    chosen = [choose_attempts(c, attempts) for c in t.candidates]
    known = t.task.test_outputs is not None
    n = max(t.n, 1)  # with no prediction every count is 0, and so is every rate
    m: dict[str, Any] = {
        "predictions": t.n,
        "valid_code": t.ran / n,
        "valid_outputs": t.valid / n,
        "unique_outputs": len(t.fingerprints) / n,
        "pixel_similarity": t.pixel / n,
        "correct_grids": t.correct_grids / n,
        "train_pass_rate": t.train_pass / n,
        "train_pass_at_n": float(t.train_pass > 0),
        "pass_rate": t.passes / n if known else None,
        "pass_at_n": float(t.passes > 0) if known else None,
        "pass_at_k": {
            str(k): (pass_at_k(t.n, t.passes, k) if t.n else 0.0) if known else None
            for k in ks
            if k <= t.n or not t.n
        },
        "arc_score": None,
        # real attempts per test output; the submission pads the rest with FALLBACK_GRID
        "attempts_made": [len(tries) for tries in chosen],
    }
    if known:
        hits = [
            any(grids_equal(g, y) for g in tries)
            for tries, y in zip(chosen, t.task.test_outputs, strict=True)
        ]
        m["arc_score"] = sum(hits) / len(hits)
    return m, chosen


def evaluate(
    tasks: dict[str, Task], executions: Iterable[Execution], ks: list[int], attempts: int = 2
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, submission) for every task of `tasks` from a stream of executions.

    metrics = {"tasks", "mean", "per_task"}; submission is Kaggle's
    {task_id: [{"attempt_1": grid, "attempt_2": grid, ...} per test input]}.
    """
    tallies = {tid: _TaskTally(task) for tid, task in tasks.items()}
    for ex in executions:
        tallies[ex.task_id].add(ex)
    per_task, submission = {}, {}
    for tid, tally in tallies.items():
        per_task[tid], chosen = _task_metrics(tally, ks, attempts)
        submission[tid] = [
            {
                f"attempt_{i + 1}": (tries[i] if i < len(tries) else FALLBACK_GRID)
                for i in range(attempts)
            }
            for tries in chosen
        ]
    metrics = {"tasks": len(per_task), "mean": _mean(per_task, ks), "per_task": per_task}
    return metrics, submission


def _mean(per_task: dict[str, dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    """Mean of each metric over all tasks; pass@k only for k every sampled task reached."""
    rows = list(per_task.values())
    if not rows:
        return {}
    out: dict[str, Any] = {"predictions": sum(r["predictions"] for r in rows)}
    for key in rows[0]:
        if key in ("predictions", "pass_at_k", "attempts_made"):
            continue
        values = [r[key] for r in rows]
        out[key] = None if any(v is None for v in values) else sum(values) / len(values)
    out["pass_at_k"] = {}
    for k in map(str, ks):
        values = [r["pass_at_k"].get(k, "missing") for r in rows]
        if "missing" in values:
            continue
        out["pass_at_k"][k] = None if None in values else sum(values) / len(values)
    return out


COLUMNS = [
    ("predictions", "n"),
    ("valid_code", "valid code"),
    ("valid_outputs", "valid outputs"),
    ("unique_outputs", "unique outputs"),
    ("pixel_similarity", "pixel sim."),
    ("correct_grids", "correct grids"),
    ("train_pass_rate", "train pass rate"),
    ("train_pass_at_n", "train pass@n"),
    ("pass_rate", "pass rate"),
    ("pass_at_n", "pass@n"),
]


def to_markdown(metrics: dict[str, Any]) -> str:
    """The metrics as a Markdown table: the mean first, then one row per task."""
    ks = list(metrics["mean"].get("pass_at_k", {}))
    header = ["task"] + [title for _, title in COLUMNS] + [f"pass@{k}" for k in ks] + ["ARC score"]

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return str(v) if isinstance(v, int) else f"{v:.3f}"

    def row(name: str, m: dict[str, Any]) -> str:
        values = [m.get(key) for key, _ in COLUMNS]
        values += [m["pass_at_k"].get(k) for k in ks] + [m.get("arc_score")]
        return "| " + " | ".join([name] + [cell(v) for v in values]) + " |"

    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    if metrics["mean"]:
        lines.append(row(f"**mean of {metrics['tasks']}**", metrics["mean"]))
    lines += [row(tid, m) for tid, m in metrics["per_task"].items()]
    return "\n".join(lines) + "\n"
