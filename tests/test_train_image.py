"""Dockerfile.train as built: every package imports, and the tiny model trains two steps inside.

Opt-in (ARCJOBS_TEST_IMAGES=1): the image carries the CUDA build of torch, several GB to
download. It builds through Compose (its pip cache mounts need BuildKit) from the local
Debian base (scripts/make-base-image.sh) unless ARCJOBS_BASE_IMAGE names another, and trains
on the CPU, so no GPU is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import CACHE_LOOKUP, compose_command
from test_train import write_dataset

from arcjobs import __version__

pytestmark = pytest.mark.images

REPO = Path(__file__).resolve().parents[1]
VERSION = f"{__version__}-test"  # compose.yaml tags the image arcjobs-train:$ARCJOBS_VERSION
TAG = f"arcjobs-train:{VERSION}"
PROJECT = "arcjobs-images-test"
PACKAGES = "torch transformers peft trl accelerate datasets liger_kernel bitsandbytes arcjobs"


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    if os.environ.get("ARCJOBS_TEST_IMAGES") != "1":
        pytest.skip("image builds are opt-in: set ARCJOBS_TEST_IMAGES=1")
    if shutil.which("docker") is None or _docker("info", timeout=30).returncode != 0:
        pytest.skip("no Docker engine reachable")
    base = os.environ.get("ARCJOBS_BASE_IMAGE", "arcjobs-base:bookworm")
    if _docker("image", "inspect", base, timeout=30).returncode != 0:
        pytest.skip(f"base image {base} missing: run scripts/make-base-image.sh")
    built = subprocess.run(
        compose_command(PROJECT, "build", "--build-arg", f"BASE_IMAGE={base}", "train"),
        env={**os.environ, "ARCJOBS_VERSION": VERSION},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return TAG


def test_image_is_non_root_and_imports_every_package(image):
    config = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["arcjobs-entrypoint"]
    code = (
        "import importlib, torch;"
        f"[importlib.import_module(m) for m in {PACKAGES.split()!r}];"
        "print(torch.__version__, torch.version.cuda)"
    )
    done = _docker("run", "--rm", "--network", "none", image, "python3", "-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    version, cuda = done.stdout.split()
    assert version.startswith("2.13.0") and cuda != "None", "torch must be the CUDA build"


def test_image_can_compile_triton_launchers(image):
    """Liger's Triton kernels compile a C launcher against Python.h on first use (on a GPU,
    where this test cannot run): the compiler and the headers must be in the image."""
    include = "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"include\"])')"
    script = f"echo '#include <Python.h>' | cc -fsyntax-only -x c -I{include} -"
    done = _docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script)
    assert done.returncode == 0, done.stderr[-3000:]


def test_tiny_model_trains_two_steps_on_cpu_inside(image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image's user (uid 10001) writes here
    write_dataset(data / "dataset.jsonl", n=2).chmod(0o644)
    run = ["run", "--rm", "--network", "none", "-v", f"{data}:/data", image]
    built = _docker(*run, "model", "tiny", "--out", "/data/tiny")
    assert built.returncode == 0, built.stderr[-3000:]
    step = [*run, "step", "train", "--model", "/data/tiny", "--dataset", "/data/dataset.jsonl"]
    step += ["--max-steps", "2", "--global-batch-size", "1", "--per-device-batch-size", "1"]
    step += ["--lora-rank", "4", "--out", "/data/learn/out"]
    trained = _docker(*step)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    metrics = json.loads((data / "learn" / "out" / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    assert (data / "learn" / "out" / "adapter" / "adapter_model.safetensors").is_file()


def test_the_train_service_runs_as_a_uid_without_a_name_and_trains(image, tmp_path):
    """Compose runs the image as the launcher's uid, unknown to it: the service's USER /
    LOGNAME give it a name, its caches go to the data volume, and the tiny model trains."""
    tmp_path.chmod(0o777)
    write_dataset(tmp_path / "dataset.jsonl", n=2).chmod(0o644)
    env = {**os.environ, "ARCJOBS_VERSION": VERSION, "ARCJOBS_DATA_ROOT": str(tmp_path)}
    run = ["run", "--rm", "-T", "--no-deps", "--user", "12345:12345", "train-cpu"]
    lookup = subprocess.run(
        compose_command(PROJECT, *run, "python3", "-c", CACHE_LOOKUP),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert lookup.returncode == 0, lookup.stderr[-3000:]
    assert json.loads(lookup.stdout.strip().splitlines()[-1]) == [
        "arcjobs", "/data/cache/torchinductor", "/data/cache/triton",
    ]  # fmt: skip
    script = (
        "set -e; arcjobs model tiny --out /data/tiny; arcjobs step train --model /data/tiny "
        "--dataset /data/dataset.jsonl --max-steps 1 --global-batch-size 1 "
        "--per-device-batch-size 1 --lora-rank 4 --out /data/learn/out"
    )
    trained = subprocess.run(
        compose_command(PROJECT, *run, "sh", "-c", script),
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert (tmp_path / "learn" / "out" / "adapter" / "adapter_model.safetensors").is_file()
