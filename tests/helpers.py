"""Helpers for tests: run the real `arcjobs` CLI as a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from arcjobs.images.apptainer import _record, sif_path

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "fixtures" / "jobs"


def arcjobs(
    *args: str | Path,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m arcjobs ARGS` in `cwd` (the checkout) and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "arcjobs", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"arcjobs {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def launch(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m arcjobs ARGS` in the checkout without waiting, its output in `log`:
    for tests that kill or cancel a launcher in the middle of a run."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "arcjobs", *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT
        )


# Who a process is and where torch puts its compiled kernels: what a model step asks when it
# runs as a uid without a passwd entry (tests/test_nameless_uid.py and the images tier).
CACHE_LOOKUP = (
    "import getpass, json\n"
    "from torch._inductor.runtime.cache_dir_utils import cache_dir, triton_cache_dir\n"
    "try:\n"
    "    user = getpass.getuser()\n"
    "except KeyError as e:\n"
    "    user = 'KeyError: ' + str(e)\n"
    "print(json.dumps([user, cache_dir(), triton_cache_dir(0)]))\n"
)


def compose_command(project: str, *args: str) -> list[str]:
    """`docker compose` on the checkout's compose.yaml under `project`, the same from any cwd."""
    compose = ["docker", "compose", "--project-directory", str(ROOT)]
    return [*compose, "-f", str(ROOT / "compose.yaml"), "-p", project, *args]


def solved(metrics_json: Path) -> set[str]:
    """The tasks an evaluate step solved (pass@n = 1)."""
    per_task = json.loads(metrics_json.read_text())["per_task"]
    return {task for task, m in per_task.items() if m["pass_at_n"] == 1}


def assert_demo_learned(steps: Path) -> None:
    """What jobs/demo.yaml shows: the model alone solves nothing at first; the pooled programs
    solve every task; after learning them, the model alone solves tasks it did not before."""
    before = solved(steps / "evaluate_before/out/metrics.json")
    pooled = solved(steps / "evaluate_pooled/out/metrics.json")
    after = solved(steps / "evaluate/out/metrics.json")
    assert before == set(), "a random model writes no valid program"
    assert len(pooled) == 4
    assert len(after - before) >= 3, f"the model alone solved only {sorted(after)} after learning"
    newly = json.loads((steps / "evaluate/out/metrics.json").read_text())["legitimacy"]["tasks"]
    assert {t["task_id"] for t in newly} == after - before


def cuda_unusable_line(gpus: int) -> str:
    """The last stderr line of a step granted `gpus` GPUs here, where torch is a CPU build
    (`arcjobs.models.loading.require_cuda`): the train and infer steps both stop with it."""
    import torch

    return (
        f"error: resources.gpus: {gpus} GPU(s) granted but CUDA is unusable here "
        f"(torch {torch.__version__} is a CPU build); check `nvidia-smi`, or run the step "
        "with gpus: 0"
    )


def register_sifs(cache: Path, digests: dict[str, str]) -> None:
    """Empty placeholder .sif files for `digests` (image → digest), registered in `cache` by
    the converter's own index writer, as `arcjobs images apptainer` registers real ones."""
    Path(cache).mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        path = sif_path(cache, name, digest)
        path.write_bytes(b"")
        _record(cache, name, digest, path, "test", "")


def unavailable(reason: str, remedy: str) -> NoReturn:
    """Skip a test whose real component (a Docker engine, a Slurm cluster, Chromium, vLLM) is
    missing, saying why and what `remedy` provides it; in CI (env CI set to a true value)
    fail instead, so a broken component never passes as "skipped"."""
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"CI is set but {reason} ({remedy})", pytrace=False)
    pytest.skip(f"{reason}; {remedy}")
