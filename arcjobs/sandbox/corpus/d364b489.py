from common import *
import numpy as np
from typing import *

# concepts:
# stamping a pattern around pixels
# description:
# In the input you will see blue pixels on black. Around each blue pixel stamp a fixed
# pattern: red before it along the first axis, teal after it, orange before it along the
# second axis and pink after it. Parts of the pattern falling off the grid are dropped.

def transform(input_grid):
    stamp = np.array([[Color.BLACK, Color.RED, Color.BLACK],
                      [Color.ORANGE, Color.BLUE, Color.PINK],
                      [Color.BLACK, Color.TEAL, Color.BLACK]])
    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid == Color.BLUE):
        blit_sprite(output_grid, stamp, x=x - 1, y=y - 1, background=Color.BLACK)
    return output_grid
