from common import *
import numpy as np
from typing import *

# concepts:
# symmetry, occlusion, pattern completion
# description:
# In the input you will see a mosaic that is symmetric under mirroring along both axes and
# along its diagonal, partly covered by maroon rectangles (and shifted so that its center is
# not the center of the grid). Remove the occluders by copying each covered pixel from one
# of its symmetric images that is not covered.

def transform(input_grid):
    occluder = Color.MAROON

    # find one mirror axis; the mosaic's center lies on it, and both axes pass through the center
    best = detect_mirror_symmetry(input_grid, ignore_colors=[occluder])[0]
    center = best.mirror_x if best.mirror_x is not None else best.mirror_y
    mirrors = [MirrorSymmetry(center, None), MirrorSymmetry(None, center)]

    output_grid = input_grid.copy()
    for x, y in np.argwhere(input_grid == occluder):
        images = orbit(input_grid, x, y, mirrors)
        # the diagonal symmetry swaps the two coordinates
        images += [(b, a) for a, b in images]
        for sx, sy in images:
            if input_grid[sx, sy] != occluder:
                output_grid[x, y] = input_grid[sx, sy]
                break
    return output_grid
