from common import *
import numpy as np
from typing import *

# concepts:
# boundaries, interiors
# description:
# In the input you will see solid gray rectangles. Keep their outline gray and color
# everything inside the outline red.

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
        inside = (obj != Color.BLACK) & ~object_boundary(obj, background=Color.BLACK)
        output_grid[inside] = Color.RED
    return output_grid
