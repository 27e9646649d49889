from common import *
import numpy as np
from typing import *

# concepts:
# rotation
# description:
# Rotate the input grid by 180 degrees.

def transform(input_grid):
    return np.rot90(input_grid, k=2)
