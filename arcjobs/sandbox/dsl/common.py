"""The DSL that BARC programs import with `from common import *`.

The BARC induction model was trained on programs written against BARC's `seeds/common.py`,
so a program only scores as it should if every function here gives the reference's results:
the same values, defaults, in-place effects, element order of returned lists, and the same
draws from `random` / `numpy.random` for the same seed. This is an independent
implementation of that documented behaviour; where the reference's behaviour is odd (noted
in the docstrings as "reference quirk") it is reproduced on purpose, because a model that
learnt those quirks writes programs that rely on them.

Vectorised numpy/scipy code replaces the reference's pixel loops wherever the result is
provably identical; a loop remains where order matters (sequential blits of a grid onto
itself, random draws, the recursive object selection of `detect_objects`).

The executor loads this file by path into a fresh module named `common` for every program,
so it may import only numpy, scipy and the standard library, and keeps no state between
calls. `__all__` lists exactly what `from common import *` gives a program: the 34
model-facing names, plus `np` and `random`, which the reference's star import also exports
and which model programs use without importing them.
"""

import itertools
import math
import random

import numpy as np
import scipy.fft
from scipy import ndimage

__all__ = [
    "Color",
    "MirrorSymmetry",
    "Symmetry",
    "TranslationalSymmetry",
    "blit",
    "blit_object",
    "blit_sprite",
    "bounding_box",
    "bounding_box_mask",
    "check_between_objects",
    "collision",
    "contact",
    "crop",
    "detect_mirror_symmetry",
    "detect_objects",
    "detect_rotational_symmetry",
    "detect_translational_symmetry",
    "draw_line",
    "find_connected_components",
    "flood_fill",
    "is_contiguous",
    "np",
    "object_boundary",
    "object_colors",
    "object_interior",
    "object_neighbors",
    "object_position",
    "orbit",
    "random",
    "random_free_location_for_sprite",
    "random_sprite",
    "randomly_scatter_points",
    "randomly_spaced_indices",
    "scale_pattern",
    "scale_sprite",
    "translate",
]


class Color:
    """ARC colour constants (plain ints, as in the reference).

    PURPLE and BROWN are not in the reference; the model writes them for 8 and 9, and a
    program should not fail on a synonym. The lists are lists (not tuples) because programs
    concatenate them with lists.
    """

    BLACK = 0
    BLUE = 1
    RED = 2
    GREEN = 3
    YELLOW = 4
    GREY = 5
    GRAY = 5
    PINK = 6
    ORANGE = 7
    TEAL = 8
    PURPLE = 8
    MAROON = 9
    BROWN = 9
    TRANSPARENT = 0
    BACKGROUND = 0

    ALL_COLORS = [BLACK, BLUE, RED, GREEN, YELLOW, GREY, PINK, ORANGE, TEAL, MAROON]
    NOT_BLACK = [BLUE, RED, GREEN, YELLOW, GREY, PINK, ORANGE, TEAL, MAROON]


# ----------------------------------------------------------------------------- helpers


def _structure(connectivity, message="Connectivity must be 4 or 8."):
    """The scipy structuring element of 4- or 8-connectivity (the reference's ValueError)."""
    if connectivity == 4:
        return ndimage.generate_binary_structure(2, 1)
    if connectivity == 8:
        return ndimage.generate_binary_structure(2, 2)
    raise ValueError(message)


def _single_component(grid, colour, background):
    """`grid` where `colour` is, `background` elsewhere, with the reference's dtype rules.

    The reference builds components as `grid * mask + background * ~mask`; the arithmetic
    (not np.where) keeps its result dtype, e.g. int64 for an int32 grid.
    """
    return grid * colour + background * ~colour


def _offset_overlap(mask1, mask2, dx, dy):
    """Whether mask1 and mask2 overlap when mask2's origin sits at (dx, dy) in mask1's frame."""
    n1, m1 = mask1.shape
    n2, m2 = mask2.shape
    x_lo, x_hi = max(0, dx), min(n1, n2 + dx)
    y_lo, y_hi = max(0, dy), min(m1, m2 + dy)
    if x_lo >= x_hi or y_lo >= y_hi:
        return False
    window1 = mask1[x_lo:x_hi, y_lo:y_hi]
    window2 = mask2[x_lo - dx : x_hi - dx, y_lo - dy : y_hi - dy]
    return bool(np.any(window1 & window2))


# ----------------------------------------------------------------------------- drawing


def flood_fill(grid, x, y, color, connectivity=4):
    """Recolour, in place, the region of (x, y)'s colour that is connected to (x, y).

    The reference recurses from (x, y); for an in-bounds start that fills exactly the
    connected component, which scipy labels at once. A negative start (the reference
    quirk: Python wraps the index but the recursion walks raw coordinates) is replayed
    step by step so the same cells change.
    """
    old_color = grid[x, y]
    assert connectivity in [4, 8], "flood_fill: Connectivity must be 4 or 8."
    if old_color == color:
        return
    if x < 0 or y < 0:
        _replay_recursive_fill(grid, x, y, color, old_color, connectivity)
        return
    labels, _ = ndimage.label(grid == old_color, _structure(connectivity))
    grid[labels == labels[x, y]] = color


def _replay_recursive_fill(grid, x, y, color, old_color, connectivity):
    """The reference's depth-first recursion, on an explicit stack, in the same order."""
    n, m = grid.shape

    def neighbours(px, py):
        steps = [(-1, 0, px > 0), (1, 0, px < n - 1), (0, -1, py > 0), (0, 1, py < m - 1)]
        if connectivity == 8:
            steps += [
                (-1, -1, px > 0 and py > 0),
                (-1, 1, px > 0 and py < m - 1),
                (1, -1, px < n - 1 and py > 0),
                (1, 1, px < n - 1 and py < m - 1),
            ]
        return iter([(px + sx, py + sy) for sx, sy, inside in steps if inside])

    def enter(px, py):
        if grid[px, py] != old_color or grid[px, py] == color:
            return None
        grid[px, py] = color
        return neighbours(px, py)

    stack = [enter(x, y)]
    while stack:
        pending = stack[-1]
        step = None if pending is None else next(pending, None)
        if step is None:
            stack.pop()
        else:
            stack.append(enter(*step))


def draw_line(
    grid,
    x,
    y,
    end_x=None,
    end_y=None,
    length=None,
    direction=None,
    color=None,
    stop_at_color=(),
):
    """Draw from (x, y) along a direction in {-1, 0, 1}², in place; return the last cell drawn.

    With end_x/end_y the direction is the sign of the offset and the length its Chebyshev
    distance + 1 (so a non-diagonal, non-straight end is not reached: reference behaviour).
    Without a length the line runs 2 × the grid's longest side, i.e. to the edge. Cells
    outside the grid are skipped, not a stop, so a line may enter from outside. Reaching a
    cell whose colour is in `stop_at_color` ends the line before that cell. When nothing is
    drawn the start point is returned.
    """
    assert (end_x is None) == (end_y is None), (
        "draw_line: Either both or neither of end_x and end_y must be specified."
    )
    assert x == int(x) and y == int(y), "draw_line: x and y must be integers."
    x, y = int(x), int(y)
    if end_x is not None and end_y is not None:
        length = max(abs(end_x - x), abs(end_y - y)) + 1
        direction = (end_x - x, end_y - y)
    if length is None:
        length = max(grid.shape) * 2
    dx, dy = direction
    if abs(dx) > 0:
        dx = dx // abs(dx)
    if abs(dy) > 0:
        dy = dy // abs(dy)
    last_x, last_y = x, y
    for step in range(length):
        px, py = x + step * dx, y + step * dy
        if not (0 <= px < grid.shape[0] and 0 <= py < grid.shape[1]):
            continue
        if grid[px, py] in stop_at_color:
            break
        grid[px, py] = color
        last_x, last_y = px, py
    return last_x, last_y


# ----------------------------------------------------------------------------- sprites


def scale_pattern(pattern, scale_factor):
    """Old name of `scale_sprite`, kept because older programs call it.

    Unlike the reference, it prints no deprecation notice: stdout is not a result.
    """
    return scale_sprite(pattern, scale_factor)


def scale_sprite(sprite, factor):
    """Upscale by an integer factor: each pixel becomes a factor × factor block."""
    return np.kron(sprite, np.ones((factor, factor), dtype=sprite.dtype))


def blit(grid, sprite, x=0, y=0, background=None):
    """Copy `sprite` into `grid` with its corner at (x, y), in place; return `grid`.

    Pixels equal to `background` (when given) are transparent; pixels falling outside the
    grid are dropped. x and y are truncated with int(). When the sprite is a view of the
    grid itself (e.g. `blit(grid, np.rot90(grid))`), the reference copies pixel by pixel
    in row-major order, so later pixels read what earlier ones wrote; that case is replayed
    exactly, the common case is one vectorised assignment.
    """
    x, y = int(x), int(y)
    n, m = grid.shape
    sn, sm = sprite.shape
    if np.may_share_memory(grid, sprite):
        for i in range(sn):
            for j in range(sm):
                if (background is None or sprite[i, j] != background) and (
                    0 <= x + i < n and 0 <= y + j < m
                ):
                    grid[x + i, y + j] = sprite[i, j]
        return grid
    i_lo, i_hi = max(0, -x), min(sn, n - x)
    j_lo, j_hi = max(0, -y), min(sm, m - y)
    if i_lo >= i_hi or j_lo >= j_hi:
        return grid
    part = sprite[i_lo:i_hi, j_lo:j_hi]
    target = grid[x + i_lo : x + i_hi, y + j_lo : y + j_hi]
    if background is None:
        target[...] = part
    else:
        opaque = part != background
        target[opaque] = part[opaque]
    return grid


def blit_object(grid, obj, background=Color.BLACK):
    """Draw a grid-sized object where it already is (its background transparent)."""
    return blit(grid, obj, x=0, y=0, background=background)


def blit_sprite(grid, sprite, x, y, background=Color.BLACK):
    """Draw a sprite with its corner at (x, y) (its background transparent)."""
    return blit(grid, sprite, x=x, y=y, background=background)


# ----------------------------------------------------------------------------- objects


def find_connected_components(grid, background=Color.BLACK, connectivity=4, monochromatic=True):
    """Split the non-background pixels into connected components.

    Returns grid-sized arrays, each holding one component and `background` elsewhere.
    Order (programs index into it): with monochromatic=True, colour by colour in the
    iteration order of `set(grid.flatten()) - {background}` (as the reference), then
    components in raster order of their first pixel; otherwise raster order only.
    """
    structure = _structure(connectivity)
    if not monochromatic:
        labels, count = ndimage.label(grid != background, structure)
        return [_single_component(grid, labels == k, background) for k in range(1, count + 1)]
    components = []
    for colour in set(grid.flatten()) - {background}:
        labels, count = ndimage.label(grid == colour, structure)
        components.extend(
            _single_component(grid, labels == k, background) for k in range(1, count + 1)
        )
    return components


def is_contiguous(bitmask, background=Color.BLACK, connectivity=4):
    """True when the non-background pixels form exactly one connected component."""
    _, count = ndimage.label(bitmask != background, _structure(connectivity))
    return count == 1


# ----------------------------------------------------------------------------- geometry


def bounding_box(grid, background=Color.BLACK):
    """(x, y, width, height) of the non-background pixels.

    Reference quirk kept: an empty grid gives (n, m, -n, -m), which makes `crop` return a
    0 × 0 array rather than raise.
    """
    n, m = grid.shape
    occupied = grid != background
    xs = np.flatnonzero(occupied.any(axis=1))
    ys = np.flatnonzero(occupied.any(axis=0))
    if len(xs) == 0:
        return n, m, -n, -m
    x_min, x_max, y_min, y_max = int(xs[0]), int(xs[-1]), int(ys[0]), int(ys[-1])
    return x_min, y_min, x_max - x_min + 1, y_max - y_min + 1


def bounding_box_mask(grid, background=Color.BLACK):
    """Boolean grid, True inside the bounding box of the non-background pixels."""
    mask = np.zeros_like(grid, dtype=bool)
    x, y, w, h = bounding_box(grid, background=background)
    mask[x : x + w, y : y + h] = True
    return mask


_ANCHORS = {
    # name (lower case, no spaces) -> (fraction of width-1, fraction of height-1)
    "upperleft": (0, 0),
    "upperright": (1, 0),
    "lowerleft": (0, 1),
    "lowerright": (1, 1),
    "center": (0.5, 0.5),
    "uppercenter": (0.5, 0),
    "lowercenter": (0.5, 1),
    "leftcenter": (0, 0.5),
    "rightcenter": (1, 0.5),
}


def object_position(obj, background=Color.BLACK, anchor="upper left"):
    """(x, y) of an anchor of the object's bounding box (default its upper-left corner).

    Anchors: upper/lower left/right, center, upper/lower/left/right center; "top" and
    "bottom" are accepted for upper/lower, case and spaces ignored. A centre falling
    between pixels is a float (x.5); whole values are ints.
    """
    key = anchor.lower().replace(" ", "").replace("top", "upper").replace("bottom", "lower")
    assert key in _ANCHORS, "Invalid anchor"
    x, y, w, h = bounding_box(obj, background=background)
    fx, fy = _ANCHORS[key]
    position = []
    for corner, fraction, size in ((x, fx, w), (y, fy, h)):
        value = corner + ((size - 1) / 2 if fraction == 0.5 else (size - 1) * fraction)
        if abs(value - int(value)) < 1e-6:
            value = int(value)
        position.append(value)
    return tuple(position)


def object_colors(obj, background=Color.BLACK):
    """The colours of the object other than `background`, in `set` iteration order."""
    return list(set(obj.flatten()) - {background})


def crop(grid, background=Color.BLACK):
    """The bounding box of the non-background pixels, as a view (writes reach `grid`)."""
    x, y, w, h = bounding_box(grid, background)
    return grid[x : x + w, y : y + h]


def translate(obj, x, y, background=Color.BLACK):
    """A same-shape copy shifted by (x, y); uncovered cells become `background`.

    As in the reference, a non-integer shift raises IndexError unless everything moves
    off the grid.
    """
    n, m = obj.shape
    shifted = np.zeros((n, m), dtype=obj.dtype)
    shifted[:, :] = background
    if not (_is_integer(x) and _is_integer(y)):
        lands_x = any(0 <= i + x < n for i in range(n))
        lands_y = any(0 <= j + y < m for j in range(m))
        if lands_x and lands_y:
            raise IndexError("only integers can index a grid: translate by whole pixels")
        return shifted
    x_lo, x_hi = max(0, -x), min(n, n - x)
    y_lo, y_hi = max(0, -y), min(m, m - y)
    if x_lo < x_hi and y_lo < y_hi:
        shifted[x_lo + x : x_hi + x, y_lo + y : y_hi + y] = obj[x_lo:x_hi, y_lo:y_hi]
    return shifted


def _is_integer(value):
    """True for Python and numpy integers (what numpy accepts as an index)."""
    try:
        value.__index__()
    except (AttributeError, TypeError):
        return False
    return True


def collision(_=None, object1=None, object2=None, x1=0, y1=0, x2=0, y2=0, background=Color.BLACK):
    """Whether object1 placed at (x1, y1) and object2 at (x2, y2) share a non-background cell.

    The offset is int(x2 - x1), int(y2 - y1) (truncated, as in the reference).
    """
    dx, dy = int(x2 - x1), int(y2 - y1)
    return _offset_overlap(object1 != background, object2 != background, dx, dy)


def contact(
    _=None,
    object1=None,
    object2=None,
    x1=0,
    y1=0,
    x2=0,
    y2=0,
    background=Color.BLACK,
    connectivity=4,
):
    """Whether the two placed objects overlap or touch (4- or 8-adjacent)."""
    dx, dy = int(x2 - x1), int(y2 - y1)
    structure = _structure(connectivity)
    # Grow object2 by one pixel on every side so that touching becomes overlapping.
    grown = ndimage.binary_dilation(np.pad(object2 != background, 1), structure=structure)
    return _offset_overlap(object1 != background, grown, dx - 1, dy - 1)


def check_between_objects(obj1, obj2, x, y, padding=0, background=Color.BLACK):
    """Whether (x, y) lies in the straight corridor between two objects' bounding boxes.

    Horizontally: x strictly between the boxes along x, and y inside both boxes' y-ranges
    shrunk by `padding`; vertically likewise with the axes swapped. (The reference sorts
    the two objects first; the test is symmetric in them, so the order cannot matter.)
    """
    box1 = bounding_box(obj1, background=background)
    box2 = bounding_box(obj2, background=background)
    for along, across, axis in ((x, y, 0), (y, x, 1)):
        start1, size1, lo1, extent1 = box1[axis], box1[axis + 2], box1[1 - axis], box1[3 - axis]
        start2, size2, lo2, extent2 = box2[axis], box2[axis + 2], box2[1 - axis], box2[3 - axis]
        inside_across = across - padding >= max(lo1, lo2) and across + padding < min(
            lo1 + extent1, lo2 + extent2
        )
        if inside_across and (start1 + size1 <= along < start2 or start2 + size2 <= along < start1):
            return True
    return False


# ----------------------------------------------------------------------------- masks


def object_interior(grid, background=Color.BLACK):
    """Boolean grid: the object's pixels and every background cell enclosed by them.

    A background cell is exterior when it is 4-connected, through background cells, to
    the grid's border.
    """
    empty = grid == background
    labels, _ = ndimage.label(empty, _structure(4))
    border = np.concatenate([labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]])
    outside = np.isin(labels, border[border > 0])
    return ~outside


def object_boundary(grid, background=Color.BLACK):
    """Boolean grid: object pixels 4-adjacent to the exterior or on the grid's border."""
    exterior = ~object_interior(grid, background)
    on_border = np.zeros_like(grid, dtype=bool)
    on_border[0, :] = on_border[-1, :] = on_border[:, 0] = on_border[:, -1] = True
    near_exterior = ndimage.binary_dilation(exterior, iterations=1)
    return (grid != background) & (near_exterior | on_border)


def object_neighbors(grid, background=Color.BLACK, connectivity=4):
    """Boolean grid: background cells adjacent (4 or 8) to the object's boundary."""
    boundary = object_boundary(grid, background)
    ring = _structure(connectivity)
    ring[1, 1] = False
    return ndimage.binary_dilation(boundary, structure=ring) & (grid == background)


# ----------------------------------------------------------------------------- symmetry


def _as_pixel(x, y):
    """The reference's coordinate clean-up after a symmetry: arrays to int, floats rounded."""
    if isinstance(x, np.ndarray):
        x = x.astype(int)
    if isinstance(y, np.ndarray):
        y = y.astype(int)
    if isinstance(x, float):
        x = int(round(x))
    if isinstance(y, float):
        y = int(round(y))
    return x, y


class Symmetry:
    """Base of the symmetries the detectors return; `apply` maps a point (x, y)."""

    def apply(self, x, y, iters=1):
        """Apply the transformation `iters` times to (x, y) (arrays allowed)."""


class TranslationalSymmetry(Symmetry):
    """Translation by (translate_x, translate_y), repeated `iters` times."""

    def __init__(self, translate_x, translate_y):
        self.translate_x, self.translate_y = translate_x, translate_y

    def apply(self, x, y, iters=1):
        """(x + iters * translate_x, y + iters * translate_y)."""
        return _as_pixel(x + iters * self.translate_x, y + iters * self.translate_y)

    def __repr__(self):
        return (
            f"TranslationalSymmetry(translate_x={self.translate_x}, translate_y={self.translate_y})"
        )

    __str__ = __repr__

    def _iter_range(self, grid_shape):
        """Enough repetitions in both directions to cross the whole grid."""
        reach = 0
        if self.translate_x != 0:
            reach = math.ceil(grid_shape[0] / abs(self.translate_x))
        if self.translate_y != 0:
            reach = max(reach, math.ceil(grid_shape[1] / abs(self.translate_y)))
        return (-reach, reach + 1)


class MirrorSymmetry:
    """Reflection across x = mirror_x and/or y = mirror_y (None: that axis is kept).

    Reference quirk kept: it is not a subclass of `Symmetry`.
    """

    def __init__(self, mirror_x, mirror_y):
        self.mirror_x, self.mirror_y = mirror_x, mirror_y

    def apply(self, x, y, iters=1):
        """The mirror image for odd `iters`; (x, y) unchanged (not even cleaned up) for even."""
        if iters % 2 == 0:
            return x, y
        if self.mirror_x is not None:
            x = 2 * self.mirror_x - x
        if self.mirror_y is not None:
            y = 2 * self.mirror_y - y
        return _as_pixel(x, y)

    def __repr__(self):
        return f"MirrorSymmetry(mirror_x={self.mirror_x}, mirror_y={self.mirror_y})"

    __str__ = __repr__

    def _iter_range(self, grid_shape):
        return (0, 2)


class _RotationalSymmetry(Symmetry):
    """Quarter turns about (center_x, center_y); what `detect_rotational_symmetry` returns.

    Private, like the reference's class local to the detector. Reference quirk kept: a
    negative `iters` does not turn at all.
    """

    def __init__(self, center_x, center_y):
        self.center_x, self.center_y = center_x, center_y

    def apply(self, x, y, iters=1):
        """Turn (x, y) clockwise (x, y) -> (y, -x) about the centre, `iters` times."""
        x, y = x - self.center_x, y - self.center_y
        for _ in range(iters):
            x, y = y, -x
        return _as_pixel(x + self.center_x, y + self.center_y)

    def _iter_range(self, grid_shape):
        return (0, 4)


def orbit(grid, x, y, symmetries):
    """Every in-grid point reachable from (x, y) by applying each symmetry some times.

    Applications are chained in the order of `symmetries`; a chain that leaves the grid
    midway is dropped. Returned as `list(set(...))` of the chains in product order, as
    the reference does (so the element order matches).

    Programs call this once per pixel, so the usual case (integer point, the DSL's own
    symmetry classes with whole-pixel results) evaluates all chains at once with integer
    arrays; anything else is replayed chain by chain through `apply`.
    """
    ranges = [range(*symmetry._iter_range(grid.shape)) for symmetry in symmetries]
    steps = [_integer_step(symmetry) for symmetry in symmetries]
    if not symmetries or not _is_integer(x) or not _is_integer(y) or None in steps:
        return _orbit_by_chains(grid, x, y, symmetries, ranges)
    n, m = grid.shape
    counts = [c.ravel() for c in np.meshgrid(*ranges, indexing="ij")]
    xs = np.full(len(counts[0]), int(x), dtype=np.int64)
    ys = np.full(len(counts[0]), int(y), dtype=np.int64)
    alive = np.ones(len(xs), dtype=bool)
    for step, count in zip(steps, counts, strict=True):
        xs, ys = step(xs, ys, count)
        alive &= (xs >= 0) & (xs < n) & (ys >= 0) & (ys < m)
    return list(set(zip(xs[alive].tolist(), ys[alive].tolist(), strict=True)))


def _orbit_by_chains(grid, x, y, symmetries, ranges):
    """`orbit` the reference's way: every chain of `apply` calls, one at a time."""
    reached = []
    for counts in itertools.product(*ranges):
        px, py = x, y
        for symmetry, count in zip(symmetries, counts, strict=True):
            px, py = symmetry.apply(px, py, count)
            if not (0 <= px < grid.shape[0] and 0 <= py < grid.shape[1]):
                break
        else:
            reached.append((px, py))
    return list(set(reached))


def _doubled(value):
    """2 × value as an int when that is a whole number of a plain numeric type, else None."""
    if _is_integer(value):
        return 2 * int(value)
    if type(value) in (float, np.float64) and float(2 * value).is_integer():
        return int(2 * value)
    return None


def _integer_step(symmetry):
    """`symmetry.apply` on integer arrays with per-element counts, when it is exact; else None.

    Exact means: one of the DSL's own classes (a subclass may override `apply`) whose
    results are whole pixels, so the reference's float rounding never comes into play.
    """
    kind = type(symmetry)
    if kind is TranslationalSymmetry:
        tx, ty = symmetry.translate_x, symmetry.translate_y
        if not (_is_integer(tx) and _is_integer(ty)):
            return None
        return lambda xs, ys, k: (xs + k * int(tx), ys + k * int(ty))
    if kind is MirrorSymmetry:
        axes = [symmetry.mirror_x, symmetry.mirror_y]
        doubled = [None if a is None else _doubled(a) for a in axes]
        if any(a is not None and d is None for a, d in zip(axes, doubled, strict=True)):
            return None
        dx, dy = doubled

        def mirror(xs, ys, k):
            odd = k % 2 == 1
            if dx is not None:
                xs = np.where(odd, dx - xs, xs)
            if dy is not None:
                ys = np.where(odd, dy - ys, ys)
            return xs, ys

        return mirror
    if kind is _RotationalSymmetry:
        dp, dq = _doubled(symmetry.center_x), _doubled(symmetry.center_y)
        if dp is None or dq is None or (dp - dq) % 2:
            return None
        # one clockwise turn about (p, q): (x, y) -> (y + p - q, p + q - x), all whole numbers
        shift, total = (dp - dq) // 2, (dp + dq) // 2

        def turn(xs, ys, k):
            for done in range(int(k.max(initial=0))):
                more = k > done
                xs, ys = np.where(more, ys + shift, xs), np.where(more, total - xs, ys)
            return xs, ys

        return turn
    return None


def _family_counts(grid, ignore_colors, background, reflect_x, reflect_y, swap=False):
    """Scoring counts for a whole family of symmetries at once, as a function of its offsets.

    The family maps (x, y) to (±x + kx, ±y + ky) on `grid` (reflect_x / reflect_y pick the
    minus signs), or, with `swap`, to the transposed grid's (±x + kx, ±y + ky), which is
    how a quarter turn (x, y) -> (y + d, s - x) is read. The returned function gives, for
    offsets (kx, ky), the reference's (preserved, off-canvas, conflicting) counts over the
    considered pixels (colour not in `ignore_colors`, nor `background` when given):
    preserved = mapped onto the same colour, conflicting = onto another colour that is not
    ignored.

    Why: the detectors score 2 × width × height candidates, and pixel-by-pixel scoring made a
    30 × 30 mirror search take ~70 ms (now ~2 ms). Every count is a sum over pixel pairs (x, x') with
    x' = ±x + k along each axis, i.e. a convolution (or, with the source flipped, a
    correlation), so one FFT per colour gives all offsets. Counts are small integers, so
    rounding the FFT result recovers them exactly.
    """
    n, m = grid.shape
    ignored = np.isin(grid, ignore_colors)
    considered = ~ignored
    if background is not None:
        considered &= grid != background
    target, target_ignored = (grid.T, ignored.T) if swap else (grid, ignored)
    shape = (n + target.shape[0] - 1, m + target.shape[1] - 1)
    # any transform length >= the full convolution avoids wrap-around; pick fast ones
    padded = tuple(scipy.fft.next_fast_len(length, real=True) for length in shape)

    def source(mask):
        # flipping the source where the map keeps orientation turns correlations into
        # convolutions, so that one product of spectra serves every axis combination
        flipped = mask[:: 1 if reflect_x else -1, :: 1 if reflect_y else -1]
        return scipy.fft.rfft2(flipped, padded)

    def spectrum(mask):
        return scipy.fft.rfft2(mask, padded)

    def counts_of(product):
        full = scipy.fft.irfft2(product, padded)[: shape[0], : shape[1]]
        return np.rint(full).astype(np.int64)

    preserved = np.zeros(shape, dtype=np.int64)
    for colour in np.unique(grid[considered]):
        preserved += counts_of(source(considered & (grid == colour)) * spectrum(target == colour))
    everywhere = source(considered)
    landed = counts_of(everywhere * spectrum(np.ones(target.shape)))
    hits = counts_of(everywhere * spectrum(~target_ignored))
    total = np.sum(considered)
    shift_x = 0 if reflect_x else n - 1
    shift_y = 0 if reflect_y else m - 1

    def counts(kx, ky):
        """(preserved, off-canvas, conflicting) arrays for offset arrays kx, ky."""
        i, j = np.asarray(kx) + shift_x, np.asarray(ky) + shift_y
        inside = (i >= 0) & (i < shape[0]) & (j >= 0) & (j < shape[1])
        i, j = np.where(inside, i, 0), np.where(inside, j, 0)
        kept = np.where(inside, preserved[i, j], 0)
        off_canvas = total - np.where(inside, landed[i, j], 0)
        return kept, off_canvas, np.where(inside, hits[i, j], 0) - kept

    return counts


def detect_translational_symmetry(grid, ignore_colors=(Color.BLACK,), background=None):
    """The best translation along x and the best along y (or, failing both, the best diagonal).

    Candidates are scored preserved − 0.01 × off-canvas − 100000 × conflicts and only
    positive scores count. Ties go to the larger −(translate_x + translate_y), then to the
    first candidate, as in the reference (which favours negative shifts among equals).
    Candidates, in order: x by 1 … n−1 then −1 … −(n−1); the same along y; diagonals
    (1 … n−1) × (1 … m−1).
    """
    n, m = grid.shape
    counts = _family_counts(grid, ignore_colors, background, reflect_x=False, reflect_y=False)
    steps_x, steps_y = np.arange(1, n), np.arange(1, m)
    along_x = np.concatenate([steps_x, -steps_x])
    along_y = np.concatenate([steps_y, -steps_y])
    families = [(along_x, np.zeros_like(along_x)), (np.zeros_like(along_y), along_y)]
    found = [best for best in (_best_translation(counts, *f) for f in families) if best]
    if not found:
        diagonal_x, diagonal_y = np.meshgrid(steps_x, steps_y, indexing="ij")
        best = _best_translation(counts, diagonal_x.ravel(), diagonal_y.ravel())
        found = [best] if best else []
    return found


def _best_translation(counts, tx, ty):
    """The first top-scoring translation among the offsets (tx, ty), or None if none is > 0."""
    preserved, off_canvas, conflict = counts(tx, ty)
    value = preserved - 0.01 * off_canvas - 100000 * conflict
    positive = value > 0
    if not positive.any():
        return None
    top = value == value[positive].max()
    tie_break = -(tx + ty)
    first = np.flatnonzero(top & (tie_break == tie_break[top].max()))[0]
    return TranslationalSymmetry(int(tx[first]), int(ty[first]))


def _half(k):
    """An axis at k / 2: an int on a pixel, a float between two (as the reference's k + 0.5)."""
    return k // 2 if k % 2 == 0 else k / 2


def detect_mirror_symmetry(grid, ignore_colors=(Color.BLACK,), background=None):
    """All equally best mirror axes: vertical lines, horizontal lines, then both at once.

    Axes sit on pixel centres or between pixels (k or k + 0.5); a combined candidate uses
    the same offset for both. Any conflict or nothing preserved disqualifies; the score is
    preserved − 0.01 × off-canvas; every qualified candidate with the top score (at least 0)
    is returned, in candidate order.
    """
    n, m = grid.shape
    # x' = 2 * mirror_x - x: candidates are the doubled axes 0, 1, ..., in the reference order
    doubled_x, doubled_y = np.arange(2 * n), np.arange(2 * m)
    cx, cy, half = (a.ravel() for a in np.meshgrid(range(n), range(m), [0, 1], indexing="ij"))
    families = [
        (True, False, doubled_x, np.zeros_like(doubled_x)),
        (False, True, np.zeros_like(doubled_y), doubled_y),
        (True, True, 2 * cx + half, 2 * cy + half),
    ]
    scores = []
    for reflect_x, reflect_y, kx, ky in families:
        counts = _family_counts(grid, ignore_colors, background, reflect_x, reflect_y)
        preserved, off_canvas, conflict = counts(kx, ky)
        value = preserved - 0.01 * off_canvas - 10000 * conflict
        scores.append(np.where((conflict > 0) | (preserved == 0), -np.inf, value))
    score = np.concatenate(scores)
    if not len(score) or score.max() < 0:
        return []
    found = []
    ends = np.cumsum([len(kx) for _, _, kx, _ in families])
    for index in np.flatnonzero(score == max(score.max(), 0)):
        family = int(np.searchsorted(ends, index, side="right"))
        reflect_x, reflect_y, kx, ky = families[family]
        i = index - (ends[family - 1] if family else 0)
        mirror_x = _half(int(kx[i])) if reflect_x else None
        mirror_y = _half(int(ky[i])) if reflect_y else None
        found.append(MirrorSymmetry(mirror_x, mirror_y))
    return found


def detect_rotational_symmetry(grid, ignore_colors=(Color.BLACK,), background=None):
    """The best quarter-turn symmetry, or None when no candidate scores above 0.

    Centres (cx + z, cy + z) with z in {0, 0.5}; score preserved − 5 × off-canvas − 1000 ×
    conflicts; the first best candidate in (cx, cy, z) order wins. The result's `apply`
    turns clockwise; `center_x` and `center_y` hold the centre.
    """
    n, m = grid.shape
    # a clockwise turn about (p, q) maps (x, y) to (y + p - q, p + q - x)
    counts = _family_counts(grid, ignore_colors, background, True, False, swap=True)
    cx, cy, half = (a.ravel() for a in np.meshgrid(range(n), range(m), [0, 1], indexing="ij"))
    preserved, off_canvas, conflict = counts(cx + cy + half, cx - cy)
    value = preserved - 5 * off_canvas - 1000 * conflict
    if value.max() <= 0:
        return None
    best = int(np.argmax(value))
    z = 0.5 if half[best] else 0
    return _RotationalSymmetry(int(cx[best]) + z, int(cy[best]) + z)


# ----------------------------------------------------------------------------- detection


def detect_objects(
    grid,
    _=None,
    predicate=None,
    background=Color.BLACK,
    monochromatic=False,
    connectivity=None,
    allowed_dimensions=None,
    colors=None,
    can_overlap=False,
):
    """Objects of the grid, as grid-sized arrays, by components and/or a window scan.

    - connectivity given: connected components, filtered by `colors` (every colour in the
      list or background) and by `predicate(cropped object)`. Reference quirk kept:
      connectivity=None means no components at all (not "automatic", as its docstring says).
    - allowed_dimensions given: components whose (whole-grid) shape is not listed are
      dropped, then every n × m window with a non-background pixel passing `colors` and
      `predicate(window)` is added unless equal to one of the components.
    - can_overlap=False: objects are sorted by bounding-box area then mass, descending;
      those overlapping nothing are kept, and among the rest the reference's depth-first
      search picks a non-overlapping subset covering the most pixels.
    """
    objects = []
    if connectivity:
        objects.extend(
            find_connected_components(
                grid, background=background, connectivity=connectivity, monochromatic=monochromatic
            )
        )
        if colors:
            objects = [o for o in objects if _only_colours(o, colors, background)]
        if predicate:
            objects = [o for o in objects if predicate(crop(o, background=background))]
    if allowed_dimensions:
        objects = [o for o in objects if o.shape in allowed_dimensions]
        objects.extend(
            _scan_windows(grid, objects, predicate, background, allowed_dimensions, colors)
        )
    if not can_overlap:
        objects = _without_overlaps(grid, objects, background)
    return objects


def _only_colours(pixels, colors, background):
    """True when every pixel is in `colors` or is `background`."""
    return all((colour in colors) or colour == background for colour in pixels.flatten())


def _scan_windows(grid, components, predicate, background, allowed_dimensions, colors):
    """The window candidates of `detect_objects`, in (dimension, x, y) order."""
    found = []
    for n, m in allowed_dimensions:
        for i in range(grid.shape[0] - n + 1):
            for j in range(grid.shape[1] - m + 1):
                window = grid[i : i + n, j : j + m]
                if not np.any(window != background):
                    continue
                if colors is not None and not _only_colours(window, colors, background):
                    continue
                if predicate is not None and not predicate(window):
                    continue
                candidate = np.full(grid.shape, background)
                candidate[i : i + n, j : j + m] = window
                if not any(np.all(candidate == c) for c in components):
                    found.append(candidate)
    return found


def _without_overlaps(grid, objects, background):
    """The non-overlapping selection of `detect_objects` (see there)."""

    def size(obj):
        cropped = crop(obj, background)
        return (cropped.shape[0] * cropped.shape[1], np.sum(obj != background))

    objects = sorted(objects, key=size, reverse=True)
    if not objects:
        return objects
    masks = np.stack([(o != background).ravel() for o in objects]).astype(np.int64)
    overlaps = (masks @ masks.T) > 0
    np.fill_diagonal(overlaps, False)
    clashing = overlaps.any(axis=1)
    kept = [o for o, c in zip(objects, clashing, strict=True) if not c]
    contested = [i for i, c in enumerate(clashing) if c]
    reachable = np.zeros_like(grid, dtype=bool)
    for i in contested:
        reachable |= objects[i] != background
    best_possible = np.sum(reachable)

    def pick(remaining, chosen, covered):
        if not remaining:
            return [objects[i] for i in chosen], np.sum(covered)
        first, *rest = remaining
        if any(overlaps[i, first] for i in chosen):
            return pick(rest, chosen, covered)
        with_first = pick(rest, chosen + [first], covered | (objects[first] != background))
        if with_first[1] == best_possible:
            return with_first
        without_first = pick(rest, chosen, covered)
        return with_first if with_first[1] > without_first[1] else without_first

    selection, _ = pick(contested, [], np.zeros_like(grid, dtype=bool))
    return kept + selection


# ----------------------------------------------------------------------------- generators


def randomly_scatter_points(grid, color, density=0.5, background=Color.BLACK):
    """Paint random background cells until density × area cells were painted (in place).

    Draws (x, y) with `np.random.randint` until enough background cells were hit, so it
    consumes numpy's global RNG exactly like the reference (and, like it, never ends when
    the grid has too few background cells).
    """
    painted = 0
    n, m = grid.shape
    while painted < density * n * m:
        px = np.random.randint(0, n)
        py = np.random.randint(0, m)
        if grid[px, py] == background:
            grid[px, py] = color
            painted += 1
    return grid


def randomly_spaced_indices(max_len, n_indices, border_size=1, padding=1):
    """`n_indices` random sorted indices in range(max_len), at least `padding` apart.

    Reference quirk kept: a border shrinks the range by border_size + 2 (not 2 × border)
    before shifting it by border_size.
    """
    if border_size > 0:
        inner = randomly_spaced_indices(
            max_len - border_size - 2, n_indices, border_size=0, padding=padding
        )
        return inner + border_size
    chosen = [0] * max_len
    while sum(chosen) < n_indices:
        free = [
            i
            for i in range(max_len)
            if sum(chosen[max(0, i - padding) : min(i + 1 + padding, max_len)]) == 0
        ]
        chosen[random.choice(free)] = 1
    return np.argwhere(chosen).flatten()


def random_free_location_for_sprite(
    grid,
    sprite,
    background=Color.BLACK,
    border_size=0,
    padding=0,
    padding_connectivity=8,
):
    """A random (x, y) where `sprite` fits without touching non-background pixels.

    Candidates are all corners keeping `border_size` from the edges, in x-major order; with
    `padding` the occupied pixels are first dilated that many times (4- or
    8-connectivity). One `random.choice` among the free ones, as in the reference, so the
    same seed gives the same spot. Raises ValueError when nothing fits.
    """
    n, m = grid.shape
    sprite_mask = sprite != background
    occupied = grid != background
    if padding > 0:
        structure = _structure(padding_connectivity, "padding_connectivity must be 4 or 8.")
        occupied = ndimage.binary_dilation(occupied, iterations=padding, structure=structure)
    sn, sm = sprite.shape
    free = []
    for px in range(border_size, n + 1 - border_size - sn):
        for py in range(border_size, m + 1 - border_size - sm):
            if _fits(occupied, sprite_mask, px, py):
                free.append((px, py))
    if not free:
        raise ValueError("No free location for sprite found.")
    return random.choice(free)


def _fits(occupied, sprite_mask, px, py):
    """Whether every sprite pixel at corner (px, py) lands inside the grid on a free cell."""
    n, m = occupied.shape
    sn, sm = sprite_mask.shape
    i_lo, i_hi = max(0, -px), min(sn, n - px)
    j_lo, j_hi = max(0, -py), min(sm, m - py)
    if i_lo >= i_hi or j_lo >= j_hi:
        return not sprite_mask.any()
    inside = sprite_mask[i_lo:i_hi, j_lo:j_hi]
    if inside.sum() != sprite_mask.sum():
        return False
    return not np.any(occupied[px + i_lo : px + i_hi, py + j_lo : py + j_hi] & inside)


def random_sprite(
    n,
    m,
    density=0.5,
    symmetry=None,
    color_palette=None,
    connectivity=4,
    background=Color.BLACK,
):
    """A random contiguous n × m sprite touching all four sides.

    n, m: an int, a list or a range (one value is drawn). symmetry: 'horizontal',
    'vertical', 'diagonal', 'radial', 'mirror' or 'not_symmetric' (random when None; the
    last two need n == m to be possible). The sprite is a random walk painting
    `density` of the cells; small sprites get a higher density, larger ones a jittered
    one. Every draw from `random` happens in the reference's order, so a seeded program
    gets the reference's sprite.
    """
    n_options = _as_options(n)
    m_options = _as_options(m)
    squares = [(a, b) for a in n_options for b in m_options if a == b]
    kinds = ["horizontal", "vertical", "not_symmetric", "mirror"]
    if squares:
        kinds += ["diagonal", "radial"]
    kind = symmetry or random.choice(kinds)
    if kind in ["diagonal", "radial"]:
        width, height = random.choice(squares)
    else:
        width = random.choice(n_options)
        height = random.choice(m_options)

    fill = density
    if width == 1 or height == 1:
        fill = 1
    elif width == 2 or height == 2:
        fill = max(density, 0.6)
    elif width == 3 or height == 3:
        fill = max(density, 0.5)
    elif density != 1:
        fill = max(0.4, min(0.95, random.gauss(density, 0.1)))

    sprite = _generate_sprite(width, height, kind, fill, color_palette, connectivity, background)
    assert is_contiguous(sprite, connectivity=connectivity, background=background), (
        "Generated sprite is not contiguous."
    )
    touches_all_sides = (
        np.sum(sprite[0, :] != background) > 0
        and np.sum(sprite[-1, :] != background) > 0
        and np.sum(sprite[:, 0] != background) > 0
        and np.sum(sprite[:, -1] != background) > 0
    )
    if touches_all_sides:
        return sprite
    return random_sprite(n, m, density, symmetry, color_palette, connectivity, background)


def _as_options(size):
    """A sprite dimension as the list of its possible values."""
    if isinstance(size, range):
        return list(size)
    if not isinstance(size, list):
        return [size]
    return size


_WALK = {
    4: [(0, 1), (0, -1), (1, 0), (-1, 0)],
    8: [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)],
}


def _generate_sprite(n, m, kind, fill, palette, connectivity, background):
    """The random walk behind `random_sprite`, then its symmetrisation.

    For 'mirror' and 'radial' the walk paints one quadrant, which is then reflected or
    rotated into place; a 'mirror' result that falls apart is drawn again.
    """
    if palette is None:
        n_colours = 1
        while n_colours < 9 and random.random() < 0.3:
            n_colours += 1
        palette = random.sample([c for c in Color.ALL_COLORS if c != background], n_colours)
    else:
        n_colours = len(palette)

    full_n, full_m = n, m
    grid = np.full((n, m), background)
    if kind == "not_symmetric":
        x, y = random.randint(0, n - 1), random.randint(0, m - 1)
    elif kind == "horizontal":
        x, y = random.randint(0, n - 1), m // 2
    elif kind == "vertical":
        x, y = n // 2, random.randint(0, m - 1)
    elif kind == "diagonal":
        anti = random.choice([True, False])
        x = random.randint(0, n - 1)
        y = x if anti else n - 1 - x
    elif kind == "mirror":
        n, m = int(n / 2 + 0.5), int(m / 2 + 0.5)
        x, y = random.randint(0, n - 1), random.randint(0, m - 1)
        grid = np.full((n, m), background)
    elif kind == "radial":
        assert n == m, "Radial symmetry requires a square grid."
        n, m = int(n / 2 + 0.5), int(m / 2 + 0.5)
        x, y = n - 1, m - 1
    else:
        raise ValueError(f"Invalid symmetry type {kind}.")
    if connectivity not in _WALK:
        raise ValueError("Connectivity must be 4 or 8.")
    moves = _WALK[connectivity]

    colour_index = 0
    while np.sum(grid != background) < fill * n * m:
        grid[x, y] = palette[colour_index]
        if random.random() < 0.33:
            colour_index = random.choice(range(n_colours))
        dx, dy = random.choice(moves)
        if 0 <= x + dx < n and 0 <= y + dy < m:
            x, y = x + dx, y + dy

    if kind in ["horizontal", "vertical"]:
        return _mirror_in_place(grid, axis=0 if kind == "horizontal" else 1, background=background)
    if kind == "radial":
        whole = np.full((full_n, full_n), background)
        blit(whole, grid, background=background)
        for _ in range(3):
            blit(whole, np.rot90(whole), background=background)
        return whole
    if kind == "mirror":
        whole = np.full((full_n, full_m), background)
        whole[:n, :m] = grid
        ox = 0 if full_n % 2 == 0 else -1
        oy = 0 if full_m % 2 == 0 else -1
        whole[n + ox :, :m] = np.flipud(grid)
        whole[:n, m + oy :] = np.fliplr(grid)
        whole[n + ox :, m + oy :] = np.flipud(np.fliplr(grid))
        if not is_contiguous(whole, background=background, connectivity=connectivity):
            return _generate_sprite(full_n, full_m, kind, fill, palette, connectivity, background)
        return whole
    if kind == "diagonal":
        if anti:
            return np.flipud(_transpose_symmetric(np.flipud(grid), background))
        return _transpose_symmetric(grid, background)
    return grid


def _mirror_in_place(sprite, axis, background):
    """Make the sprite symmetric along `axis`, each pair keeping its first non-background."""
    near = np.moveaxis(sprite, axis, 0)
    half = near.shape[0] // 2
    first = near[:half]
    second = near[::-1][:half]
    merged = np.where(first != background, first, second)
    first[...] = merged
    second[...] = merged
    return sprite


def _transpose_symmetric(sprite, background):
    """Make a square sprite equal to its transpose, in place; the upper triangle wins.

    Raises ValueError for a non-square sprite, as the reference.
    """
    n, m = sprite.shape
    if n != m:
        raise ValueError("Diagonal symmetry requires a square sprite.")
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    mine, theirs = sprite.copy(), sprite.T.copy()
    pick = np.where(mine != background, mine, np.where(theirs != background, theirs, background))
    merged = np.where(upper, pick, np.where(upper.T, pick.T, mine))
    sprite[...] = merged
    return sprite
