from common import *
import numpy as np
from typing import *

# concepts:
# lines, matching pairs
# description:
# In the input you will see pairs of pixels at the two ends of some rows. When both ends of a
# row have the same color, connect them with a line of that color.

def transform(input_grid):
    output_grid = input_grid.copy()
    last = input_grid.shape[1] - 1
    for x in range(input_grid.shape[0]):
        left, right = input_grid[x, 0], input_grid[x, last]
        if left != Color.BLACK and left == right:
            draw_line(output_grid, x, 0, end_x=x, end_y=last, color=left)
    return output_grid
