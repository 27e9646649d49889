from common import *
import numpy as np
from typing import *

# concepts:
# bridges, space between objects
# description:
# In the input you will see two solid rectangles facing each other.
# Build a teal bridge in the gap between them, one pixel narrower on each side than the
# part where the two rectangles face each other.

def transform(input_grid):
    first, second = find_connected_components(input_grid, background=Color.BLACK, connectivity=4)
    output_grid = input_grid.copy()
    n, m = input_grid.shape
    for x in range(n):
        for y in range(m):
            if check_between_objects(first, second, x, y, padding=1, background=Color.BLACK):
                output_grid[x, y] = Color.TEAL
    return output_grid
