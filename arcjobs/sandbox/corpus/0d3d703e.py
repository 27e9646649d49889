from common import *
import numpy as np
from typing import *

# concepts:
# color mapping
# description:
# The input is made of vertical stripes of colors. Swap each color with its partner:
# green<->yellow, blue<->gray, red<->pink, teal<->maroon.

def transform(input_grid):
    pairs = [
        (Color.GREEN, Color.YELLOW),
        (Color.BLUE, Color.GRAY),
        (Color.RED, Color.PINK),
        (Color.TEAL, Color.MAROON),
    ]
    mapping = {}
    for a, b in pairs:
        mapping[a] = b
        mapping[b] = a
    output_grid = input_grid.copy()
    for color, new_color in mapping.items():
        output_grid[input_grid == color] = new_color
    return output_grid
