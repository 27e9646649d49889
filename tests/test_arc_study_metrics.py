"""The seed study's table on a fixture whose every value is worked out by hand below."""

from __future__ import annotations

import numpy as np
import pytest

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.executions import Execution
from arcjobs.arc.scoring import pixel_similarity as project_pixel_similarity
from arcjobs.arc.study_metrics import correct_grids, pixel_similarity, study_metrics, to_markdown
from arcjobs.arc.tasks import Task

pytestmark = pytest.mark.unit

A = [[1, 2], [3, 4]]
B = [[5, 5], [5, 5]]
C = [[7]]
TASK = Task(
    "t",
    train=[(np.zeros((2, 2), int), np.array(A)), (np.ones((2, 2), int), np.array(B))],
    test_inputs=[np.zeros((1, 1), int)],
    test_outputs=[np.array(C)],
)


def ex(sid: int, status: str, code: str | None, outputs: list | None) -> Execution:
    return Execution(
        "t",
        sid,
        status,
        code,
        Augmentation.from_dict(None),
        0,
        None if outputs is None else outputs[:2],
        None if outputs is None else outputs[2:],
    )


def test_pixel_similarity_counts_partial_overlaps_unlike_the_projects() -> None:
    # equal shapes: the fraction of equal cells, 3 of 4
    assert pixel_similarity([[1, 2], [3, 4]], [[1, 2], [3, 0]]) == 0.75
    # [[7, 9]] on [[5, 6, 7]]: fully inside, it matches nothing at either place; hanging off
    # the right edge, its 7 meets the 7: 1 cell ÷ (1 × 3)
    assert pixel_similarity([[5, 6, 7]], [[7, 9]]) == pytest.approx(1 / 3)
    assert project_pixel_similarity([[7, 9]], np.array([[5, 6, 7]])) == 0.0
    # 2×2 against 3×3 of sevens: 2 × 2 placed inside matches 1 (the 7 of [[7, 1], [2, 3]]):
    # 1 ÷ 9
    assert pixel_similarity(np.full((3, 3), 7), [[7, 1], [2, 3]]) == pytest.approx(1 / 9)


def test_correct_grids_needs_the_same_shape() -> None:
    assert correct_grids([A, B], [A, [[5, 5]]]) == 0.5
    assert correct_grids([A], [[[1, 2], [3, 4]]]) == 1.0


def test_the_study_table_on_a_hand_worked_task() -> None:
    """Four predictions of a task with two train pairs and one test output:
    0 no code block; 1 code that raised; 2 every grid right; 3 the first train grid wrong
    (one cell of four: pixel 3/4 there), the rest right."""
    wrong = [[1, 2], [3, 0]]
    found = [
        ex(0, "syntax_error", None, None),
        ex(1, "runtime_error", "def transform(g):\n    1 / 0\n", None),
        ex(2, "ok", "def transform(g): ...", [A, B, C]),
        ex(3, "ok", "def transform(g): ...", [wrong, B, C]),
    ]
    table = study_metrics({"t": TASK}, found)
    row = table["per_task"]["t"]
    assert row == {
        "study_n_preds": 4,
        "study_valid_code": 3 / 4,  # a block was found in 1, 2 and 3
        "study_valid_outputs": 2 / 4,
        "study_unique_outputs": 2 / 4,
        # over the 2 valid ones only: (1 + (0.75 + 1 + 1) / 3) / 2
        "study_pixel_similarity": pytest.approx((1 + 2.75 / 3) / 2),
        "study_correct_grids": pytest.approx((1 + 2 / 3) / 2),
        "study_train_pass_rate": 0.5,
        "study_train_pass_at_n": 1.0,
        "study_pass_rate": 0.5,  # 1 pass ÷ 2 valid: the study's own bug
        "study_pass_at_n": 1.0,
        "study_pass_rate_corrected": 0.25,  # 1 pass ÷ 4 predictions
    }
    assert table["tasks"] == 1 and table["mean"]["study_pass_rate"] == 0.5
    assert "| **MEAN of 1** | 4.000 | 0.750 | 0.500 |" in to_markdown(table)


def test_the_mean_is_over_tasks_with_predictions_and_nothing_valid_scores_zero() -> None:
    other = Task(
        "u",
        train=[(np.zeros((1, 1), int), np.array(C))],
        test_inputs=[np.zeros((1, 1), int)],
        test_outputs=[np.array(C)],
    )
    none_valid = Execution("u", 0, "timeout", "x", Augmentation.from_dict(None), 0, None, None)
    table = study_metrics(
        {"t": TASK, "u": other, "unseen": other}, [ex(2, "ok", "x", [A, B, C]), none_valid]
    )
    assert table["tasks"] == 2  # "unseen" had no prediction: not in the study's table
    assert table["per_task"]["u"]["study_pass_rate"] == 0.0
    assert table["per_task"]["u"]["study_pixel_similarity"] == 0.0
    assert table["mean"]["study_pass_at_n"] == 0.5
    assert table["mean"]["study_valid_code"] == 1.0


def test_without_test_answers_the_columns_that_need_them_are_unknown() -> None:
    blind = Task("t", train=TASK.train, test_inputs=TASK.test_inputs)
    row = study_metrics({"t": blind}, [ex(2, "ok", "x", [A, B, C])])["per_task"]["t"]
    assert row["study_valid_outputs"] == 1.0 and row["study_pass_rate"] is None
