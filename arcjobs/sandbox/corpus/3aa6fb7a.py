from common import *
import numpy as np
from typing import *

# concepts:
# completing shapes, bounding boxes
# description:
# In the input you will see teal L-shapes, each made of three pixels of a 2x2 square.
# Fill the missing corner of each square with blue.

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
        missing = bounding_box_mask(obj, background=Color.BLACK) & (obj == Color.BLACK)
        output_grid[missing] = Color.BLUE
    return output_grid
