from common import *
import numpy as np
from typing import *

# concepts:
# counting, object detection
# description:
# In the input you will see red 2x2 squares. Count them, and output a 3x3 grid with that many
# blue pixels placed on a checkerboard, in reading order: corner, corner, center, corner, corner.

def transform(input_grid):
    squares = detect_objects(
        input_grid,
        colors=[Color.RED],
        allowed_dimensions=[(2, 2)],
        predicate=lambda sprite: np.all(sprite == Color.RED),
        can_overlap=False,
    )
    slots = [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)]
    output_grid = np.zeros((3, 3), dtype=int)
    for x, y in slots[: len(squares)]:
        output_grid[x, y] = Color.BLUE
    return output_grid
