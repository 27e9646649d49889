from common import *
import numpy as np
from typing import *

# concepts:
# cropping, repetition
# description:
# In the input you will see a single shape. Crop it out and output two copies of it side by
# side.

def transform(input_grid):
    sprite = crop(input_grid, background=Color.BLACK)
    width, height = sprite.shape
    output_grid = np.full((width, 2 * height), Color.BLACK)
    blit_sprite(output_grid, sprite, x=0, y=0)
    blit_sprite(output_grid, sprite, x=0, y=height)
    return output_grid
