"""The DSL's symmetry classes, `orbit` and the three detectors, on hand-checked grids."""

from __future__ import annotations

import numpy as np
import pytest

from arcjobs.sandbox.dsl import load_common

pytestmark = pytest.mark.unit

dsl = load_common()

RING = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 2, 2, 2, 0],
        [0, 2, 0, 2, 0],
        [0, 2, 2, 2, 0],
        [0, 0, 0, 0, 0],
    ]
)


def test_translational_symmetry_apply():
    sym = dsl.TranslationalSymmetry(2, -1)
    assert sym.apply(1, 1) == (3, 0)
    assert sym.apply(1, 1, iters=3) == (7, -2)
    assert sym.apply(1, 1, iters=-1) == (-1, 2)
    xs, ys = sym.apply(np.array([0, 1]), np.array([5, 6]))
    assert xs.tolist() == [2, 3] and ys.tolist() == [4, 5] and xs.dtype.kind == "i"
    assert repr(sym) == str(sym) == "TranslationalSymmetry(translate_x=2, translate_y=-1)"
    assert isinstance(sym, dsl.Symmetry)


def test_fractional_results_are_rounded_half_to_even():
    # 1 + 1.5 = 2.5 rounds to 2 (Python's round), 2 + 1.5 = 3.5 rounds to 4
    sym = dsl.TranslationalSymmetry(1.5, 0)
    assert sym.apply(1, 0) == (2, 0) and sym.apply(2, 0) == (4, 0)
    assert type(sym.apply(1, 0)[0]) is int


def test_mirror_symmetry_apply():
    sym = dsl.MirrorSymmetry(1.5, None)
    assert sym.apply(0, 4) == (3, 4)
    assert sym.apply(0, 4, iters=2) == (0, 4)
    assert sym.apply(0, 4, iters=3) == (3, 4)
    assert dsl.MirrorSymmetry(None, 2).apply(1, 1) == (1, 3)
    assert dsl.MirrorSymmetry(1, 1).apply(0, 0) == (2, 2)
    assert repr(sym) == "MirrorSymmetry(mirror_x=1.5, mirror_y=None)"
    # Reference quirk: MirrorSymmetry does not derive from Symmetry.
    assert not isinstance(sym, dsl.Symmetry)


def test_orbit_under_a_mirror_and_a_translation():
    grid = np.zeros((2, 3), dtype=int)
    assert sorted(dsl.orbit(grid, 0, 0, [dsl.MirrorSymmetry(None, 1)])) == [(0, 0), (0, 2)]
    row = np.zeros((1, 5), dtype=int)
    assert sorted(dsl.orbit(row, 0, 1, [dsl.TranslationalSymmetry(0, 2)])) == [(0, 1), (0, 3)]


def test_orbit_drops_chains_that_leave_the_grid_midway():
    # from y=1, translating by 3 only stays inside at y=1; mirroring about 0.5 gives y=0.
    # y=-2 mirrored would land on 3, but the chain left the grid first.
    row = np.zeros((1, 4), dtype=int)
    symmetries = [dsl.TranslationalSymmetry(0, 3), dsl.MirrorSymmetry(None, 0.5)]
    assert sorted(dsl.orbit(row, 0, 1, symmetries)) == [(0, 0), (0, 1)]


def test_detect_translational_symmetry_prefers_negative_shifts_among_equals():
    grid = np.tile(np.array([[1, 2], [3, 4]]), (3, 3))
    found = dsl.detect_translational_symmetry(grid)
    assert [(s.translate_x, s.translate_y) for s in found] == [(-2, 0), (0, -2)]


def test_detect_translational_symmetry_falls_back_to_diagonal():
    grid = np.eye(3, dtype=int)
    found = dsl.detect_translational_symmetry(grid)
    assert [(s.translate_x, s.translate_y) for s in found] == [(1, 1)]


def test_detect_translational_symmetry_finds_nothing_in_noise():
    assert dsl.detect_translational_symmetry(np.array([[1, 2], [3, 4]])) == []


def test_detect_mirror_symmetry_single_axis():
    grid = np.array([[1, 2, 1], [3, 4, 3], [5, 6, 5]])
    assert [repr(s) for s in dsl.detect_mirror_symmetry(grid)] == [
        "MirrorSymmetry(mirror_x=None, mirror_y=1)"
    ]


def test_detect_mirror_symmetry_returns_every_best_axis_in_order():
    assert [(s.mirror_x, s.mirror_y) for s in dsl.detect_mirror_symmetry(RING)] == [
        (2, None),
        (None, 2),
        (2, 2),
    ]


def test_detect_mirror_symmetry_ignores_occluders():
    grid = np.array([[1, 2, 1], [3, 4, 9]])
    # counting the 9, the column mirror conflicts; the best left are three that keep one
    # line in place and push the other off the grid (3 preserved, 3 off: 2.97 each)
    plain = dsl.detect_mirror_symmetry(grid)
    assert [(s.mirror_x, s.mirror_y) for s in plain] == [(0, None), (1, None), (0, 1)]
    found = dsl.detect_mirror_symmetry(grid, ignore_colors=[9])
    assert [(s.mirror_x, s.mirror_y) for s in found] == [(None, 1)]


def test_detect_rotational_symmetry_about_a_pixel():
    grid = np.array([[1, 2, 1], [2, 3, 2], [1, 2, 1]])
    sym = dsl.detect_rotational_symmetry(grid)
    assert (sym.center_x, sym.center_y) == (1, 1)
    assert sym.apply(0, 0) == (0, 2)  # clockwise: (x, y) -> (y, -x) about the centre
    assert sym.apply(0, 0, iters=2) == (2, 2)
    assert sym.apply(0, 0, iters=-1) == (0, 0)  # reference quirk: negative turns do nothing


def test_detect_rotational_symmetry_between_pixels():
    sym = dsl.detect_rotational_symmetry(np.ones((2, 2), dtype=int))
    assert (sym.center_x, sym.center_y) == (0.5, 0.5)
    assert sym.apply(0, 0) == (0, 1) and type(sym.apply(0, 0)[0]) is int


def test_detect_rotational_symmetry_none():
    assert dsl.detect_rotational_symmetry(np.array([[1, 2], [3, 4]])) is None


def brute_force_counts(grid, symmetry, ignore_colors, background):
    """The scoring definition, pixel by pixel: (preserved, off-canvas, conflicting)."""
    n, m = grid.shape
    preserved = off_canvas = conflict = 0
    for x in range(n):
        for y in range(m):
            colour = grid[x, y]
            if colour in ignore_colors or (background is not None and colour == background):
                continue
            tx, ty = symmetry.apply(x, y)
            if not (0 <= tx < n and 0 <= ty < m):
                off_canvas += 1
            elif grid[tx, ty] == colour:
                preserved += 1
            elif grid[tx, ty] not in ignore_colors:
                conflict += 1
    return preserved, off_canvas, conflict


def test_family_counts_equal_the_pixel_by_pixel_definition():
    # The detectors score whole families of candidates at once (FFT convolutions); this pins
    # that shortcut to the definition for translations, mirrors and quarter turns.
    rng = np.random.default_rng(1)
    for _ in range(12):
        n, m = rng.integers(1, 7, size=2)
        grid = rng.integers(0, 4, size=(n, m))
        ignore, background = ([0], None) if rng.random() < 0.5 else ([3], 0)
        cases = []
        translations = dsl._family_counts(grid, ignore, background, False, False)
        for tx in range(-n, n + 1):
            for ty in range(-m, m + 1):
                cases.append((translations, (tx, ty), dsl.TranslationalSymmetry(tx, ty)))
        for reflect_x, reflect_y in [(True, False), (False, True), (True, True)]:
            mirrors = dsl._family_counts(grid, ignore, background, reflect_x, reflect_y)
            for kx in range(2 * n + 1) if reflect_x else [0]:
                for ky in range(2 * m + 1) if reflect_y else [0]:
                    axis_x = kx / 2 if reflect_x else None
                    axis_y = ky / 2 if reflect_y else None
                    cases.append((mirrors, (kx, ky), dsl.MirrorSymmetry(axis_x, axis_y)))
        turns = dsl._family_counts(grid, ignore, background, True, False, swap=True)
        for twice_x in range(2 * n):
            for twice_y in range(2 * m):
                if twice_x % 2 == twice_y % 2:
                    centre = dsl._RotationalSymmetry(twice_x / 2, twice_y / 2)
                    offsets = ((twice_x + twice_y) // 2, (twice_x - twice_y) // 2)
                    cases.append((turns, offsets, centre))
        for counts, (kx, ky), symmetry in cases:
            got = tuple(int(v[0]) for v in counts(np.array([kx]), np.array([ky])))
            assert got == brute_force_counts(grid, symmetry, ignore, background), symmetry


def random_symmetry(rng):
    """A symmetry of one of the DSL's classes with whole-pixel results."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return dsl.TranslationalSymmetry(int(rng.integers(-3, 4)), int(rng.integers(-3, 4)))
    if kind == 1:
        axes = [None, int(rng.integers(0, 5)), int(rng.integers(0, 5)) + 0.5]
        return dsl.MirrorSymmetry(axes[rng.integers(0, 3)], axes[rng.integers(0, 3)])
    z = [0, 0.5][rng.integers(0, 2)]
    return dsl._RotationalSymmetry(int(rng.integers(0, 5)) + z, int(rng.integers(0, 5)) + z)


def test_orbit_matches_the_chain_by_chain_definition_including_order():
    # orbit evaluates all chains at once with integer arrays; this pins it to the
    # reference's way (apply each chain, drop it when it leaves the grid, list(set(...))).
    rng = np.random.default_rng(2)
    for _ in range(300):
        grid = np.zeros(rng.integers(1, 8, size=2), dtype=int)
        symmetries = [random_symmetry(rng) for _ in range(rng.integers(1, 4))]
        x, y = (np.int64(v) for v in rng.integers(-2, 9, size=2))
        ranges = [range(*s._iter_range(grid.shape)) for s in symmetries]
        expected = dsl._orbit_by_chains(grid, x, y, symmetries, ranges)
        assert dsl.orbit(grid, x, y, symmetries) == expected, (symmetries, x, y)
