from common import *
import numpy as np
from typing import *

# concepts:
# reflection, stacking
# description:
# Output a grid twice as tall: the input flipped upside down on top, the input itself below.

def transform(input_grid):
    n, m = input_grid.shape
    output_grid = np.zeros((2 * n, m), dtype=int)
    blit(output_grid, np.flipud(input_grid), x=0, y=0)
    blit(output_grid, input_grid, x=n, y=0)
    return output_grid
