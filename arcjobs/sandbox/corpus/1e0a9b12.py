from common import *
import numpy as np
from typing import *

# concepts:
# gravity, falling
# description:
# In the input you will see colored pixels scattered on black.
# Every pixel falls straight down as far as it can, stacking on top of the pixels below it.

def transform(input_grid):
    n, m = input_grid.shape
    output_grid = np.full((n, m), Color.BLACK)
    # the first axis goes down the rows, so falling increases x; work column by column
    for y in range(m):
        column = [c for c in input_grid[:, y] if c != Color.BLACK]
        for i, color in enumerate(reversed(column)):
            output_grid[n - 1 - i, y] = color
    return output_grid
