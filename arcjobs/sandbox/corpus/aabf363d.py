from common import *
import numpy as np
from typing import *

# concepts:
# recoloring, color key
# description:
# In the input you will see a shape and a single pixel in the corner.
# Recolor the shape with the color of the corner pixel, and remove the corner pixel.

def transform(input_grid):
    objects = find_connected_components(input_grid, background=Color.BLACK, connectivity=8)
    key = min(objects, key=lambda obj: np.sum(obj != Color.BLACK))
    shape = max(objects, key=lambda obj: np.sum(obj != Color.BLACK))
    (new_color,) = object_colors(key, background=Color.BLACK)

    output_grid = np.zeros_like(input_grid)
    output_grid[shape != Color.BLACK] = new_color
    return output_grid
