from common import *
import numpy as np
from typing import *

# concepts:
# sliding until collision
# description:
# In the input you will see a blue shape at the top with gaps in its underside, and vertical
# red bars below it (bars in neighboring columns may touch). Slide the bar of every column up
# (towards the first row) as far as it can go without overlapping the blue shape or leaving
# the grid.

def transform(input_grid):
    blue = np.where(input_grid == Color.BLUE, Color.BLUE, Color.BLACK)
    output_grid = blue.copy()
    for y in np.unique(np.argwhere(input_grid == Color.RED)[:, 1]):
        red_bar = np.zeros_like(input_grid)
        red_bar[:, y] = np.where(input_grid[:, y] == Color.RED, Color.RED, Color.BLACK)
        top = bounding_box(red_bar)[0]
        shift = 0
        while shift < top and not collision(object1=blue, object2=red_bar, x2=-(shift + 1)):
            shift += 1
        blit_object(output_grid, translate(red_bar, -shift, 0), background=Color.BLACK)
    return output_grid
