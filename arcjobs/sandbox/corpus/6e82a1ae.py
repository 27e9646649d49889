from common import *
import numpy as np
from typing import *

# concepts:
# counting, recoloring by size
# description:
# In the input you will see gray objects of different sizes.
# Recolor each by its number of pixels: 4 pixels -> blue, 3 pixels -> red, 2 pixels -> green.

def transform(input_grid):
    output_grid = np.zeros_like(input_grid)
    size_to_color = {4: Color.BLUE, 3: Color.RED, 2: Color.GREEN}
    for obj in find_connected_components(input_grid, background=Color.BLACK, connectivity=4):
        size = np.sum(obj != Color.BLACK)
        output_grid[obj != Color.BLACK] = size_to_color[size]
    return output_grid
