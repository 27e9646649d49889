"""Output validation: what a transform may return (in the child), and the packed form the
worker checks again."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sandbox_helpers import as_lists

from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.outputs import InvalidOutput, to_grid

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
        out = to_grid(form)
        assert out.dtype == np.uint8 and out.tolist() == grid
        packed = Packed.of([out, None])
        assert packed.valid(2) and as_lists(packed) == [grid, None]


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

    out = to_grid(np.array([[1, 2]]).view(Liar))
    assert type(out) is np.ndarray and out.tolist() == [[1, 2]]


@given(st.lists(grids | st.none(), max_size=4))
def test_packed_grids_round_trip(batch) -> None:
    packed = Packed.of(batch)
    assert packed.valid(len(batch)) and as_lists(packed) == batch
    assert Packed.of_checked([None if g is None else to_grid(g) for g in batch]) == packed
    assert Packed.from_json(packed.to_json()) == packed
    arrays = packed.arrays()
    for got, grid in zip(arrays, batch, strict=True):
        assert (got is None) == (grid is None)
        if got is not None:
            assert got.dtype == np.int64 and got.flags.writeable and got.tolist() == grid


@pytest.mark.parametrize(
    "shapes, blob",
    [
        ([[1, 1]], b"\x0a"),  # a cell of 10
        ([[1, 2]], b"\x01"),  # fewer cells than the shape says
        ([[1, 1]], b"\x01\x01"),  # more
        ([[0, 1]], b""),
        ([[31, 1]], bytes(31)),
        ([[1, 1], [1, 1]], b"\x01\x01"),  # two grids for one input
        ([[True, 1]], b"\x01"),
        ([[1.0, 1]], b"\x01"),
        ([[1]], b"\x01"),
        ([[1, 1, 1]], b"\x01"),
        ("x", b""),
        ([{"a": 1}], b""),
        ({"shapes": 1}, b""),
    ],
)
def test_packed_from_an_untrusted_frame_is_refused_unless_well_formed(shapes, blob) -> None:
    assert not Packed(shapes, blob).valid(1)


@pytest.mark.parametrize("value", [[[10]], [[-1]], [[1.0]], np.zeros((1, 31)), np.zeros(3, int)])
def test_only_colour_grids_can_be_packed(value) -> None:
    with pytest.raises(ValueError):
        Packed.of([value])
