from common import *
import numpy as np
from typing import *

# concepts:
# object size, recoloring
# description:
# In the input you will see green objects. Objects made of more than one pixel become teal;
# single pixels stay green.

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in detect_objects(input_grid, colors=[Color.GREEN], connectivity=4, monochromatic=True):
        if np.sum(obj != Color.BLACK) > 1:
            output_grid[obj != Color.BLACK] = Color.TEAL
    return output_grid
