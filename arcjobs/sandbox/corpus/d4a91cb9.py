from common import *
import numpy as np
from typing import *

# concepts:
# path drawing, lines
# description:
# In the input you will see one teal pixel and one red pixel.
# Draw a yellow path from the teal pixel to the red pixel: first straight along the rows
# (first axis) until level with the red pixel, then turn and go straight to the red pixel.
# The teal and red pixels keep their colors.

def transform(input_grid):
    output_grid = input_grid.copy()
    (teal_x, teal_y), = np.argwhere(input_grid == Color.TEAL)
    (red_x, red_y), = np.argwhere(input_grid == Color.RED)

    draw_line(output_grid, teal_x, teal_y, end_x=red_x, end_y=teal_y, color=Color.YELLOW)
    draw_line(output_grid, red_x, teal_y, end_x=red_x, end_y=red_y, color=Color.YELLOW)

    output_grid[teal_x, teal_y] = Color.TEAL
    output_grid[red_x, red_y] = Color.RED
    return output_grid
