"""ARC grids: strict parsing of JSON grids and exact comparison.

A grid is a 2-D array of colours 0–9 with both sides between 1 and 30. Comparison is exact
on purpose: a metric that broadcast a 1×1 prediction against a uniform expected grid, or
truncated 1.5 to 1, would count wrong answers as right.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

MAX_SIDE = 30
NUM_COLORS = 10
_INT = {int}


class GridError(ValueError):
    """A value that is not a valid ARC grid; the message says what is wrong, without location."""


def parse_grid(value: Any) -> np.ndarray:
    """A JSON grid (list of lists of ints) as an int array, or GridError saying what is wrong.

    Booleans and floats are refused, even integral ones: task files hold ints, and anything
    else means the file is not what it claims to be.
    """
    if not isinstance(value, list) or not value:
        raise GridError("not a non-empty list of rows")
    if len(value) > MAX_SIDE:
        raise GridError(f"{len(value)} rows (at most {MAX_SIDE})")
    width = None
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise GridError(f"row {r} is not a non-empty list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise GridError(f"not rectangular: row {r} has {len(row)} cells, row 0 has {width}")
        # C-level checks first (this runs on every output of every program); locate on failure
        if not set(map(type, row)) <= _INT or min(row) < 0 or max(row) >= NUM_COLORS:
            c, cell = next(
                (c, v) for c, v in enumerate(row) if type(v) is not int or not 0 <= v < NUM_COLORS
            )
            raise GridError(f"cell [{r}][{c}] is {cell!r}, not an int 0-9")
    if width > MAX_SIDE:
        raise GridError(f"{width} columns (at most {MAX_SIDE})")
    return np.array(value, dtype=np.int64)


def grids_equal(a: Any, b: Any) -> bool:
    """True when `a` and `b` have the same 2-D shape and the same values, cell by cell.

    No broadcasting (a 1×1 grid never equals a 3×3 one), no casting that truncates (1.5 is
    not 1; 1.0 equals 1 because it is the same number), and anything that is not a numeric
    2-D array (ragged lists, strings, None) equals nothing.
    """
    try:
        x, y = np.asarray(a), np.asarray(b)
    except ValueError:  # ragged nested lists
        return False
    if x.ndim != 2 or x.shape != y.shape:
        return False
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
        return False
    return bool(np.array_equal(x, y))


def grid_to_list(grid: np.ndarray) -> list[list[int]]:
    """A grid as JSON-ready nested lists of Python ints."""
    return [[int(v) for v in row] for row in np.asarray(grid)]


def is_grid(value: Any) -> bool:
    """True when `value` (a JSON value) is a valid ARC grid: ints 0-9, rectangular, sides 1-30."""
    try:
        parse_grid(value)
    except GridError:
        return False
    return True


def outputs_fingerprint(train_outputs: list[Any], test_outputs: list[Any]) -> str:
    """A short hash identifying a program's behaviour by its outputs on every input.

    Two programs with the same fingerprint are interchangeable for scoring and relabelling,
    whatever their text, so duplicates are detected by behaviour, not by source. Outputs
    are valid grids (nested lists or arrays) or None. The hash is over their bytes — sides,
    then cells — not their JSON, because the sandbox takes it for every program it runs and
    has them as bytes already (a JSON text of the same grids costs ten times as much).
    """
    digest = hashlib.sha256()
    for part in (train_outputs, test_outputs):
        digest.update(b"|")
        for grid in part:
            if grid is None:
                digest.update(b"-")
            else:
                cells = np.asarray(grid, dtype=np.uint8)
                digest.update(bytes(cells.shape) + cells.tobytes())
    return digest.hexdigest()[:16]
