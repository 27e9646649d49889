from common import *
import numpy as np
from typing import *

# concepts:
# translational symmetry, pattern extension
# description:
# In the input you will see horizontal bands of a repeating pattern on black.
# Make the grid twice as wide and continue the pattern into the new part.

def transform(input_grid):
    # the pattern repeats along the second axis; ignore any repetition along the first axis
    symmetries = [
        symmetry
        for symmetry in detect_translational_symmetry(input_grid, ignore_colors=[Color.BLACK])
        if symmetry.translate_x == 0
    ]
    n, m = input_grid.shape
    output_grid = np.zeros((n, 2 * m), dtype=int)
    for x, y in np.argwhere(input_grid != Color.BLACK):
        for sx, sy in orbit(output_grid, x, y, symmetries):
            output_grid[sx, sy] = input_grid[x, y]
    return output_grid
