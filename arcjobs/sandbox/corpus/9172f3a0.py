from common import *
import numpy as np
from typing import *

# concepts:
# scaling
# description:
# Scale the input grid up by a factor of three: each pixel becomes a 3x3 block.

def transform(input_grid):
    return scale_sprite(input_grid, factor=3)
