from common import *
import numpy as np
from typing import *

# concepts:
# mirror symmetry, occlusion
# description:
# In the input you will see a square mosaic that is mirror symmetric along both axes, with a
# black square hole in it. Output what the hole hides: the square's content, read from its
# mirror images.

def transform(input_grid):
    hole = input_grid == Color.BLACK

    # one detected axis gives the mosaic's center; both axes pass through it
    best = detect_mirror_symmetry(input_grid, ignore_colors=[Color.BLACK])[0]
    center = best.mirror_x if best.mirror_x is not None else best.mirror_y
    mirrors = [MirrorSymmetry(center, None), MirrorSymmetry(None, center)]

    filled = input_grid.copy()
    for x, y in np.argwhere(hole):
        for sx, sy in orbit(input_grid, x, y, mirrors):
            if input_grid[sx, sy] != Color.BLACK:
                filled[x, y] = input_grid[sx, sy]

    x, y, width, height = bounding_box(hole, background=False)
    return filled[x : x + width, y : y + height]
