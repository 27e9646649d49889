from common import *
import numpy as np
from typing import *

# concepts:
# lines, intersections
# description:
# In the input you will see two pixels of different colors. Draw a full horizontal and a full
# vertical line through each pixel in its color. Where a line of one color crosses a line of
# the other color, put a red pixel.

def transform(input_grid):
    output_grid = input_grid.copy()
    pixels = [(x, y, input_grid[x, y]) for x, y in np.argwhere(input_grid != Color.BLACK)]
    for x, y, color in pixels:
        for direction in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
            draw_line(output_grid, x, y, direction=direction, color=color)
    (x1, y1, _), (x2, y2, _) = pixels
    output_grid[x1, y2] = Color.RED
    output_grid[x2, y1] = Color.RED
    return output_grid
