from common import *
import numpy as np
from typing import *

# concepts:
# scaling
# description:
# Scale the input up by a factor of two: every pixel becomes a 2x2 block.

def transform(input_grid):
    return scale_pattern(input_grid, 2)
