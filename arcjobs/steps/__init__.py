"""Registry of step kinds: name → module defining `KIND` (see `arcjobs.steps.base`).

Modules are imported on first use only, so listing the kinds costs nothing; a kind's module
keeps heavy imports inside its `run` function.
"""

from __future__ import annotations

import importlib
import importlib.util

from arcjobs.errors import UserError
from arcjobs.steps.base import StepKind

KIND_MODULES: dict[str, str] = {
    "run": "arcjobs.steps.run_command",
    "execute": "arcjobs.steps.execute",
    "relabel": "arcjobs.steps.relabel",
    "evaluate": "arcjobs.steps.evaluate",
    "train": "arcjobs.steps.train",
    "infer": "arcjobs.steps.infer",
    "tiny_model": "arcjobs.steps.tiny_model",
    "programs": "arcjobs.steps.programs",
}

_loaded: dict[str, StepKind] = {}


def kind_names() -> list[str]:
    """The kinds whose modules exist in this installation."""
    return [name for name in KIND_MODULES if importlib.util.find_spec(KIND_MODULES[name])]


def get_kind(name: str) -> StepKind:
    """The `StepKind` for `name`; a `UserError` naming the known kinds if there is none."""
    if name not in _loaded:
        if name not in KIND_MODULES or name not in kind_names():
            raise UserError(f"unknown step kind {name!r}; known: {', '.join(kind_names())}")
        _loaded[name] = importlib.import_module(KIND_MODULES[name]).KIND
    return _loaded[name]
