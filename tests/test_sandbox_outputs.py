"""Output validation: what a transform may return, checked in the child and again in the worker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcjobs.sandbox.outputs import InvalidOutput, check_grid, to_grid

pytestmark = pytest.mark.unit

grids = st.integers(1, 30).flatmap(
    lambda rows: st.lists(
        st.lists(st.integers(0, 9), min_size=rows, max_size=rows), min_size=1, max_size=30
    )
)


@given(grids)
def test_valid_grids_pass_in_every_form(grid: list[list[int]]) -> None:
    for form in (
        grid,
        np.array(grid),
        np.array(grid, dtype=np.uint8),
        np.array(grid, dtype=float),
        tuple(map(tuple, grid)),
    ):
        assert to_grid(form) == grid
        assert check_grid(to_grid(form))


@pytest.mark.parametrize(
    "value",
    [
        np.array([[True]]),
        [[np.bool_(True)]],
        [[1.5]],
        np.array([[np.inf]]),
        np.zeros((0, 0)),
        np.zeros((31, 1)),
        np.zeros((1, 31)),
        [[1, 2], [3]],
        [[-1]],
        [[10]],
        np.array([[1]], dtype=object),
        np.zeros((2, 2, 1)),
        np.zeros(3),
        [],
        [[]],
        "ab",
        None,
        (x for x in [[1]]),
        [["1"]],
        [[1 + 0j]],
        {0: [1]},
    ],
)
def test_invalid_outputs_are_refused(value) -> None:
    with pytest.raises(InvalidOutput):
        to_grid(value)


def test_an_ndarray_subclass_is_read_as_its_data() -> None:
    class Liar(np.ndarray):
        def tolist(self):
            return [[9]]

    assert to_grid(np.array([[1, 2]]).view(Liar)) == [[1, 2]]


@pytest.mark.parametrize(
    "value",
    [[[1]], [[0, 9], [9, 0]], [[1]] * 30],
)
def test_check_grid_accepts_grids(value) -> None:
    assert check_grid(value)


@pytest.mark.parametrize(
    "value",
    [[[True]], [[1.0]], [[10]], [[1], [1, 2]], [[1]] * 31, [[]], [], "x", [[None]], {"a": 1}],
)
def test_check_grid_refuses_anything_else(value) -> None:
    assert not check_grid(value)
