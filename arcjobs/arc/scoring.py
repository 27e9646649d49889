"""Scoring one executed prediction against its task's known answers.

Shared by the metrics (evaluate) and by hindsight selection (relabel), so that "correct" and
"pixel similarity" mean the same thing in both. Grids are compared exactly (`grids_equal`);
a missing or malformed output scores 0 on every measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from arcjobs.arc.executions import RAN, Execution
from arcjobs.arc.grids import grids_equal, is_grid, outputs_fingerprint
from arcjobs.arc.tasks import Task


def pixel_similarity(output: Any, expected: np.ndarray) -> float:
    """Fraction of cells that agree; for mismatched shapes, the best overlap ÷ max(h)·max(w).

    Same shape: the fraction of equal cells. Different shapes: the smaller extent in each
    direction is slid over the larger, the most agreeing cells over all placements are
    counted, and divided by the area of the bounding max(h)×max(w) — so a 1×1 grid of the
    right colour against a uniform 3×3 answer scores 1/9, not 1. Values compare exactly
    (1.5 never equals 1). Anything that is not a numeric 2-D array scores 0.
    """
    try:
        a = np.asarray(output)
    except ValueError:  # ragged
        return 0.0
    if a.ndim != 2 or a.size == 0 or a.dtype.kind not in "iuf":
        return 0.0
    b = np.asarray(expected)
    if a.shape == b.shape:
        return float((a == b).mean())
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    wa, wb = sliding_window_view(a, (h, w)), sliding_window_view(b, (h, w))
    matches = (wa[:, :, None, None] == wb[None, None]).sum(axis=(-2, -1))
    return float(matches.max()) / (max(a.shape[0], b.shape[0]) * max(a.shape[1], b.shape[1]))


@dataclass(frozen=True)
class PredictionScore:
    """How one prediction did. test_* are None when the task's test answers are unknown.

    ran: the program ran to the end on every input (status ok or invalid_output).
    valid_outputs: status ok and every output a valid ARC grid.
    fingerprint: hash of the de-augmented outputs when valid (duplicate detection).
    """

    ran: bool
    valid_outputs: bool
    fingerprint: str | None
    train_correct: list[bool]
    train_pixel: list[float]
    test_correct: list[bool] | None
    test_pixel: list[float] | None

    @property
    def train_pass(self) -> bool:
        return all(self.train_correct)

    @property
    def passes(self) -> bool | None:
        """Correct on every train pair and every test output; None when tests are unknown."""
        return None if self.test_correct is None else self.train_pass and all(self.test_correct)

    @property
    def train_correct_ratio(self) -> float:
        return sum(self.train_correct) / len(self.train_correct)

    @property
    def train_pixel_mean(self) -> float:
        return sum(self.train_pixel) / len(self.train_pixel)

    @property
    def correct_grids(self) -> float:
        """Fraction of grids with a known answer (train, and test when known) that are exact."""
        flags = self.train_correct + (self.test_correct or [])
        return sum(flags) / len(flags)

    @property
    def pixel(self) -> float:
        """Mean pixel similarity over the same grids as `correct_grids`."""
        values = self.train_pixel + (self.test_pixel or [])
        return sum(values) / len(values)


def outputs_or_nulls(outputs: list[Any] | None, n: int) -> list[Any]:
    return list(outputs) if outputs is not None else [None] * n


def score_prediction(task: Task, ex: Execution) -> PredictionScore:
    train_out = outputs_or_nulls(ex.train_outputs, len(task.train))
    test_out = outputs_or_nulls(ex.test_outputs, len(task.test_inputs))
    valid = ex.status == "ok" and all(is_grid(g) for g in train_out + test_out)
    expected_train = [y for _, y in task.train]
    test_correct = test_pixel = None
    if task.test_outputs is not None:
        test_correct = [grids_equal(g, y) for g, y in zip(test_out, task.test_outputs, strict=True)]
        test_pixel = [
            pixel_similarity(g, y) for g, y in zip(test_out, task.test_outputs, strict=True)
        ]
    return PredictionScore(
        ran=ex.status in RAN,
        valid_outputs=valid,
        fingerprint=outputs_fingerprint(train_out, test_out) if valid else None,
        train_correct=[grids_equal(g, y) for g, y in zip(train_out, expected_train, strict=True)],
        train_pixel=[
            pixel_similarity(g, y) for g, y in zip(train_out, expected_train, strict=True)
        ],
        test_correct=test_correct,
        test_pixel=test_pixel,
    )
