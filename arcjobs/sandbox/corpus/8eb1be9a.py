from common import *
import numpy as np
from typing import *

# concepts:
# repetition, translational symmetry
# description:
# In the input you will see one horizontal band of pattern across a black grid.
# Repeat the band over the whole grid, stacking copies directly above and below it.

def transform(input_grid):
    # the band repeats along the first axis with a period equal to its own thickness
    band_x, band_y, thickness, length = bounding_box(input_grid, background=Color.BLACK)
    symmetry = TranslationalSymmetry(translate_x=thickness, translate_y=0)

    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid != Color.BLACK):
        for sx, sy in orbit(output_grid, x, y, [symmetry]):
            output_grid[sx, sy] = input_grid[x, y]
    return output_grid
