"""What counts as an ARC output grid, checked where the program runs.

`to_grid` runs in the program's process, under its time limit, on whatever `transform`
returned: a 2-D grid, both sides 1–30, every cell an integer 0–9, as a plain uint8 array
(packed for the wire by `arcjobs.sandbox.grids`, whose packed form the worker checks
again). Refused, as `invalid_output`: booleans (a mask is not a colour
grid), floats with a fractional part, NaN and infinities, object arrays, ragged rows,
strings, generators, callables, objects pretending to be numbers (`__eq__` always true,
`__index__` tricks) and anything else that is not an int, a numpy integer, a list, a tuple
or a numeric ndarray.

Integral floats (3.0) are accepted as the integer they equal: numpy arithmetic such as
`np.full(shape, 3.0)` or `grid * 1.0` yields them in ordinary model code, the value is
unambiguous, and BARC's own harness converts with `np.array(..., dtype=int)`. ndarray
subclasses are read as plain arrays, so no method of the subclass runs on the way out.
"""

from __future__ import annotations

import builtins
from types import SimpleNamespace
from typing import Any

import numpy

# Private copies taken when the worker imports this module, before any program runs: a
# program that monkeypatches builtins or numpy changes neither how its output is validated
# nor how it is reported (functions resolve builtins through their module's `__builtins__`).
__builtins__ = dict(vars(builtins))
np = SimpleNamespace(
    **{
        name: getattr(numpy, name)
        for name in (
            "ndarray",
            "array",
            "isfinite",
            "round",
            "uint8",
            "bool_",
            "integer",
            "floating",
        )
    }
)

MAX_SIDE = 30


class InvalidOutput(ValueError):
    """The program's return value is not an ARC grid; the message says why."""


def to_grid(value: Any) -> Any:
    """The program's return value as a plain 2-D uint8 array, or InvalidOutput."""
    if isinstance(value, np.ndarray):
        shape = np.ndarray.shape.__get__(value)  # the real shape, whatever a subclass claims
        if len(shape) == 2 and not all(1 <= side <= MAX_SIDE for side in shape):
            raise InvalidOutput(f"output is {shape[0]}x{shape[1]}; sides must be 1-{MAX_SIDE}")
        array = np.array(value, copy=True, subok=False)  # plain ndarray: no subclass code
    elif type(value) in (list, tuple):
        array = _array_from_rows(value)
    else:
        raise InvalidOutput(f"returned {type(value).__name__}, not a grid")
    if array.ndim != 2:
        raise InvalidOutput(f"output has {array.ndim} dimensions, not 2")
    rows, cols = array.shape
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise InvalidOutput(f"output is {rows}x{cols}; sides must be 1-{MAX_SIDE}")
    kind = array.dtype.kind
    if kind == "b":
        raise InvalidOutput("output is boolean, not colours")
    if kind == "f":
        if not np.isfinite(array).all() or not (array == np.round(array)).all():
            raise InvalidOutput("output has non-integral values")
    elif kind not in "iu":
        raise InvalidOutput(f"output has dtype {array.dtype}, not integers")
    if array.min() < 0 or array.max() > 9:
        raise InvalidOutput(f"output has values outside 0-9 ({array.min()}..{array.max()})")
    return array.astype(np.uint8)


def _array_from_rows(value: list | tuple) -> Any:
    """Nested lists/tuples of numbers → ndarray, refusing anything but plain numbers."""
    if not 1 <= len(value) <= MAX_SIDE:
        raise InvalidOutput(f"output has {len(value)} rows; must be 1-{MAX_SIDE}")
    rows = []
    for row in value:
        if isinstance(row, np.ndarray):
            row = np.array(row, copy=True, subok=False)
            if row.ndim != 1 or row.dtype.kind not in "iuf":
                raise InvalidOutput("a row is not a 1-D numeric array")
            row = row.tolist()
        elif type(row) not in (list, tuple):
            raise InvalidOutput(f"a row is {type(row).__name__}, not a list")
        if not 1 <= len(row) <= MAX_SIDE:
            raise InvalidOutput(f"a row has {len(row)} cells; must be 1-{MAX_SIDE}")
        for cell in row:
            if type(cell) is bool or isinstance(cell, np.bool_):
                raise InvalidOutput("output has booleans, not colours")
            if not isinstance(cell, (int, float, np.integer, np.floating)):
                raise InvalidOutput(f"a cell is {type(cell).__name__}, not a number")
        rows.append([float(c) if isinstance(c, (float, np.floating)) else int(c) for c in row])
    if len({len(r) for r in rows}) != 1:
        raise InvalidOutput("output rows have different lengths")
    return np.array(rows)
