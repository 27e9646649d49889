"""The one-host Slurm cluster of scripts/slurm-up.sh, as the slurm tier (and the docker tier's
Slurm test) find it: real munged, slurmctld and slurmd, never a stand-in.

Without a cluster that answers, a test is skipped with the reason on a developer machine; in
CI (env CI set to a true value) it fails instead, so a broken Slurm never passes as "skipped".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import unavailable

import arcjobs

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = Path(arcjobs.__file__).resolve().parents[1]  # where the launcher's arcjobs is
START = "start it with scripts/slurm-up.sh"  # what the message suggests


def slurm_conf() -> Path:
    """$SLURM_CONF, else the config scripts/slurm-up.sh writes (the same default directory)."""
    if os.environ.get("SLURM_CONF"):
        return Path(os.environ["SLURM_CONF"])
    state = os.environ.get("ARCJOBS_SLURM_DIR") or (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"arcjobs-slurm-{os.getuid()}"
    )
    return Path(state) / "slurm.conf"


def require_cluster() -> Path:
    """The config of a cluster whose node answers idle (or busy), or skip/fail saying why."""
    if shutil.which("sbatch") is None:
        unavailable("Slurm's commands (sbatch, squeue) are not installed", START)
    conf = slurm_conf()
    if not conf.exists():
        unavailable(f"no Slurm config at {conf}", START)
    info = subprocess.run(
        ["sinfo", "--noheader", "--format=%t"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "SLURM_CONF": str(conf)},
    )  # fmt: skip
    if info.returncode != 0 or not {"idle", "mix", "alloc"} & set(info.stdout.split()):
        unavailable(
            f"the Slurm cluster of {conf} does not answer ({info.stderr.strip()[:200]})", START
        )
    return conf


def none_runtime_site(path: Path, **slurm: str) -> Path:
    """A site config for steps in the node's own environment: this interpreter and the same
    `arcjobs` package as the launcher's (a checkout's, even where another is installed)."""
    lines = ["slurm:", "  runtime: none", "  setup:"]
    lines += [f"    - export PATH={Path(sys.executable).parent}:$PATH"]
    lines += [f"    - export PYTHONPATH={PACKAGE_ROOT}"]
    lines += [f"  {k}: {v}" for k, v in slurm.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def squeue(*args: str) -> list[list[str]]:
    """`squeue --noheader --Format=...` rows, cells split on `|`."""
    done = subprocess.run(
        ["squeue", "--noheader", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line.split("|")[:-1] for line in done.stdout.splitlines()]
