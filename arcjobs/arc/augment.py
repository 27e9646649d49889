"""Task augmentation: one of the 8 dihedral transforms followed by a colour permutation.

An `Augmentation` is plain data (`to_dict` / `from_dict`), so it travels in predictions and
executions JSONL and a program's outputs on an augmented task can be mapped back to the
original task frame with `invert`. The geometric part acts on any grid shape, so outputs
whose shape differs from the input's invert exactly too.

Dihedral index d: transpose first when d >= 4, then rotate d % 4 quarter turns
counter-clockwise (`np.rot90`). Colours: `colors[c]` is the new colour of colour c; black
(0) is kept fixed by default because ARC uses it as background far more than any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from arcjobs.arc.tasks import Task

IDENTITY_COLORS = tuple(range(10))


@dataclass(frozen=True)
class Augmentation:
    dihedral: int = 0
    colors: tuple[int, ...] = IDENTITY_COLORS

    def __post_init__(self) -> None:
        d = self.dihedral
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d < 8:
            raise ValueError(f"augmentation dihedral must be an int 0-7, got {d!r}")
        object.__setattr__(self, "dihedral", int(d))
        colors = tuple(int(c) for c in self.colors)
        if sorted(colors) != list(IDENTITY_COLORS):
            raise ValueError(f"augmentation colors must permute 0-9, got {list(self.colors)}")
        object.__setattr__(self, "colors", colors)

    @classmethod
    def identity(cls) -> Augmentation:
        return cls()

    @classmethod
    def random(cls, rng: np.random.Generator, permute_black: bool = False) -> Augmentation:
        """A uniformly random dihedral transform and colour permutation (black fixed unless asked)."""
        dihedral = int(rng.integers(8))
        if permute_black:
            colors = tuple(int(c) for c in rng.permutation(10))
        else:
            colors = (0, *(int(c) for c in rng.permutation(np.arange(1, 10))))
        return cls(dihedral, colors)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Augmentation:
        """Inverse of `to_dict`; None (no augmentation recorded) is the identity."""
        if d is None:
            return cls()
        return cls(d.get("dihedral", 0), tuple(d.get("colors", IDENTITY_COLORS)))

    def to_dict(self) -> dict[str, Any]:
        return {"dihedral": self.dihedral, "colors": list(self.colors)}

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colors == IDENTITY_COLORS

    def apply(self, grid: np.ndarray) -> np.ndarray:
        g = np.asarray(grid)
        if self.dihedral >= 4:
            g = g.T
        g = np.rot90(g, self.dihedral % 4)
        return np.asarray(self.colors, dtype=g.dtype)[g].copy()

    def invert(self, grid: np.ndarray) -> np.ndarray:
        """The exact inverse of `apply`, for a grid of any shape with colours 0-9."""
        g = np.asarray(grid)
        inverse = np.argsort(self.colors).astype(g.dtype)
        g = np.rot90(inverse[g], -(self.dihedral % 4))
        if self.dihedral >= 4:
            g = g.T
        return g.copy()

    def apply_task(self, task: Task) -> Task:
        """The task with every grid (train, test inputs and known test outputs) transformed."""
        outputs = task.test_outputs
        return Task(
            task_id=task.task_id,
            train=[(self.apply(i), self.apply(o)) for i, o in task.train],
            test_inputs=[self.apply(g) for g in task.test_inputs],
            test_outputs=None if outputs is None else [self.apply(g) for g in outputs],
        )
