"""Metric values pinned on a hand-made executions fixture, pass@k against exact arithmetic,
pixel similarity on mismatched shapes, and attempt selection from train evidence only.

The fixture (tests/fixtures/arc/) has a task with two test inputs, a crash, a timeout, a
syntax error, a 1×1 output against a uniform 3×3 answer, a float grid, duplicate behaviours
and a task with no prediction at all; every expected number below is worked out by hand.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction as Fr
from pathlib import Path

import numpy as np
import pytest

from arcjobs.arc.executions import read_executions
from arcjobs.arc.metrics import evaluate, pass_at_k, to_markdown
from arcjobs.arc.scoring import pixel_similarity
from arcjobs.arc.tasks import load_dataset

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "arc"


@pytest.fixture(scope="module")
def result():
    tasks = load_dataset(
        str(FIXTURES / "challenges.json"), solutions=str(FIXTURES / "solutions.json")
    )
    executions = read_executions(str(FIXTURES / "executions.jsonl"), tasks, "fixture")
    return evaluate(tasks, executions, ks=[1, 2, 8])


def approx(value: Fr):
    return pytest.approx(float(value), abs=1e-12)


def test_task_with_two_test_inputs(result) -> None:
    m = result[0]["per_task"]["twotest"]
    # 7 predictions: s0 all right; s1, s2 (same outputs, different code) and s3 right on train,
    # wrong on test 2; s4 the identity; s5 crashed; s6 timed out.
    assert m["predictions"] == 7
    assert m["valid_code"] == approx(Fr(5, 7))
    assert m["valid_outputs"] == approx(Fr(5, 7))
    assert m["unique_outputs"] == approx(Fr(4, 7))  # s1 and s2 behave the same
    # correct grids over 2 train + 2 test grids: s0 4/4, s1-s3 3/4, the rest 0
    assert m["correct_grids"] == approx((1 + 3 * Fr(3, 4)) / 7)
    # pixels: s1, s2: (3 + 2/3)/4; s3: (3 + 1/3)/4; s4: (1/2 + 1/4 + 0 + 1/3)/4
    pixels = 1 + 2 * Fr(11, 12) + Fr(10, 12) + Fr(13, 48)
    assert m["pixel_similarity"] == approx(pixels / 7)
    assert m["train_pass_rate"] == approx(Fr(4, 7))
    assert m["train_pass_at_n"] == 1.0
    assert m["pass_rate"] == approx(Fr(1, 7))
    assert m["pass_at_n"] == 1.0
    assert m["pass_at_k"] == {"1": approx(Fr(1, 7)), "2": approx(1 - Fr(15, 21))}
    # test 1: [[2]] (4 train-perfect votes) first -> hit. test 2: [[2,2,2]] (2 votes), then
    # [[0,0,0]] beats the right [[2,2,0]] on shorter code (both 1 vote) -> miss.
    assert m["arc_score"] == 0.5
    assert result[1]["twotest"] == [
        {"attempt_1": [[2]], "attempt_2": [[1]]},
        {"attempt_1": [[2, 2, 2]], "attempt_2": [[0, 0, 0]]},
    ]


def test_one_by_one_against_uniform_and_float_grid(result) -> None:
    m = result[0]["per_task"]["uniform"]
    # u0 returns [[3]] / [[4]] against uniform 3x3 answers: never correct, 1/9 of the pixels;
    # u1 returns floats (3.5 in one cell, 4.25 everywhere): no truncation, 8/9 then 0;
    # u2 is a syntax error.
    assert m["predictions"] == 3
    assert m["valid_code"] == approx(Fr(2, 3))
    assert m["valid_outputs"] == approx(Fr(1, 3))
    assert m["unique_outputs"] == approx(Fr(1, 3))
    assert m["correct_grids"] == 0.0
    assert m["pixel_similarity"] == approx((Fr(1, 9) + Fr(4, 9) + 0) / 3)
    assert m["pass_rate"] == 0.0 and m["pass_at_k"] == {"1": 0.0, "2": 0.0}
    assert m["arc_score"] == 0.0
    assert result[1]["uniform"] == [
        {"attempt_1": [[4]], "attempt_2": [[0]]}
    ]  # float grid never offered


def test_task_without_predictions_counts_as_failure(result) -> None:
    m = result[0]["per_task"]["nopred"]
    assert m["predictions"] == 0 and m["valid_code"] == 0.0 and m["arc_score"] == 0.0
    assert m["pass_at_k"] == {"1": 0.0, "2": 0.0, "8": 0.0}
    assert result[1]["nopred"] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]


def test_mean_over_all_tasks(result) -> None:
    mean = result[0]["mean"]
    assert result[0]["tasks"] == 3 and mean["predictions"] == 10
    assert mean["valid_code"] == approx((Fr(5, 7) + Fr(2, 3)) / 3)
    assert mean["arc_score"] == approx(Fr(1, 6))
    assert mean["pass_at_k"] == {"1": approx(Fr(1, 21)), "2": approx(Fr(2, 21))}  # 8 > n=3
    table = to_markdown(result[0])
    assert table.splitlines()[2].startswith("| **mean of 3** | 10 | 0.460 |")
    assert "| uniform | 3 | 0.667 | 0.333 |" in table


def test_unknown_answers_give_null_test_metrics() -> None:
    tasks = load_dataset(str(FIXTURES / "challenges.json"))
    metrics, submission = evaluate(
        tasks, read_executions(str(FIXTURES / "executions.jsonl"), tasks, "f"), ks=[1]
    )
    m = metrics["per_task"]["twotest"]
    assert m["pass_rate"] is None and m["arc_score"] is None and m["pass_at_k"] == {"1": None}
    assert m["correct_grids"] == approx((1 + 3 * Fr(1, 1)) / 7)  # train grids only
    assert submission["twotest"][0]["attempt_1"] == [[2]]  # attempts need no answers


def exact_pass_at_k(n: int, c: int, k: int) -> Fr:
    return 1 - Fr(math.comb(n - c, k), math.comb(n, k))


@pytest.mark.parametrize("n", [1, 2, 5, 64, 512, 5000])
def test_pass_at_k_matches_exact_arithmetic(n: int) -> None:
    rng = random.Random(n)
    cases = {(0, 1), (n, n), (1, 1), (n, 1)} | {
        (rng.randint(0, n), rng.randint(1, n)) for _ in range(30)
    }
    for c, k in cases:
        assert pass_at_k(n, c, k) == pytest.approx(float(exact_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 8, 3) == 1.0  # fewer than k failures: any k draws include a pass
    assert pass_at_k(5000, 1, 1) == pytest.approx(1 / 5000)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)


@pytest.mark.parametrize(
    ("output", "expected", "value"),
    [
        ([[1, 2], [3, 4]], [[1, 2], [3, 0]], Fr(3, 4)),
        ([[7]], [[7, 7, 7]] * 3, Fr(1, 9)),
        ([[7, 7, 7]] * 3, [[7]], Fr(1, 9)),
        ([[1, 2, 3]], [[0, 1, 2, 3]], Fr(3, 4)),  # best placement, not the top-left one
        ([[1, 2, 3]], [[1], [2]], Fr(1, 6)),  # taller one way, wider the other
        ([[1.5]], [[1]], 0),
        ([[1, 2], [3]], [[1]], 0),
        (None, [[1]], 0),
        ([1, 2], [[1, 2]], 0),
    ],
)
def test_pixel_similarity(output, expected, value) -> None:
    assert pixel_similarity(output, np.array(expected)) == approx(Fr(value))
