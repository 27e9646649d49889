from common import *
import numpy as np
from typing import *

# concepts:
# surrounding, neighbors
# description:
# In the input you will see gray pixels on black.
# Surround each gray pixel with a ring of blue pixels (all 8 neighbors).

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=8):
        ring = object_neighbors(obj, background=Color.BLACK, connectivity=8)
        output_grid[ring] = Color.BLUE
    return output_grid
