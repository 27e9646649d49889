from common import *
import numpy as np
from typing import *

# concepts:
# surrounding, color mapping
# description:
# In the input you will see single pixels. Surround each with a square ring (all 8 neighbors)
# whose color depends on the pixel: green gets pink, teal gets yellow, red gets blue.

def transform(input_grid):
    ring_colors = {Color.GREEN: Color.PINK, Color.TEAL: Color.YELLOW, Color.RED: Color.BLUE}
    output_grid = input_grid.copy()
    for obj in find_connected_components(input_grid, background=Color.BLACK):
        (color,) = object_colors(obj, background=Color.BLACK)
        ring = object_neighbors(obj, background=Color.BLACK, connectivity=8)
        output_grid[ring] = ring_colors[color]
    return output_grid
