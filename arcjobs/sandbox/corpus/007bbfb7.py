from common import *
import numpy as np
from typing import *

# concepts:
# fractal, scaling, self-similarity
# description:
# In the input you will see a 3x3 pattern of one color on black.
# The output is 9x9: each cell of the input becomes a 3x3 block, which holds a copy of the
# whole pattern if that cell is colored, and is black otherwise.

def transform(input_grid):
    n, m = input_grid.shape
    output_grid = np.zeros((n * n, m * m), dtype=int)
    for x, y in np.argwhere(input_grid != Color.BLACK):
        blit_sprite(output_grid, input_grid, x=x * n, y=y * m, background=Color.BLACK)
    return output_grid
