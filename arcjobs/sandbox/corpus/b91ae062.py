from common import *
import numpy as np
from typing import *

# concepts:
# counting colors, scaling
# description:
# In the input you will see a 3x3 pattern. Scale it up by the number of distinct colors it
# uses (black does not count).

def transform(input_grid):
    factor = len(object_colors(input_grid, background=Color.BLACK))
    return scale_sprite(input_grid, factor=factor)
