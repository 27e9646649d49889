from common import *
import numpy as np
from typing import *

# concepts:
# color change
# description:
# Every orange pixel becomes gray; everything else stays the same.

def transform(input_grid):
    output_grid = input_grid.copy()
    output_grid[output_grid == Color.ORANGE] = Color.GRAY
    return output_grid
