from common import *
import numpy as np
from typing import *

# concepts:
# pairs, filling gaps
# description:
# In the input you will see blue pixels. Whenever two blue pixels in the same row have exactly
# one black pixel between them, color that gap red.

def transform(input_grid):
    output_grid = input_grid.copy()
    n, m = input_grid.shape
    for x in range(n):
        for y in range(m - 2):
            if input_grid[x, y] == Color.BLUE and input_grid[x, y + 2] == Color.BLUE and input_grid[x, y + 1] == Color.BLACK:
                output_grid[x, y + 1] = Color.RED
    return output_grid
