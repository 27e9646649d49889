"""Augmentations are exact bijections on grids of any shape, and serialise losslessly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.tasks import Task

pytestmark = pytest.mark.unit

grids = st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(
    lambda shape: arrays(np.int64, shape, elements=st.integers(0, 9))
)
augmentations = st.builds(
    Augmentation, st.integers(0, 7), st.permutations(list(range(10))).map(tuple)
)


@given(augmentations, grids)
def test_invert_undoes_apply_on_any_shape(aug: Augmentation, grid: np.ndarray) -> None:
    out = aug.apply(grid)
    assert out.shape in (grid.shape, grid.shape[::-1])
    back = aug.invert(out)
    assert back.shape == grid.shape and (back == grid).all()
    assert (aug.apply(aug.invert(grid)) == grid).all()


@given(augmentations)
def test_dict_round_trip(aug: Augmentation) -> None:
    d = aug.to_dict()
    assert set(d) == {"dihedral", "colors"} and len(d["colors"]) == 10
    assert Augmentation.from_dict(d) == aug


def test_eight_distinct_dihedral_transforms() -> None:
    grid = np.arange(6).reshape(2, 3)
    images = {
        (Augmentation(d).apply(grid).shape, Augmentation(d).apply(grid).tobytes()) for d in range(8)
    }
    assert len(images) == 8


def test_known_transforms() -> None:
    grid = np.array([[1, 2, 3]])
    assert Augmentation(1).apply(grid).tolist() == [[3], [2], [1]]  # rot90 counter-clockwise
    assert Augmentation(4).apply(grid).tolist() == [[1], [2], [3]]  # transpose
    swap = list(range(10))
    swap[1], swap[2] = 2, 1
    assert Augmentation(0, tuple(swap)).apply(grid).tolist() == [[2, 1, 3]]


def test_random_keeps_black_unless_asked() -> None:
    rng = np.random.default_rng(0)
    kept = [Augmentation.random(rng) for _ in range(200)]
    assert all(a.colors[0] == 0 for a in kept)
    assert len({a.dihedral for a in kept}) == 8
    moved = [Augmentation.random(rng, permute_black=True) for _ in range(200)]
    assert any(a.colors[0] != 0 for a in moved)
    again = Augmentation.random(np.random.default_rng(0))
    assert again == kept[0]  # seeded: same generator state, same augmentation


def test_identity_and_none() -> None:
    assert Augmentation.from_dict(None) == Augmentation.identity()
    assert Augmentation.identity().is_identity


@pytest.mark.parametrize("bad", [{"dihedral": 8}, {"dihedral": 0, "colors": [0] * 10}])
def test_rejects_invalid(bad: dict) -> None:
    with pytest.raises(ValueError):
        Augmentation.from_dict(bad)


def test_apply_task_transforms_every_grid() -> None:
    a = np.array([[1, 0]])
    task = Task("t", [(a, a * 2)], [a], [a * 3])
    aug = Augmentation(1, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    out = aug.apply_task(task)
    assert out.task_id == "t"
    assert out.train[0][0].tolist() == [[0], [2]]
    assert out.train[0][1].tolist() == [[0], [1]]
    assert out.test_outputs is not None and out.test_outputs[0].tolist() == [[0], [3]]
