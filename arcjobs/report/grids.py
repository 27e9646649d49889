"""ARC grids as PNG images in the ARC colour palette.

Drawn pixel by pixel into an array and encoded by matplotlib's PNG writer, without a
figure: a report shows dozens of grids, and a figure per grid would cost ~50× more time
for the same picture. Cells get a thin grey border so equal neighbouring colours stay
countable, as in the ARC viewer.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

# The palette of the ARC testing interface, colours 0–9.
PALETTE = np.array(
    [
        (0x00, 0x00, 0x00),  # 0 black
        (0x00, 0x74, 0xD9),  # 1 blue
        (0xFF, 0x41, 0x36),  # 2 red
        (0x2E, 0xCC, 0x40),  # 3 green
        (0xFF, 0xDC, 0x00),  # 4 yellow
        (0xAA, 0xAA, 0xAA),  # 5 grey
        (0xF0, 0x12, 0xBE),  # 6 magenta
        (0xFF, 0x85, 0x1B),  # 7 orange
        (0x7F, 0xDB, 0xFF),  # 8 sky
        (0x87, 0x0C, 0x25),  # 9 maroon
    ],
    dtype=np.uint8,
)
BORDER = np.array((0x55, 0x55, 0x55), dtype=np.uint8)


def as_grid(value: Any) -> np.ndarray | None:
    """`value` as a 2-D array of colours 0–9, or None when it is not a drawable grid."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists
        return None
    if arr.ndim != 2 or arr.size == 0 or arr.dtype.kind not in "iu":
        return None
    if arr.min() < 0 or arr.max() > 9:
        return None
    return arr


def cell_size(height: int, width: int) -> int:
    """Pixels per cell: small grids readable, 30×30 grids under 200 px, so a task's pairs
    fit side by side on one screen."""
    return max(5, min(16, 160 // max(height, width)))


def grid_png(grid: np.ndarray) -> bytes:
    """The grid as PNG bytes (cells in the ARC palette, 1-pixel borders)."""
    from matplotlib import image

    h, w = grid.shape
    c = cell_size(h, w)
    rgb = np.empty((h * (c + 1) + 1, w * (c + 1) + 1, 3), dtype=np.uint8)
    rgb[:] = BORDER
    cells = np.repeat(np.repeat(PALETTE[grid], c, axis=0), c, axis=1)
    # place each c×c block at its offset, leaving a border line between blocks
    rows = (np.arange(h * c) // c) * (c + 1) + np.arange(h * c) % c + 1
    cols = (np.arange(w * c) // c) * (c + 1) + np.arange(w * c) % c + 1
    rgb[np.ix_(rows, cols)] = cells
    buf = io.BytesIO()
    image.imsave(buf, rgb, format="png")
    return buf.getvalue()
