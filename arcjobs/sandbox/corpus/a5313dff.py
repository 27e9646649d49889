from common import *
import numpy as np
from typing import *

# concepts:
# flood fill, enclosed regions
# description:
# In the input you will see red outlines on black. Fill the black cells that are enclosed by
# red (not reachable from the border through black cells) with blue.

def transform(input_grid):
    n, m = input_grid.shape
    marker = Color.GREEN  # a color not used in the puzzle, marks the outside
    work = input_grid.copy()
    border = [(x, y) for x in range(n) for y in [0, m - 1]] + [(x, y) for x in [0, n - 1] for y in range(m)]
    for x, y in border:
        if work[x, y] == Color.BLACK:
            flood_fill(work, x, y, marker, connectivity=4)

    output_grid = input_grid.copy()
    output_grid[work == Color.BLACK] = Color.BLUE
    return output_grid
