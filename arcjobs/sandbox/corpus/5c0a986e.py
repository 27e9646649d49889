from common import *
import numpy as np
from typing import *

# concepts:
# diagonal lines, direction by color
# description:
# In the input you will see a blue 2x2 square and a red 2x2 square.
# The blue square shoots a blue diagonal line from its upper-left corner towards the
# upper left; the red square shoots a red diagonal line from its lower-right corner towards
# the lower right.

def transform(input_grid):
    output_grid = input_grid.copy()
    rules = [(Color.BLUE, "upper left", (-1, -1)), (Color.RED, "lower right", (1, 1))]
    for color, corner, direction in rules:
        square = np.where(input_grid == color, color, Color.BLACK)
        x, y = object_position(square, background=Color.BLACK, anchor=corner)
        draw_line(output_grid, x, y, direction=direction, color=color)
    return output_grid
