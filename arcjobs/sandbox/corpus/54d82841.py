from common import *
import numpy as np
from typing import *

# concepts:
# object position, marking
# description:
# In the input you will see cup-shaped objects. For each one, put a yellow pixel on the last
# row of the grid, straight below the middle of the cup.

def transform(input_grid):
    output_grid = input_grid.copy()
    last_row = input_grid.shape[0] - 1
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=8):
        center_x, center_y = object_position(obj, background=Color.BLACK, anchor="center")
        output_grid[last_row, center_y] = Color.YELLOW
    return output_grid
