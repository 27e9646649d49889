from common import *
import numpy as np
from typing import *

# concepts:
# isolated pixels
# description:
# In the input you will see red objects. Every red pixel that shares no side with another
# red pixel (touching only at corners is allowed) becomes blue.

def transform(input_grid):
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
        if np.sum(obj != Color.BLACK) == 1:
            output_grid[obj != Color.BLACK] = Color.BLUE
    return output_grid
