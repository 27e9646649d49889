from common import *
import numpy as np
from typing import *

# concepts:
# cropping, scaling
# description:
# In the input you will see a single yellow shape. Crop it out and scale it up by two.

def transform(input_grid):
    sprite = crop(input_grid, background=Color.BLACK)
    return scale_sprite(sprite, factor=2)
