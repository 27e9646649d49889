"""The compose backend against a real engine: a job of execute, relabel, evaluate and `run:`
steps gives byte-for-byte the local backend's outputs, a SIGKILLed launcher's containers are
removed on resume (or by `arcjobs cancel`), limits reach the container's cgroup, and the
command `plan` prints is the one `run` executes.

Small on purpose (four ARC-AGI-1 tasks, four programs, the session's sandbox image): the whole
module is about half a minute of container starts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import START, DataRoot
from helpers import arcjobs, launch, unavailable
from parity import COMPARED, write_inputs

pytestmark = pytest.mark.docker


def containers(run_id: str, *filters: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=arcjobs.run={run_id}", *filters]
        + ["--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def wait_for_container(run_id: str, step: str, launcher: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = containers(
            run_id, "--filter", f"label=arcjobs.step={step}", "--filter", "status=running"
        )
        if found:
            return found[0]
        assert launcher.poll() is None, f"launcher ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)
    raise AssertionError(f"no running container for step {step}:\n{log.read_text()[-3000:]}")


def compose_clients(name: str) -> list[int]:
    """Pids of Compose processes still running for container `name`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if name.encode() in cmd and any(b"compose" in c for c in cmd[:2]):
                pids.append(int(proc.name))
    return pids


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    root = tmp_path / "local"
    root.mkdir()
    return root


def test_job_matches_local_and_resumes_after_sigkill(
    sandbox_image: str, data_root: DataRoot, local_root: Path
) -> None:
    job = write_inputs(data_root.path)
    write_inputs(local_root)
    local = arcjobs("run", str(job), "--data-root", str(local_root), "--run-id", "parity")
    assert local.returncode == 0, local.stderr

    # Compose, with the last step napping long enough to be killed in the middle of it.
    run_id = f"parity-{os.getpid()}"
    root = str(data_root.path)
    log = data_root.path.parent / "launcher.log"
    launcher = launch(
        "run", str(job), "-b", "compose", "--data-root", root, "--run-id", run_id,
        "--set", "nap=120", log=log,
    )  # fmt: skip
    try:
        name = wait_for_container(run_id, "summary", launcher, log)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    steps = data_root.path / "runs" / run_id / "steps"
    before = json.loads((steps / "execute" / "manifest.json").read_text())
    time.sleep(0.5)
    assert containers(run_id) == [name], "the killed launcher's container should still run"

    resumed = arcjobs("run", str(job), "-b", "compose", "--data-root", root, "--run-id", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert containers(run_id) == [], "a container outlived the resumed run"
    assert compose_clients(name) == [], "a Compose client outlived the resumed run"
    # Only the unfinished step ran again.
    assert json.loads((steps / "execute" / "manifest.json").read_text()) == before

    for rel in COMPARED:
        ours = (steps / rel).read_bytes()
        assert ours == (local_root / "runs" / "parity" / "steps" / rel).read_bytes(), rel
    statuses = {json.loads(x)["status"] for x in (steps / COMPARED[1]).read_text().splitlines()}
    assert {"ok", "runtime_error"} <= statuses
    assert (steps / "summary" / "out" / "counts.txt").read_text().strip() == "4"

    # The image digest is the step's image identity (so it is in every cache key).
    digest = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", sandbox_image],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert before["image"] == digest
    local_key = json.loads((local_root / "runs/parity/steps/execute/manifest.json").read_text())
    assert before["key"] != local_key["key"]
    assert "docker compose" in (steps / "execute" / "log.txt").read_text().splitlines()[0]


def test_compose_v1_runs_the_same_job(
    sandbox_image: str, data_root: DataRoot, local_root: Path
) -> None:
    """Where Debian's docker-compose 1.29 is all there is, the same compose.yaml and the same
    job give the local backend's outputs byte for byte."""
    v1 = shutil.which("docker-compose", path="/usr/bin:/usr/local/bin")
    version = (
        subprocess.run([v1, "version", "--short"], capture_output=True, text=True) if v1 else None
    )
    if version is None or not version.stdout.startswith("1."):
        unavailable("Compose v1 (Debian's docker-compose) is not installed", START)
    job = write_inputs(data_root.path)
    write_inputs(local_root)
    assert arcjobs("run", str(job), "--data-root", str(local_root), "--run-id", "p").returncode == 0
    run_id = f"v1-{os.getpid()}"
    done = arcjobs(
        "run", str(job), "-b", "compose", "--data-root", str(data_root.path), "--run-id", run_id,
        env={"ARCJOBS_COMPOSE": v1},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    steps = data_root.path / "runs" / run_id / "steps"
    assert f" {v1} --project-directory " in (steps / "execute" / "log.txt").read_text()
    for rel in COMPARED:
        expected = (local_root / "runs" / "p" / "steps" / rel).read_bytes()
        assert (steps / rel).read_bytes() == expected, rel
    assert containers(run_id) == []


@pytest.mark.parametrize("how", ["sigkill-then-cancel", "sigterm"])
def test_a_stopped_launcher_leaves_no_container(
    sandbox_image: str, data_root: DataRoot, how: str
) -> None:
    """SIGKILL: the container outlives the launcher until `arcjobs cancel` removes it.
    SIGTERM (or Ctrl-C): the launcher stops its containers itself before it exits."""
    job = data_root.path.parent / "nap.yaml"
    job.write_text("name: nap\nsteps:\n  nap:\n    run: sleep 120\n")
    run_id = f"nap-{os.getpid()}-{how}"
    log = data_root.path.parent / "launcher.log"
    root = str(data_root.path)
    launcher = launch(
        "run", str(job), "-b", "compose", "--data-root", root, "--run-id", run_id, log=log
    )
    try:
        name = wait_for_container(run_id, "nap", launcher, log)
    finally:
        launcher.send_signal(signal.SIGKILL if how == "sigkill-then-cancel" else signal.SIGTERM)
        code = launcher.wait(timeout=60)
    if how == "sigkill-then-cancel":
        assert containers(run_id) == [name]
        cancelled = arcjobs("cancel", run_id, "--data-root", root)
        assert cancelled.returncode == 0, cancelled.stderr
        assert "1 step(s) stopped" in cancelled.stdout
    else:
        assert code == 130, log.read_text()[-2000:]
    assert containers(run_id) == []
    assert compose_clients(name) == []
    state = json.loads((data_root.path / "runs" / run_id / "run.json").read_text())
    assert state["status"] == "cancelled"


def _cgroup_limits(text: str) -> tuple[float, int]:
    """(cpus, memory bytes) from the files the limits step printed (cgroup v1 or v2)."""
    files = dict(line.split(" ", 1) for line in text.splitlines())
    if "/sys/fs/cgroup/cpu.max" in files:
        quota, period = files["/sys/fs/cgroup/cpu.max"].split()
        memory = files["/sys/fs/cgroup/memory.max"]
    else:
        quota = files["/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]
        period = files["/sys/fs/cgroup/cpu/cpu.cfs_period_us"]
        memory = files["/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    return int(quota) / int(period), int(memory)


def test_plan_prints_the_command_run_executes_and_limits_reach_the_cgroup(
    sandbox_image: str, data_root: DataRoot
) -> None:
    """Run the planned command by hand with the planned env: the step completes, and `run`
    then finds it done — so the printed command is exactly the step."""
    job = data_root.path.parent / "limits.yaml"
    files = (
        "/sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    job.write_text(
        "name: limits\nsteps:\n  limits:\n    resources: {cpus: 1, memory: 300M}\n"
        f'    run: for f in {files}; do [ -r $f ] && echo "$f $(cat $f)"; done '
        "> $OUT/limits.txt; true\n"
    )
    root = str(data_root.path)
    planned = arcjobs(
        "plan", str(job), "-b", "compose", "--data-root", root, "--run-id", "lim", "--json"
    )
    assert planned.returncode == 0, planned.stderr
    request = json.loads(planned.stdout)["steps"][0]["request"]
    assert request["command"][:2] == ["docker", "compose"] or "compose" in request["command"][0]
    assert "run" in request["command"] and "--rm" in request["command"]
    by_hand = subprocess.run(
        request["command"],
        env={**os.environ, **request["env"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_hand.returncode == 0, by_hand.stderr
    out = data_root.path / "runs" / "lim" / "steps" / "limits" / "out"
    assert _cgroup_limits((out / "limits.txt").read_text()) == (1.0, 300 * 2**20)

    ran = arcjobs("run", str(job), "-b", "compose", "--data-root", root, "--run-id", "lim")
    assert ran.returncode == 0, ran.stderr
    state = json.loads((data_root.path / "runs" / "lim" / "run.json").read_text())
    assert state["steps"]["limits"]["status"] == "succeeded"
    assert not (out.parent / "log.txt").exists(), "run started the step again"
