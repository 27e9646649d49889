"""Helpers for tests: run the real `arcjobs` CLI as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "fixtures" / "jobs"


def arcjobs(
    *args: str | Path, check: bool = False, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m arcjobs ARGS` and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "arcjobs", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"arcjobs {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
