from common import *
import numpy as np
from typing import *

# concepts:
# topology, enclosed regions, filling
# description:
# In the input you will see green walls on a black background. Some black regions are completely
# enclosed by green walls. To make the output, fill every enclosed black region with yellow.

def transform(input_grid):
    output_grid = input_grid.copy()
    # the interior of the green "object" includes the black cells it encloses
    interior = object_interior(input_grid, background=Color.BLACK)
    enclosed = interior & (input_grid == Color.BLACK)
    output_grid[enclosed] = Color.YELLOW
    return output_grid
