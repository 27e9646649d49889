"""Building the package prints no warning the project causes (issue 22): setuptools warns
about a `license` table (deprecated since 77) and about the meta-path finder an editable
install of a flat layout gets. Both hooks run here as pip runs them, on a copy of the
project, with the setuptools the dev extra pins as `[build-system]` does (it stands in for
pip's isolated build environment: the test needs no network)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.integration

WARNING = re.compile(r"\w+Warning: .*")  # SetuptoolsDeprecationWarning, BuildBackendWarning, ...
HOOK = """
import sys, setuptools.build_meta as backend
wheel = getattr(backend, sys.argv[1])(sys.argv[2])
print("built", wheel)
"""


def _project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT / "arcjobs", copy / "arcjobs", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    return copy


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])
def test_the_build_backend_warns_of_nothing(tmp_path: Path, hook: str) -> None:
    project, out = _project(tmp_path), tmp_path / "dist"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", HOOK, hook, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    warned = WARNING.findall(done.stdout + done.stderr)
    assert warned == []
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    if hook == "build_wheel":  # the package, and nothing else of the checkout
        assert "arcjobs/cli.py" in names
        assert not [n for n in names if not n.startswith(("arcjobs/", "arcjobs-"))]
    else:  # a plain .pth naming the project directory
        (pth,) = [n for n in names if n.endswith(".pth")]
        assert zipfile.ZipFile(wheel).read(pth).decode().strip() == str(project)
