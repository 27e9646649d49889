from common import *
import numpy as np
from typing import *

# concepts:
# repetition, copying
# description:
# The output is the input placed twice, side by side (the second copy to the right).

def transform(input_grid):
    n, m = input_grid.shape
    output_grid = np.zeros((n, 2 * m), dtype=int)
    blit(output_grid, input_grid, 0, 0)
    blit(output_grid, input_grid, 0, m)
    return output_grid
