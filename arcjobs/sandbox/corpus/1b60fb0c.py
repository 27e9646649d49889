from common import *
import numpy as np
from typing import *

# concepts:
# rotational symmetry, completing a pattern
# description:
# In the input you will see a blue figure with four-fold rotational symmetry, except that one
# of its four arms is missing. Draw the missing arm in red.

def transform(input_grid):
    symmetry = detect_rotational_symmetry(input_grid, ignore_colors=[Color.BLACK])
    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid == Color.BLUE):
        for rx, ry in orbit(input_grid, x, y, [symmetry]):
            if output_grid[rx, ry] == Color.BLACK:
                output_grid[rx, ry] = Color.RED
    return output_grid
