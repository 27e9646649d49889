from common import *
import numpy as np
from typing import *

# concepts:
# cropping
# description:
# In the input you will see a single colored object on a black background.
# Crop the grid to the object.

def transform(input_grid):
    return crop(input_grid, background=Color.BLACK)
