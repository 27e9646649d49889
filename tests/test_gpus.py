"""Which GPUs a step gets: the launcher's own CUDA_VISIBLE_DEVICES or nvidia-smi's list, in PCI
order, MIG instances one each; what `plan` prints for a GPU step; which GPU steps are refused
before a run starts (too few, MIG for several, a driver too old for the image's CUDA).

No GPU here: a stand-in `nvidia-smi` on PATH prints what the real one prints on a machine with
GPUs (its `-L` listing, plain and with MIG instances, and its driver query). Everything else is
real: the CLI, the local backend starting real step processes, the compose backend's requests.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from arcjobs import __version__
from arcjobs.backends import gpus
from arcjobs.backends.compose import ComposeBackend
from arcjobs.images import docker as dk
from arcjobs.spec import load_job
from arcjobs.spec.model import Resources

pytestmark = pytest.mark.integration

TWO_GPUS = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-aaaa-bbbb-cccc-000000000000)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-22222222-aaaa-bbbb-cccc-000000000000)
"""
# nvidia-smi -L on an A100 split into two 3g.20gb instances, beside a whole one.
MIG = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.20gb     Device  0: (UUID: MIG-1f0f7a2e-3b0b-5f1e-9a3f-6e8f3c2a1b01)
  MIG 3g.20gb     Device  1: (UUID: MIG-2a1b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c02)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-7e8f9a0b-1c2d-3e4f-5a6b-7c8d9e0f1a2b)
"""


def stand_in_nvidia_smi(bin_dir: Path, listing: str, driver: str = "580.65.06") -> Path:
    """An `nvidia-smi` that answers `-L` with `listing` and the driver query with `driver`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  -L) cat <<'EOF'\n{listing}EOF\n ;;\n"
        f"  --query-gpu=driver_version) for _ in 1 2; do echo {driver}; done ;;\n"
        "  *) exit 9 ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point PATH at a stand-in nvidia-smi with `listing`; returns the env for CLI runs."""

    def make(listing: str, driver: str = "580.65.06", **extra: str) -> dict[str, str]:
        bin_dir = stand_in_nvidia_smi(tmp_path / "bin", listing, driver)
        path = f"{bin_dir}:{os.environ['PATH']}"
        monkeypatch.setenv("PATH", path)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return {"PATH": path, **extra}

    return make


def run_cli(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`arcjobs ARGS` with `env`; the launcher's CUDA_VISIBLE_DEVICES only where `env` has it."""
    environ = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", *map(str, args)],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=300,
        cwd=ROOT,
    )


GPU_JOB = """\
name: gpus
steps:
  a:
    image: train
    resources: {gpus: 1, cpus: 1}
    run: echo "$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER" > $OUT/gpus.txt; sleep 1
  b:
    image: train
    resources: {gpus: 1, cpus: 1}
    run: echo "$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER" > $OUT/gpus.txt; sleep 1
"""


def run_gpu_job(tmp_path: Path, env: dict[str, str]) -> Path:
    """`arcjobs run` of GPU_JOB with `env`, which must succeed; its data root."""
    job = tmp_path / "job.yaml"
    job.write_text(GPU_JOB)
    data = tmp_path / "data"
    done = run_cli("run", job, "--data-root", data, env=env)
    assert done.returncode == 0, done.stderr
    return data


def seen(data: Path, step: str) -> str:
    (run,) = data.glob("runs/*")
    return (run / "steps" / step / "out" / "gpus.txt").read_text().strip()


def test_nvidia_smi_listings_become_devices() -> None:
    assert gpus.parse_listing(TWO_GPUS) == gpus.Gpus(("0", "1"))
    mig = gpus.parse_listing(MIG)
    assert mig.mig and mig.devices == (
        "MIG-1f0f7a2e-3b0b-5f1e-9a3f-6e8f3c2a1b01",
        "MIG-2a1b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c02",
        "GPU-7e8f9a0b-1c2d-3e4f-5a6b-7c8d9e0f1a2b",
    )
    assert gpus.parse_listing("") == gpus.Gpus()
    assert gpus.from_visible("2, 3") == gpus.Gpus(("2", "3"))
    assert gpus.from_visible("") == gpus.Gpus() and gpus.from_visible("-1") == gpus.Gpus()
    assert gpus.Gpus(("2", "3")).visible([1]) == "3"
    assert gpus.Gpus(("2", "3")).visible([]) == ""


def test_local_steps_get_nvidia_smis_gpus_in_pci_order(tmp_path: Path, machine) -> None:
    env = machine(TWO_GPUS)
    data = run_gpu_job(tmp_path, env)
    assert {seen(data, "a"), seen(data, "b")} == {"0 PCI_BUS_ID", "1 PCI_BUS_ID"}


def test_local_steps_index_the_launchers_own_visible_devices(tmp_path: Path, machine) -> None:
    """With GPUs 2 and 3 visible to the launcher, the step given GPU number 1 gets GPU 3."""
    env = machine(TWO_GPUS, CUDA_VISIBLE_DEVICES="2,3")
    data = run_gpu_job(tmp_path, env)
    assert {seen(data, "a"), seen(data, "b")} == {"2 PCI_BUS_ID", "3 PCI_BUS_ID"}


def test_mig_instances_count_one_each_and_a_two_gpu_step_is_refused(
    tmp_path: Path, machine
) -> None:
    env = machine(MIG)
    data = run_gpu_job(tmp_path, env)
    assert {seen(data, "a").split()[0], seen(data, "b").split()[0]} == {
        "MIG-1f0f7a2e-3b0b-5f1e-9a3f-6e8f3c2a1b01",
        "MIG-2a1b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c02",
    }

    two = tmp_path / "two.yaml"
    two.write_text(
        "name: two\nsteps:\n  both:\n    image: train\n    resources: {gpus: 2}\n    run: 'true'\n"
    )
    refused = run_cli("run", two, "--data-root", tmp_path / "d2", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: {two}:5: steps.both.resources.gpus: step both asks for 2 GPU(s) and the local "
        "backend's GPUs here are MIG instances, of which CUDA uses one per process; give it "
        "gpus: 1, or disable MIG for multi-GPU steps"
    ]
    assert not (tmp_path / "d2" / "runs").exists()


@pytest.mark.parametrize("backend", ["local", "compose"])
def test_plan_prints_the_gpus_a_step_gets_when_it_starts_alone(
    tmp_path: Path, machine, backend: str
) -> None:
    """Pasted, an empty CUDA_VISIBLE_DEVICES would hide every GPU."""
    env = machine(TWO_GPUS, DOCKER_HOST="unix:///nonexistent.sock")
    job = tmp_path / "job.yaml"
    job.write_text("name: p\nsteps:\n  learn:\n    uses: train\n    resources: {gpus: 2}\n"
                   "    with: {model: /m, dataset: /d.jsonl}\n")  # fmt: skip
    done = run_cli("plan", job, "-b", backend, "--data-root", tmp_path / "d", "--json", env=env)
    assert done.returncode == 0, done.stderr
    (step,) = json.loads(done.stdout)["steps"]
    request = step["request"]
    if backend == "local":
        env_seen = request["env"]
    else:
        command = request["command"]
        env_seen = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-e")
    assert env_seen["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env_seen["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


@pytest.mark.parametrize(
    ("driver", "cuda", "refused"),
    [("550.54.15", None, True), ("580.65.06", None, False), ("550.54.15", "cu128", False)],
    ids=["old-driver-cu130", "new-driver-cu130", "old-driver-cu128"],
)
def test_compose_refuses_a_gpu_step_whose_image_needs_a_newer_driver(
    tmp_path: Path, machine, monkeypatch, driver: str, cuda: str | None, refused: bool
) -> None:
    """The image's CUDA label is read from the engine; none runs here, so `image_label`
    answers for it (an image built before the label reads as None: the cu130 default). The
    docker tier reads a real image's label."""
    machine(TWO_GPUS, driver=driver)
    monkeypatch.setattr(dk, "image_label", lambda tag, key: cuda)
    job_file = tmp_path / "job.yaml"
    job_file.write_text("name: p\nsteps:\n  learn:\n    uses: train\n    resources: {gpus: 1}\n"
                        "    with: {model: /m, dataset: /d.jsonl}\n")  # fmt: skip
    step = load_job(job_file).steps["learn"]
    backend = ComposeBackend(data_root=tmp_path / "data")
    why = backend.gpu_refusal(step, Resources(gpus=2, cpus=8, memory_mb=None))
    if refused:
        assert why == (
            f"image arcjobs-train:{__version__} is built for CUDA cu130, which needs NVIDIA "
            "driver >= 580, but this machine's driver is 550.54.15; update the driver or "
            "rebuild with `arcjobs images build train --build-arg CUDA=cu128`"
        )
    else:
        assert why is None
