"""Backends place and watch steps: local processes, Docker Compose, HTCondor + Apptainer, Slurm."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from arcjobs.backends.base import Backend
from arcjobs.errors import UserError

BACKENDS: dict[str, str] = {
    "local": "arcjobs.backends.local:LocalBackend",
    "compose": "arcjobs.backends.compose:ComposeBackend",
    "condor": "arcjobs.backends.condor:CondorBackend",
    "slurm": "arcjobs.backends.slurm:SlurmBackend",
}


def backend_names() -> list[str]:
    import importlib.util

    return [n for n, t in BACKENDS.items() if importlib.util.find_spec(t.split(":")[0])]


def get_backend(
    name: str, data_root: str | Path | None = None, **options: object
) -> Backend[Any, Any]:
    """The backend `name` for the runs under `data_root`, with `options` of its own.

    An option set to None is not given. Any other must be one the backend declares
    (`Backend.options`): a misspelt or misplaced one (`--site` for the local backend) is
    refused in one line instead of vanishing.
    """
    if name not in backend_names():
        raise UserError(f"unknown backend {name!r}; expected one of: {', '.join(backend_names())}")
    cls = _backend_class(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(given.keys() - set(cls.options))
    if unknown:
        takes = ", ".join(cls.options) or "none"
        raise UserError(f"the {name} backend takes no option {unknown[0]!r} (its options: {takes})")
    return cls(data_root=data_root, **given)


def outlives_launcher(name: str) -> bool:
    """Whether a run on backend `name` goes on without its launcher (a whole-DAG scheduler):
    `status`, `logs -f` and `cancel` then ask the backend themselves."""
    return name in BACKENDS and _backend_class(name).whole_dag


def _backend_class(name: str) -> type[Backend[Any, Any]]:
    """The class of backend `name` (a key of BACKENDS), imported only when asked for."""
    module, attr = BACKENDS[name].split(":")
    cls: type[Backend[Any, Any]] = getattr(importlib.import_module(module), attr)
    return cls
