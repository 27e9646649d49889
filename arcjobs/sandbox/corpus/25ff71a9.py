from common import *
import numpy as np
from typing import *

# concepts:
# translation
# description:
# Move everything down by one row.

def transform(input_grid):
    return translate(input_grid, x=1, y=0, background=Color.BLACK)
