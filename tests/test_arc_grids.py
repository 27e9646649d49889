"""Exact grid comparison and strict grid parsing."""

from __future__ import annotations

import numpy as np
import pytest

from arcjobs.arc.grids import GridError, grids_equal, parse_grid

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ([[1, 2]], [[1, 2]], True),
        ([[1]], [[1, 1], [1, 1]], False),  # no broadcasting of a 1x1 grid
        ([[1.5]], [[1]], False),  # no truncation of floats
        ([[1.0, 2.0]], [[1, 2]], True),  # the same numbers
        ([[1, 2]], [[1], [2]], False),
        ([[1], [1, 2]], [[1]], False),  # ragged
        ([1, 2], [1, 2], False),  # 1-D is not a grid
        ([[True]], [[1]], False),
        (None, [[0]], False),
        (np.array([[3]]), np.array([[3]], dtype=np.uint8), True),
    ],
)
def test_grids_equal(a, b, equal) -> None:
    assert grids_equal(a, b) is equal
    assert grids_equal(b, a) is equal


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "non-empty"),
        ([[1, 2], [3]], "not rectangular"),
        ([[1, 10]], "cell [0][1] is 10"),
        ([[1.0]], "cell [0][0] is 1.0"),
        ([[True]], "cell [0][0] is True"),
        ([[0] * 31], "31 columns"),
        ([[0]] * 31, "31 rows"),
        ([[]], "row 0"),
    ],
)
def test_parse_grid_rejects(value, problem) -> None:
    with pytest.raises(GridError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_grid(value)


def test_parse_grid_accepts_edges() -> None:
    assert parse_grid([[0] * 30] * 30).shape == (30, 30)
    assert parse_grid([[9]]).tolist() == [[9]]
