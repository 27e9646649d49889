from common import *
import numpy as np
from typing import *

# concepts:
# object size, outlining
# description:
# In the input you will see red objects of one or two pixels.
# Surround every two-pixel object with a green outline (including the diagonal neighbors);
# single pixels stay as they are.

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
        if np.sum(obj != Color.BLACK) == 2:
            outline = object_neighbors(obj, background=Color.BLACK, connectivity=8)
            output_grid[outline] = Color.GREEN
    return output_grid
