from common import *
import numpy as np
from typing import *

# concepts:
# diagonal lines, rays
# description:
# In the input you will see a single colored pixel on black.
# Shoot diagonal rays of the same color from it in all four diagonal directions, to the edges.

def transform(input_grid):
    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid != Color.BLACK):
        color = input_grid[x, y]
        for direction in [(1, 1), (1, -1), (-1, 1), (-1, -1)]:
            draw_line(output_grid, x, y, direction=direction, color=color)
    return output_grid
