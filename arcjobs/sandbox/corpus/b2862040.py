from common import *
import numpy as np
from typing import *

# concepts:
# closed loops, topology, background color
# description:
# In the input you will see blue shapes on a maroon background. The shapes that contain a
# closed loop (enclosing some background) turn teal; the others stay blue.

def transform(input_grid):
    background = Color.MAROON
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=background, connectivity=4):
        shape = obj != background
        if np.any(object_interior(obj, background=background) & ~shape):
            output_grid[shape] = Color.TEAL
    return output_grid
