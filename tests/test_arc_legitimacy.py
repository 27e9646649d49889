"""The legitimacy check on executions made by hand: who is newly solved, and the odds."""

from __future__ import annotations

import numpy as np
import pytest

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.executions import Execution
from arcjobs.arc.legitimacy import newly_solved, shown, to_markdown
from arcjobs.arc.tasks import Task

pytestmark = pytest.mark.unit

RIGHT = [[1]]


def task(tid: str) -> Task:
    return Task(
        tid, [(np.zeros((1, 1), int), np.array(RIGHT))], [np.zeros((1, 1), int)], [np.array(RIGHT)]
    )


def runs(tid: str, right: int, wrong: int) -> list[Execution]:
    none = Augmentation.from_dict(None)
    return [Execution(tid, i, "ok", "x", none, 0, [RIGHT], [RIGHT]) for i in range(right)] + [
        Execution(tid, right + i, "ok", "x", none, 0, [[[2]]], [[[2]]]) for i in range(wrong)
    ]


def test_newly_solved_tasks_get_the_base_models_odds() -> None:
    tasks = {t: task(t) for t in "abcd"}
    after = runs("a", 1, 7) + runs("b", 2, 6) + runs("c", 1, 7) + runs("d", 1, 7)
    before = runs("a", 0, 8) + runs("b", 0, 8) + runs("c", 0, 8) + runs("d", 1, 7)  # d: not new
    reference = runs("a", 1, 999) + runs("b", 0, 1000)  # c: not sampled by the reference
    found = newly_solved(tasks, after, before, reference)
    rows = {r["task_id"]: r for r in found["tasks"]}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"]["base_pass_rate"] == 0.001 and rows["a"]["predictions_needed"] == 1000
    assert [shown(rows[t]) for t in "abc"] == ["≈ 1000", "> 1000", "no reference"]
    # a needs 1000 > its budget of 8, b more than the reference's 1000: 2 of the 2 sampled
    assert found["beyond_budget"] == 1.0
    assert "100% of the newly solved tasks" in to_markdown(found)


def test_a_task_the_base_model_solves_often_is_within_budget() -> None:
    tasks = {"a": task("a")}
    found = newly_solved(tasks, runs("a", 1, 7), runs("a", 0, 8), runs("a", 500, 500))
    assert found["tasks"][0]["predictions_needed"] == 2 and found["beyond_budget"] == 0.0
