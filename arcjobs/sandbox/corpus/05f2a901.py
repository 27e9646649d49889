from common import *
import numpy as np
from typing import *

# concepts:
# sliding objects, contact
# description:
# In the input you will see a red shape and a 2x2 teal square.
# Slide the red shape straight towards the teal square until it touches it.

def transform(input_grid):
    red = np.where(input_grid == Color.RED, Color.RED, Color.BLACK)
    teal = np.where(input_grid == Color.TEAL, Color.TEAL, Color.BLACK)

    red_x, red_y, red_w, red_h = bounding_box(red)
    teal_x, teal_y, teal_w, teal_h = bounding_box(teal)

    # pick the direction that moves the red shape towards the teal one
    dx, dy = 0, 0
    if red_x + red_w <= teal_x:
        dx = 1
    elif teal_x + teal_w <= red_x:
        dx = -1
    elif red_y + red_h <= teal_y:
        dy = 1
    else:
        dy = -1

    # keep moving one step at a time until the shapes touch
    steps = 0
    while not contact(object1=red, object2=teal, x1=steps * dx, y1=steps * dy):
        steps += 1

    output_grid = teal.copy()
    blit_object(output_grid, translate(red, steps * dx, steps * dy), background=Color.BLACK)
    return output_grid
