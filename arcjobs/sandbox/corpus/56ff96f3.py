from common import *
import numpy as np
from typing import *

# concepts:
# rectangles from corners, bounding boxes
# description:
# In the input you will see pairs of pixels of the same color. Each pair marks two opposite
# corners of a rectangle: draw that filled rectangle in the pair's color.

def transform(input_grid):
    output_grid = np.zeros_like(input_grid)
    for color in object_colors(input_grid, background=Color.BLACK):
        pair = np.where(input_grid == color, color, Color.BLACK)
        output_grid[bounding_box_mask(pair, background=Color.BLACK)] = color
    return output_grid
