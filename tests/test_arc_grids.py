"""Exact grid comparison and strict grid parsing."""

from __future__ import annotations

import numpy as np
import pytest

from arcjobs.arc.grids import GridError, grids_equal, outputs_fingerprint, parse_grid

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


def test_fingerprint_is_the_same_for_lists_and_packed_arrays() -> None:
    """The sandbox fingerprints uint8 views of packed cells, scoring fingerprints lists:
    one behaviour must give one fingerprint either way."""
    from arcjobs.sandbox.grids import Packed

    train, test = [[[1, 2], [3, 4]], None], [[[0, 9, 9]]]
    views = Packed.of(train + test).views()
    assert outputs_fingerprint(train, test) == outputs_fingerprint(views[:2], views[2:])


@pytest.mark.parametrize(
    "other",
    [
        ([[[1, 2, 3, 4]]], []),  # same cells, another shape
        ([[[1, 2], [3, 5]]], []),  # one cell differs
        ([], [[[1, 2], [3, 4]]]),  # the same grid for a test input, not a train input
        ([[[1, 2], [3, 4]], None], []),  # one more input, without output
    ],
)
def test_fingerprint_tells_behaviours_apart(other) -> None:
    assert outputs_fingerprint([[[1, 2], [3, 4]]], []) != outputs_fingerprint(*other)
