from common import *
import numpy as np
from typing import *

# concepts:
# counting shapes, majority
# description:
# In the input you will see several small shapes of different colors and forms.
# Output the shape (with its color) that occurs most often.

def transform(input_grid):
    objects = detect_objects(input_grid, background=Color.BLACK, connectivity=8, monochromatic=True)
    sprites = [crop(obj, background=Color.BLACK) for obj in objects]

    def count(sprite):
        return sum(1 for other in sprites if other.shape == sprite.shape and np.all(other == sprite))

    return max(sprites, key=count)
