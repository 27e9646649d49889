"""Grids as they cross a process boundary: shapes in a frame's JSON, cells in its blob.

A batch of grids (a task's inputs, a program's outputs) travels as a list of shapes —
`[rows, cols]`, or null for an input that gave no output — and one bytes blob holding every
cell, one byte each, row-major, grid after grid. Packing is a `tobytes`, unpacking a slice
and a reshape: no Python work per cell anywhere between the program and the executor, and
nothing but data on the wire (never pickle).

`Packed.valid` is the check the worker makes on what a child sends: shapes that add up to
the blob, both sides 1-30, every byte 0-9. A forged frame can at worst describe grids.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy

from arcjobs.sandbox.outputs import MAX_SIDE

# private references, like `outputs`: children unpack inputs before the program runs, but
# the worker and executor should not depend on that either
__builtins__ = dict(vars(builtins))
_frombuffer, _uint8, _int64, _asarray = numpy.frombuffer, numpy.uint8, numpy.int64, numpy.asarray

DIGITS = bytes(range(10))  # `blob.translate(None, DIGITS)` leaves what is not a colour


@dataclass(frozen=True)
class Packed:
    """Grids (or gaps) as shapes plus one blob of uint8 cells."""

    shapes: list[Any]
    blob: bytes

    @classmethod
    def of(cls, grids: Sequence[Any]) -> Packed:
        """Pack grids (arrays or nested lists of 0-9) and Nones; ValueError for anything
        else, so nothing that is not a colour grid is ever put on the wire."""
        arrays = []
        for grid in grids:
            array = None if grid is None else _asarray(grid)
            if array is not None:
                if array.ndim != 2 or not all(1 <= side <= MAX_SIDE for side in array.shape):
                    raise ValueError(f"not a grid: shape {array.shape}")
                if array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 9:
                    raise ValueError("not a grid: cells must be integers 0-9")
                array = array.astype(_uint8)
            arrays.append(array)
        return cls.of_checked(arrays)

    @classmethod
    def of_checked(cls, grids: Sequence[Any]) -> Packed:
        """Pack what `outputs.to_grid` returned (uint8 grids, already checked) and Nones,
        without checking them again: the child packs every output this way, and the worker
        checks the packed form anyway (`valid`)."""
        shapes = [None if g is None else list(g.shape) for g in grids]
        return cls(shapes, b"".join(g.tobytes() for g in grids if g is not None))

    def __len__(self) -> int:
        return len(self.shapes)

    def views(self) -> list[Any]:
        """Each grid as a read-only uint8 array over the blob, no copy (None where none)."""
        out, offset = [], 0
        for shape in self.shapes:
            if shape is None:
                out.append(None)
                continue
            rows, cols = shape
            out.append(_frombuffer(self.blob, _uint8, rows * cols, offset).reshape(rows, cols))
            offset += rows * cols
        return out

    def arrays(self, dtype: Any = _int64) -> list[Any]:
        """Each grid as a fresh, writable array of `dtype` (None where there is none)."""
        return [None if v is None else v.astype(dtype) for v in self.views()]

    def valid(self, n: int) -> bool:
        """Whether these are `n` well-formed entries: decoded from an untrusted frame, the
        shapes may be any JSON at all."""
        if type(self.shapes) is not list or len(self.shapes) != n or type(self.blob) is not bytes:
            return False
        cells = 0
        for shape in self.shapes:
            if shape is None:
                continue
            if type(shape) is not list or len(shape) != 2:
                return False
            for side in shape:
                if type(side) is not int or not 1 <= side <= MAX_SIDE:
                    return False
            cells += shape[0] * shape[1]
        return cells == len(self.blob) and not self.blob.translate(None, DIGITS)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form, for the result cache."""
        return {"shapes": self.shapes, "cells": base64.b64encode(self.blob).decode("ascii")}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Packed:
        return cls(value["shapes"], base64.b64decode(value["cells"]))
