"""Fixtures of the slurm tier: the real one-host cluster of scripts/slurm-up.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
from slurm_cluster import PACKAGE_ROOT, require_cluster


@pytest.fixture(scope="session")
def slurm_config() -> Path:
    return require_cluster()


@pytest.fixture
def slurm(slurm_config: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Slurm's commands, the launcher's included, talk to the test cluster; local steps (the
    parity baseline) import the same `arcjobs` package as the steps on Slurm."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_config))
    monkeypatch.setenv("PYTHONPATH", str(PACKAGE_ROOT))
    return slurm_config
