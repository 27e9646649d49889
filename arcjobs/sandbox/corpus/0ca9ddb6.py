from common import *
import numpy as np
from typing import *

# concepts:
# decorating pixels, diagonals, orthogonal neighbors
# description:
# In the input you will see isolated pixels of several colors.
# Each red pixel gets yellow pixels on its four diagonal neighbors.
# Each blue pixel gets orange pixels on its four orthogonal neighbors.
# Pixels of other colors are left alone.

def transform(input_grid):
    output_grid = input_grid.copy()
    decorations = {
        Color.RED: ([(-1, -1), (-1, 1), (1, -1), (1, 1)], Color.YELLOW),
        Color.BLUE: ([(-1, 0), (1, 0), (0, -1), (0, 1)], Color.ORANGE),
    }
    for x, y in np.argwhere(input_grid != Color.BLACK):
        color = input_grid[x, y]
        if color not in decorations:
            continue
        offsets, decoration = decorations[color]
        for dx, dy in offsets:
            draw_line(output_grid, x + dx, y + dy, length=1, direction=(dx, dy), color=decoration)
    return output_grid
