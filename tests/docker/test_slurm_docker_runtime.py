"""The sandbox image under the slurm backend's `docker` runtime: real Slurm daemons
(scripts/slurm-up.sh) start `docker run` of the sandbox image on a real engine, and the
container keeps the hardening of compose.yaml's `sandbox` service.

In this tier (not the slurm tier) because it needs the engine and the sandbox image that
scripts/ci-docker.sh provides; it uses that image as built, never builds one. Without a Slurm
cluster or the image it is skipped, or fails in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import START, DataRoot
from helpers import arcjobs, unavailable
from slurm_cluster import require_cluster

from arcjobs import __version__

pytestmark = pytest.mark.docker

IMAGE = f"arcjobs-sandbox:{__version__}"
PROBE = r"""
import errno, json, os, socket
out = {"uid": os.getuid(), "interfaces": sorted(os.listdir("/sys/class/net"))}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    out["connect"] = "connected"
except OSError as e:
    out["connect"] = type(e).__name__
for d in ("/", "/usr", "/tmp"):
    try:
        with open(d.rstrip("/") + "/probe.txt", "w") as f:
            f.write("x")
        out[d] = "written"
    except OSError as e:
        out[d] = errno.errorcode.get(e.errno, str(e.errno))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["CapEff"] = status["CapEff"].strip()
out["NoNewPrivs"] = status["NoNewPrivs"].strip()
try:
    out["pids.max"] = open("/sys/fs/cgroup/pids.max").read().strip()
except OSError:
    out["pids.max"] = None
print(json.dumps(out))
"""
JOB = """
name: hardened
steps:
  probe:
    image: sandbox
    run: python3 ${data}/probe.py > $OUT/probe.json
"""


@pytest.fixture
def slurm_docker(docker_engine: str, data_root: DataRoot, monkeypatch) -> Path:
    """The test cluster, the sandbox image as built, and a site config for the docker runtime."""
    monkeypatch.setenv("SLURM_CONF", str(require_cluster()))
    inspect = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if inspect.returncode != 0:
        unavailable(f"the image {IMAGE} is not built (scripts/ci-docker.sh builds it)", START)
    site = data_root.path.parent / "site.yaml"
    site.write_text("slurm: {runtime: docker}\n")
    return site


def containers(run_id: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=arcjobs.{run_id}.", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.split()


def test_the_sandbox_image_runs_under_slurm_with_its_hardening(slurm_docker, data_root):
    (data_root.path / "probe.py").write_text(PROBE)
    job = data_root.path.parent / "hardened.yaml"
    job.write_text(JOB)
    run_id = f"hardened-{uuid.uuid4().hex[:6]}"
    arcjobs("run", job, "-b", "slurm", "--site", slurm_docker, "--data-root", data_root.path,
            "--run-id", run_id, check=True, timeout=300)  # fmt: skip
    step = data_root.path / "runs" / run_id / "steps/probe"
    probe = json.loads((step / "out/probe.json").read_text())
    assert probe["interfaces"] == ["lo"] and probe["connect"] != "connected"
    assert probe["/"] == "EROFS" and probe["/usr"] == "EROFS" and probe["/tmp"] == "written"
    assert probe["CapEff"] == "0000000000000000" and probe["NoNewPrivs"] == "1"
    assert probe["uid"] != 0
    assert probe["pids.max"] in ("512", None)
    digest = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    manifest = json.loads((step / "manifest.json").read_text())
    assert manifest["image"] == digest  # the exact image is in the step's cache key
    assert containers(run_id) == []


def test_cancel_removes_the_container_of_a_step_under_slurm(slurm_docker, data_root):
    """The container is the Docker daemon's child, not the job's: the batch script's trap
    removes it when scancel stops the job."""
    job = data_root.path.parent / "nap.yaml"
    job.write_text("name: nap\nsteps:\n  nap:\n    run: sleep 300\n")
    run_id = f"nap-{uuid.uuid4().hex[:6]}"
    log = data_root.path.parent / "launcher.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "arcjobs", "run",
             str(job), "-b", "slurm", "--site", str(slurm_docker), "--data-root",
             str(data_root.path), "--run-id", run_id],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not containers(run_id) and time.monotonic() < deadline:
            assert launcher.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        assert containers(run_id), log.read_text()[-3000:]
        cancelled = arcjobs("cancel", run_id, "--data-root", data_root.path, check=True)
        assert run_id in cancelled.stdout
    finally:
        # `cancel` returns once the launcher let go of the run's lock; the process still has
        # its last lines to print and its interpreter to end, so it is given time to exit
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
    assert launcher.wait(timeout=60) == 130
    assert containers(run_id) == []  # cancel returns once the job, trap included, is over
