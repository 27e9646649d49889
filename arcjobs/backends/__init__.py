"""Backends place and watch steps: local processes, Docker Compose, HTCondor + Apptainer, Slurm."""

from __future__ import annotations

import importlib
import inspect

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


def get_backend(name: str, **options: object) -> Backend:
    """The backend `name`, given those of `options` (data_root, site, ...) its constructor takes:
    callers pass everything they know, each backend uses what it needs."""
    if name not in backend_names():
        raise UserError(f"unknown backend {name!r}; expected one of: {', '.join(backend_names())}")
    module, attr = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})


def outlives_launcher(name: str) -> bool:
    """Whether a run on backend `name` goes on without its launcher (a whole-DAG scheduler):
    `status`, `logs -f` and `cancel` then ask the backend themselves."""
    if name not in BACKENDS:
        return False
    module, attr = BACKENDS[name].split(":")
    return bool(getattr(importlib.import_module(module), attr).whole_dag)
