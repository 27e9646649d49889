"""The DSL (`common`), function by function, against values worked out by hand.

Grids are written as the program sees them: `grid[x, y]`, x the first axis (the row of the
literal below). Where the reference has a quirk that programs may rely on, the test pins it
and says so.
"""

from __future__ import annotations

import ast
import random
import sys

import numpy as np
import pytest

from arcjobs.sandbox.dsl import DSL_PATH, DSL_VERSION, load_common

pytestmark = pytest.mark.unit

dsl = load_common()
Color = dsl.Color


def g(*rows):
    return np.array(rows, dtype=int)


# ----------------------------------------------------------------------------- module


def test_package_names_the_file_and_version():
    assert DSL_PATH.name == "common.py" and DSL_PATH.is_file()
    assert isinstance(DSL_VERSION, str) and DSL_VERSION


def test_star_import_gives_the_model_facing_names_plus_np_and_random(monkeypatch):
    monkeypatch.setitem(sys.modules, "common", dsl)
    namespace: dict = {}
    exec("from common import *", namespace)
    exported = set(namespace) - {"__builtins__"}
    assert len(exported - {"np", "random"}) == 34
    assert namespace["np"] is np and namespace["random"] is random
    assert {"Color", "detect_objects", "scale_pattern", "MirrorSymmetry"} <= exported
    # internal helpers stay out of a program's namespace, as in the reference
    assert not {"generate_sprite", "show_colored_grid", "visualize", "ndimage"} & exported


def test_imports_only_numpy_scipy_and_the_standard_library():
    tree = ast.parse(DSL_PATH.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= {"numpy", "scipy", "random", "math", "itertools"}


def test_colors():
    assert (Color.BLACK, Color.BLUE, Color.RED, Color.GREEN, Color.YELLOW) == (0, 1, 2, 3, 4)
    assert (Color.GREY, Color.GRAY, Color.PINK, Color.ORANGE) == (5, 5, 6, 7)
    assert (Color.TEAL, Color.PURPLE, Color.MAROON, Color.BROWN) == (8, 8, 9, 9)
    assert Color.TRANSPARENT == Color.BACKGROUND == 0
    assert list(range(10)) == Color.ALL_COLORS
    assert list(range(1, 10)) == Color.NOT_BLACK


def test_each_load_is_independent():
    first, second = load_common(), load_common()
    first.Color.RED = 7
    first.Color.NOT_BLACK.append(42)
    assert second.Color.RED == 2 and 42 not in second.Color.NOT_BLACK


# ----------------------------------------------------------------------------- drawing


def test_flood_fill_4_connected_in_place():
    grid = g([0, 0, 1], [1, 0, 1], [0, 1, 0])
    assert dsl.flood_fill(grid, 0, 0, 5) is None
    assert grid.tolist() == [[5, 5, 1], [1, 5, 1], [0, 1, 0]]


def test_flood_fill_8_connected_crosses_diagonals():
    grid = g([0, 1, 1], [1, 0, 1], [1, 1, 0])
    dsl.flood_fill(grid, 0, 0, 3, connectivity=8)
    assert grid.tolist() == [[3, 1, 1], [1, 3, 1], [1, 1, 3]]


def test_flood_fill_recolors_non_black_regions_and_ignores_same_color():
    grid = g([2, 2, 0], [0, 2, 0])
    dsl.flood_fill(grid, 1, 1, 4)
    assert grid.tolist() == [[4, 4, 0], [0, 4, 0]]
    dsl.flood_fill(grid, 0, 2, 0)
    assert grid.tolist() == [[4, 4, 0], [0, 4, 0]]


def test_flood_fill_rejects_other_connectivity():
    with pytest.raises(AssertionError):
        dsl.flood_fill(g([0]), 0, 0, 1, connectivity=6)


def test_flood_fill_from_negative_index_walks_like_the_reference():
    # Reference quirk: x = -1 reads row 2 (Python wraps) but the recursion steps from the
    # raw coordinate -1 to row 0, so the fill leaks from row 2 into row 0 across the wall.
    grid = g([0, 0, 0], [1, 1, 1], [0, 0, 0])
    dsl.flood_fill(grid, -1, 0, 5)
    assert grid.tolist() == [[5, 5, 5], [1, 1, 1], [5, 5, 5]]


def test_draw_line_with_length_and_direction():
    grid = np.zeros((4, 4), dtype=int)
    assert dsl.draw_line(grid, 0, 0, length=3, color=1, direction=(1, 1)) == (2, 2)
    assert grid.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_draw_line_without_length_runs_to_the_edge():
    grid = np.zeros((3, 5), dtype=int)
    assert dsl.draw_line(grid, 1, 1, direction=(0, 1), color=2) == (1, 4)
    assert grid[1].tolist() == [0, 2, 2, 2, 2] and grid.sum() == 8


def test_draw_line_to_an_end_point():
    grid = np.zeros((3, 3), dtype=int)
    assert dsl.draw_line(grid, 2, 0, end_x=0, end_y=2, color=4) == (0, 2)
    assert grid.tolist() == [[0, 0, 4], [0, 4, 0], [4, 0, 0]]


def test_draw_line_end_point_off_the_diagonal_is_not_reached():
    # The direction is the sign of the offset: (3, 1) draws the diagonal (1, 1), 4 long.
    grid = np.zeros((5, 5), dtype=int)
    assert dsl.draw_line(grid, 0, 0, end_x=3, end_y=1, color=1) == (3, 3)
    assert np.argwhere(grid).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]


def test_draw_line_stops_before_a_stop_color():
    grid = g([0, 0, 7, 0])
    assert dsl.draw_line(grid, 0, 0, direction=(0, 1), color=3, stop_at_color=[7]) == (0, 1)
    assert grid.tolist() == [[3, 3, 7, 0]]


def test_draw_line_enters_from_outside_and_returns_start_when_nothing_drawn():
    grid = np.zeros((1, 3), dtype=int)
    assert dsl.draw_line(grid, 0, -2, length=4, direction=(0, 1), color=6) == (0, 1)
    assert grid.tolist() == [[6, 6, 0]]
    assert dsl.draw_line(grid, 5, 5, length=2, direction=(1, 0), color=1) == (5, 5)


def test_draw_line_requires_both_end_coordinates():
    with pytest.raises(AssertionError):
        dsl.draw_line(np.zeros((2, 2), dtype=int), 0, 0, end_x=1, color=1)


# ----------------------------------------------------------------------------- sprites


def test_scale_sprite_and_its_old_name():
    sprite = g([1, 2], [3, 0])
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]]
    assert dsl.scale_sprite(sprite, factor=2).tolist() == expected
    assert dsl.scale_pattern(sprite, 2).tolist() == expected
    assert dsl.scale_sprite(sprite.astype(np.int8), 3).dtype == np.int8


def test_blit_in_place_with_transparency_and_clipping():
    grid = np.full((3, 3), 5)
    sprite = g([1, 0], [0, 2])
    assert dsl.blit(grid, sprite, 2, 2, background=0) is grid
    assert grid.tolist() == [[5, 5, 5], [5, 5, 5], [5, 5, 1]]
    dsl.blit(grid, sprite, -1, 0)  # no background: zeros are copied too
    assert grid.tolist() == [[0, 2, 5], [5, 5, 5], [5, 5, 1]]


def test_blit_truncates_float_positions():
    grid = np.zeros((3, 3), dtype=int)
    dsl.blit(grid, g([9]), 1.9, 0.5)
    assert grid[1, 0] == 9 and grid.sum() == 9


def test_blit_of_a_view_of_the_grid_copies_pixel_by_pixel():
    # The reference copies in row-major order, so later pixels read earlier writes:
    # g[0,0]<-g[0,1]=2, g[0,1]<-g[1,1]=4, g[1,0]<-g[0,0]=2 (new), g[1,1]<-g[1,0]=2 (new).
    grid = g([1, 2], [3, 4])
    dsl.blit(grid, np.rot90(grid))
    assert grid.tolist() == [[2, 4], [2, 2]]


def test_blit_sprite_and_blit_object_treat_black_as_transparent():
    grid = np.full((2, 3), 4)
    dsl.blit_sprite(grid, g([0, 1]), x=1, y=1)
    assert grid.tolist() == [[4, 4, 4], [4, 4, 1]]
    dsl.blit_object(grid, g([2, 0, 0], [0, 0, 0]))
    assert grid.tolist() == [[2, 4, 4], [4, 4, 1]]


# ----------------------------------------------------------------------------- components


def test_connected_components_monochromatic_4_connected():
    grid = g([1, 1, 0], [0, 0, 1], [2, 0, 1])
    parts = dsl.find_connected_components(grid)
    assert [p.tolist() for p in parts] == [
        [[1, 1, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 0, 1]],
        [[0, 0, 0], [0, 0, 0], [2, 0, 0]],
    ]


def test_connected_components_8_connected_multicolor_with_background():
    grid = g([5, 1, 5], [5, 5, 2], [3, 5, 5])
    parts = dsl.find_connected_components(grid, background=5, connectivity=8, monochromatic=False)
    assert [p.tolist() for p in parts] == [
        [[5, 1, 5], [5, 5, 2], [5, 5, 5]],
        [[5, 5, 5], [5, 5, 5], [3, 5, 5]],
    ]


def test_connected_components_rejects_other_connectivity():
    with pytest.raises(ValueError):
        dsl.find_connected_components(g([1]), connectivity=6)


def test_is_contiguous():
    assert dsl.is_contiguous(g([1, 0], [0, 1]), connectivity=8)
    assert not dsl.is_contiguous(g([1, 0], [0, 1]))
    assert not dsl.is_contiguous(g([0, 0]))
    assert dsl.is_contiguous(g([3, 3], [3, 7]), background=3)


# ----------------------------------------------------------------------------- geometry


def test_bounding_box_and_mask():
    grid = g([0, 0, 0, 0], [0, 0, 3, 0], [0, 4, 0, 0])
    assert dsl.bounding_box(grid) == (1, 1, 2, 2)
    assert dsl.bounding_box(grid, background=3) == (0, 0, 3, 4)
    assert dsl.bounding_box_mask(grid).astype(int).tolist() == [
        [0, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
    ]


def test_bounding_box_of_an_empty_grid_is_the_reference_sentinel():
    assert dsl.bounding_box(np.zeros((2, 3), dtype=int)) == (2, 3, -2, -3)
    assert not dsl.bounding_box_mask(np.zeros((2, 3), dtype=int)).any()
    assert dsl.crop(np.zeros((2, 3), dtype=int)).shape == (0, 0)


def test_crop_is_a_view_of_the_grid():
    grid = g([0, 0, 0], [0, 2, 2], [0, 0, 2])
    sprite = dsl.crop(grid)
    assert sprite.tolist() == [[2, 2], [0, 2]]
    sprite[1, 0] = 9
    assert grid[2, 1] == 9


@pytest.mark.parametrize(
    "anchor, expected",
    [
        ("upper left", (1, 2)),
        ("Top Left", (1, 2)),
        ("upper right", (3, 2)),
        ("lower left", (1, 3)),
        ("bottom right", (3, 3)),
        ("center", (2, 2.5)),
        ("upper center", (2, 2)),
        ("lower center", (2, 3)),
        ("left center", (1, 2.5)),
        ("right center", (3, 2.5)),
    ],
)
def test_object_position_anchors(anchor, expected):
    obj = np.zeros((5, 5), dtype=int)
    obj[1:4, 2:4] = 1  # x from 1 to 3, y from 2 to 3
    position = dsl.object_position(obj, anchor=anchor)
    assert position == expected
    assert [type(v) for v in position] == [type(v) for v in expected]


def test_object_position_rejects_unknown_anchor():
    with pytest.raises(AssertionError):
        dsl.object_position(g([1]), anchor="middle")


def test_object_colors():
    assert sorted(dsl.object_colors(g([0, 3, 3], [8, 0, 3]))) == [3, 8]
    assert dsl.object_colors(g([1, 1, 2]), background=1) == [2]


def test_translate_shifts_and_fills_with_background():
    obj = g([1, 2, 0], [3, 4, 0])
    assert dsl.translate(obj, 1, 1).tolist() == [[0, 0, 0], [0, 1, 2]]
    assert dsl.translate(obj, 0, -1, background=7).tolist() == [[2, 0, 7], [4, 0, 7]]
    assert dsl.translate(obj, 5, 0).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert dsl.translate(obj.astype(np.int8), 1, 0).dtype == np.int8


def test_translate_by_a_float_fails_unless_everything_leaves():
    with pytest.raises(IndexError):
        dsl.translate(g([1, 2]), 0, 1.0)
    assert dsl.translate(g([1, 2]), 0, 2.5).tolist() == [[0, 0]]


# ----------------------------------------------------------------------------- contact


def test_collision():
    a = g([1, 1])
    b = g([0, 2])
    assert dsl.collision(object1=a, object2=b)
    assert not dsl.collision(object1=a, object2=b, x2=1)
    assert dsl.collision(object1=a, object2=b, x1=1, x2=1)
    assert not dsl.collision(object1=a, object2=b, y2=1)  # b's pixel lands at y=2
    assert dsl.collision(object1=a, object2=b, y2=-1)
    # the offset is truncated: int(0.9 - 1.5) == 0 (rounding would give -1, no collision)
    assert dsl.collision(object1=a, object2=b, x2=0.9, x1=1.5)


def test_contact_counts_touching_and_overlap():
    a = g([1])
    b = g([2])
    assert dsl.contact(object1=a, object2=b)
    assert dsl.contact(object1=a, object2=b, x2=1)
    assert not dsl.contact(object1=a, object2=b, x2=1, y2=1)
    assert dsl.contact(object1=a, object2=b, x2=1, y2=1, connectivity=8)
    assert not dsl.contact(object1=a, object2=b, x2=2)
    with pytest.raises(ValueError):
        dsl.contact(object1=a, object2=b, connectivity=5)


def test_check_between_objects():
    grid = np.zeros((5, 7), dtype=int)
    left = grid.copy()
    left[1:4, 0:2] = 1
    right = grid.copy()
    right[0:5, 5:7] = 2
    # corridor y in 2..4, x within both boxes' x-range (1..3)
    assert dsl.check_between_objects(left, right, 2, 3)
    assert dsl.check_between_objects(right, left, 1, 2)
    assert not dsl.check_between_objects(left, right, 0, 3)  # outside the left box's rows
    assert not dsl.check_between_objects(left, right, 2, 5)  # inside the right object
    assert not dsl.check_between_objects(left, right, 1, 3, padding=1)
    assert dsl.check_between_objects(left, right, 2, 3, padding=1)


# ----------------------------------------------------------------------------- masks


RING = g(
    [0, 0, 0, 0, 0],
    [0, 2, 2, 2, 0],
    [0, 2, 0, 2, 0],
    [0, 2, 2, 2, 0],
    [0, 0, 0, 0, 0],
)


def test_object_interior_includes_enclosed_background():
    expected = np.zeros((5, 5), dtype=int)
    expected[1:4, 1:4] = 1
    assert dsl.object_interior(RING).astype(int).tolist() == expected.tolist()


def test_object_boundary_excludes_the_hole_but_keeps_canvas_edges():
    assert dsl.object_boundary(RING).astype(int).tolist() == (RING == 2).astype(int).tolist()
    block = np.full((3, 3), 4)
    boundary = dsl.object_boundary(block)
    assert boundary.sum() == 8 and not boundary[1, 1]


def test_object_neighbors():
    dot = np.zeros((3, 3), dtype=int)
    dot[1, 1] = 6
    four = dsl.object_neighbors(dot)
    eight = dsl.object_neighbors(dot, connectivity=8)
    assert four.astype(int).tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert eight.astype(int).tolist() == [[1, 1, 1], [1, 0, 1], [1, 1, 1]]
    # the dilation does not tell inside from outside: a hole next to the boundary counts
    ring = dsl.object_neighbors(RING)
    assert ring[2, 2] and ring[0, 2] and not ring[0, 0] and not ring[1, 1]


# ----------------------------------------------------------------------------- detect_objects


def test_detect_objects_needs_a_connectivity_or_dimensions():
    # Reference quirk: connectivity=None finds no components at all.
    assert dsl.detect_objects(g([1, 0, 2])) == []


def test_detect_objects_components_are_sorted_by_size_then_filtered():
    grid = np.zeros((4, 5), dtype=int)
    grid[3, 4] = 1
    grid[0:2, 0:2] = 2
    found = dsl.detect_objects(grid, connectivity=4, monochromatic=True)
    assert [int(o.max()) for o in found] == [2, 1]
    small = dsl.detect_objects(grid, connectivity=4, predicate=lambda s: s.shape == (1, 1))
    assert [int(o.max()) for o in small] == [1]
    blue = dsl.detect_objects(grid, connectivity=4, colors=[Color.BLUE])
    assert [int(o.max()) for o in blue] == [1]


def test_detect_objects_scans_windows_of_allowed_dimensions():
    found = dsl.detect_objects(g([1, 1, 0]), allowed_dimensions=[(1, 1)])
    assert [o.tolist() for o in found] == [[[1, 0, 0]], [[0, 1, 0]]]


def test_detect_objects_keeps_the_best_non_overlapping_cover():
    found = dsl.detect_objects(g([1, 1]), allowed_dimensions=[(1, 2), (1, 1)])
    assert [o.tolist() for o in found] == [[[1, 1]]]
    both = dsl.detect_objects(g([1, 1]), allowed_dimensions=[(1, 2), (1, 1)], can_overlap=True)
    assert len(both) == 3


def recursive_fill(grid, x, y, color, old, connectivity):
    """The reference's recursion, as documented: raw coordinates, bounds checked before each step."""
    if grid[x, y] != old or grid[x, y] == color:
        return
    grid[x, y] = color
    n, m = grid.shape
    steps = [(-1, 0, x > 0), (1, 0, x < n - 1), (0, -1, y > 0), (0, 1, y < m - 1)]
    if connectivity == 8:
        steps += [
            (-1, -1, x > 0 and y > 0),
            (-1, 1, x > 0 and y < m - 1),
            (1, -1, x < n - 1 and y > 0),
            (1, 1, x < n - 1 and y < m - 1),
        ]
    for dx, dy, allowed in steps:
        if allowed:
            recursive_fill(grid, x + dx, y + dy, color, old, connectivity)


def test_flood_fill_equals_the_recursive_definition_from_any_start():
    rng = np.random.default_rng(3)
    for _ in range(200):
        grid = rng.integers(0, 3, size=rng.integers(1, 6, size=2))
        n, m = grid.shape
        x, y = int(rng.integers(-n, n)), int(rng.integers(-m, m))
        connectivity = int(rng.choice([4, 8]))
        expected = grid.copy()
        recursive_fill(expected, x, y, 7, expected[x, y], connectivity)
        dsl.flood_fill(grid, x, y, 7, connectivity=connectivity)
        assert grid.tolist() == expected.tolist(), (x, y, connectivity)


def sequential_blit(grid, sprite, x, y, background):
    """The reference's blit, as documented: pixel by pixel in row-major order, in place."""
    for i in range(sprite.shape[0]):
        for j in range(sprite.shape[1]):
            inside = 0 <= x + i < grid.shape[0] and 0 <= y + j < grid.shape[1]
            if (background is None or sprite[i, j] != background) and inside:
                grid[x + i, y + j] = sprite[i, j]


def test_blit_equals_the_sequential_definition_for_copies_and_views():
    rng = np.random.default_rng(4)
    views = [np.flipud, np.fliplr, np.rot90, np.transpose, lambda a: a[1:, ::2], np.copy]
    for _ in range(200):
        grid = rng.integers(0, 3, size=rng.integers(1, 6, size=2))
        x, y = (int(v) for v in rng.integers(-3, 4, size=2))
        background = [None, 0, 2][rng.integers(0, 3)]
        view = views[rng.integers(0, len(views))]
        expected = grid.copy()
        sequential_blit(expected, view(expected), x, y, background)
        dsl.blit(grid, view(grid), x, y, background=background)
        assert grid.tolist() == expected.tolist()
