"""Dockerfile.train as built: every package imports, and the tiny model trains two steps inside.

Opt-in (ARCJOBS_TEST_IMAGES=1): the image carries the CUDA build of torch, several GB to
download. It builds from the local Debian base (scripts/make-base-image.sh) unless
ARCJOBS_BASE_IMAGE names another, and trains on the CPU, so no GPU is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_train import write_dataset

from arcjobs import __version__

pytestmark = pytest.mark.images

REPO = Path(__file__).resolve().parents[1]
TAG = f"arcjobs-train:{__version__}-test"
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
        ["docker", "build", "-f", "Dockerfile.train", "--build-arg", f"BASE_IMAGE={base}"]
        + ["-t", TAG, "."],
        cwd=REPO,
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
