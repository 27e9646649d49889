from common import *
import numpy as np
from typing import *

# concepts:
# translational symmetry, occlusion, tiling
# description:
# In the input you will see a pattern that repeats along both axes, with some black patches
# cut out of it. Repair the patches by copying each missing pixel from the repetitions.

def transform(input_grid):
    symmetries = detect_translational_symmetry(input_grid, ignore_colors=[Color.BLACK])
    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid == Color.BLACK):
        for sx, sy in orbit(input_grid, x, y, symmetries):
            if input_grid[sx, sy] != Color.BLACK:
                output_grid[x, y] = input_grid[sx, sy]
                break
    return output_grid
