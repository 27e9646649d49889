from common import *
import numpy as np
from typing import *

# concepts:
# mirror symmetry, reflection
# description:
# In the input you will see a pattern in the bottom half of the grid and an empty top half.
# Reflect the bottom half into the top half, so the grid becomes symmetric top-to-bottom.

def transform(input_grid):
    output_grid = input_grid.copy()
    # blit the upside-down grid onto itself; black is transparent, so the bottom stays
    blit_object(output_grid, np.flipud(output_grid), background=Color.BLACK)
    return output_grid
