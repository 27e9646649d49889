"""Overhead of the compose backend: a trivial step (`arcjobs step run --command true`) placed
by the backend (request → `docker compose run --rm -T` → exit observed) against a bare
`docker run --rm` of the same image and the same command, alternated in one process.

    .venv/bin/python benchmarks/compose_overhead.py [--reps 10]

Needs a Docker engine and the sandbox image (`arcjobs images build sandbox`). The goal
(issue 7): backend ≤ 1.3 × bare, by the medians. Also shown: the same step run by the whole
launcher (`arcjobs run` of a one-step job: Python start-up, planning, run.json), for scale.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arcjobs.backends.compose import ComposeBackend, container_user
from arcjobs.images import docker_tag
from arcjobs.layout import RunLayout
from arcjobs.spec.model import Resources, Step

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.3


def trivial_step(name: str) -> Step:
    params = {"command": "true"}
    return Step(name, name, "run", params, params, (), "sandbox", Resources())


def through_backend(backend: ComposeBackend, layout: RunLayout, name: str) -> float:
    t0 = time.perf_counter()
    req = backend.request(trivial_step(name), {"command": "true"}, layout, "bench")
    handle = backend.submit(req)
    while (status := backend.poll({name: handle})[name]).state == "running":
        time.sleep(0.005)
    took = time.perf_counter() - t0
    assert status.exit_code == 0, Path(req.log).read_text()
    return took


# compose.yaml's sandbox service as `docker run` flags: the same container, so that the ratio
# is what Compose and the backend add, not what a network namespace or tmpfs costs.
SERVICE_FLAGS = [
    "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=1g",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--init",
    "--pids-limit", "512", "--memory", "8g", "--memory-swap", "8g", "--ulimit", "core=0",
    "-e", "PYTHONNOUSERSITE=1", "-e", "HF_HOME=/data/cache/huggingface", "-e", "HOME=/tmp",
    "-e", "ARCJOBS_DATA_ROOT=/data", "-w", "/data",
]  # fmt: skip


def bare(data: Path, image: str, name: str, flags: list[str]) -> float:
    uid, gid = container_user(data)
    out = f"/data/runs/bench/steps/{name}/out"
    (data / "runs/bench/steps" / name).mkdir(parents=True)
    if os.getuid() == 0:
        os.chown(data / "runs/bench/steps" / name, uid, gid)
    t0 = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", *flags, "--user", f"{uid}:{gid}", "-v", f"{data}:/data"]
        + [image, "arcjobs", "step", "run", "--command", "true", "--out", out],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def launcher(data: Path, job: Path, i: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "arcjobs", "run", str(job), "-b", "compose"]
        + ["--data-root", str(data), "--run-id", f"launcher-{i}", "--set", f"i={i}"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    reps = parser.parse_args().reps
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        backend = ComposeBackend(data_root=data)
        image = docker_tag("sandbox")
        if not backend.image_id("sandbox").startswith("sha256:"):
            sys.exit(f"{image} is not built: arcjobs images build sandbox")
        backend.capacity()  # the checks `run` makes once, outside the timings
        layout = RunLayout(data, "bench")
        job = Path(tmp) / "one.yaml"
        # `i` makes every run's key new: the launcher must start the step, not reuse it.
        job.write_text("name: one\nparams: {i: 0}\nsteps:\n  one:\n    run: true ${i}\n")
        through_backend(backend, layout, "warm")  # first start pays for page cache, network
        bare(data, image, "warm-bare", [])
        ours, theirs, plain, whole = [], [], [], []
        for i in range(reps):  # alternated, so drift on a shared machine hits all alike
            ours.append(through_backend(backend, layout, f"b{i}"))
            theirs.append(bare(data, image, f"d{i}", SERVICE_FLAGS))
            plain.append(bare(data, image, f"p{i}", []))
            whole.append(launcher(data, job, i))
    b, d, p, w = (statistics.median(x) for x in (ours, theirs, plain, whole))
    load = os.getloadavg()[0]
    print(f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cpus, "
          f"load average {load:.1f} at the end), Python {platform.python_version()}")  # fmt: skip
    print(f"- command: `.venv/bin/python benchmarks/compose_overhead.py --reps {reps}`")
    print(f"- median of {reps}, alternated; step: `arcjobs step run --command true` in {image}")
    print(
        f"- bare `docker run --rm` with the service's settings as flags (baseline): {d:.3f} s "
        f"(min {min(theirs):.3f})"
    )
    print(f"- plain `docker run --rm` (default bridge network, no limits): {p:.3f} s = "
          f"{p / d:.2f}× baseline")  # fmt: skip
    print(f"- compose backend (request, submit, poll): {b:.3f} s (min {min(ours):.3f}) = "
          f"{b / d:.2f}× bare (goal ≤ {GOAL})")  # fmt: skip
    print(f"- whole launcher (`arcjobs run -b compose`, one step): {w:.3f} s = {w / d:.2f}× bare")


if __name__ == "__main__":
    main()
