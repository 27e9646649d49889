"""`arcjobs images build` makes all three images through compose, records their digests, and
`images list` shows them; then a CPU step in the train image runs through the compose backend.

Opt-in tier (marker `images`, ARCJOBS_TEST_IMAGES=1): the train and infer images carry CUDA
torch and vLLM, gigabytes to download and an hour to build on a small machine. Builds from the
local Debian base (scripts/make-base-image.sh) unless ARCJOBS_BASE_IMAGE names another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, DataRoot

from arcjobs import __version__
from arcjobs.images import IMAGES

pytestmark = [
    pytest.mark.images,
    pytest.mark.skipif(
        os.environ.get("ARCJOBS_TEST_IMAGES") != "1", reason="opt-in: set ARCJOBS_TEST_IMAGES=1"
    ),
]


def arcjobs(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def inspect_id(tag: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def built(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images") / "data"
    done = arcjobs(
        "images", "build", *IMAGES, "--base-image", base_image, "--data-root", str(root),
        timeout=7200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def test_every_image_is_built_tagged_and_recorded(built: Path, base_image: str) -> None:
    records = json.loads((built / "images" / "docker.json").read_text())["images"]
    assert set(records) == set(IMAGES)
    for name in IMAGES:
        tag = f"arcjobs-{name}:{__version__}"
        assert records[name]["digest"] == inspect_id(tag)
        assert records[name]["base_image"] == base_image
    listed = json.loads(arcjobs("images", "list", "--json", "--data-root", str(built)).stdout)
    current = {r["image"]: r for r in listed if r["current"]}
    assert set(current) == set(IMAGES)
    assert all(r["recorded"] for r in current.values())


def test_a_rebuild_without_changes_keeps_the_digest(built: Path, base_image: str) -> None:
    before = inspect_id(f"arcjobs-sandbox:{__version__}")
    done = arcjobs(
        "images", "build", "sandbox", "--base-image", base_image, "--data-root", str(built)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert inspect_id(f"arcjobs-sandbox:{__version__}") == before


def test_the_train_image_runs_a_cpu_step_through_the_compose_backend(
    built: Path, data_root: DataRoot
) -> None:
    job = data_root.path.parent / "tiny.yaml"
    job.write_text("name: tiny\nsteps:\n  model:\n    uses: tiny_model\n    with: {seed: 0}\n")
    ran = arcjobs(
        "run", str(job), "-b", "compose", "--data-root", str(data_root.path), "--run-id", "t",
        timeout=900,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    step = data_root.path / "runs" / "t" / "steps" / "model"
    manifest = json.loads((step / "manifest.json").read_text())
    assert manifest["image"] == inspect_id(f"arcjobs-train:{__version__}")
    assert "train-cpu" in (step / "log.txt").read_text().splitlines()[0]
    assert (step / "out" / "config.json").exists()
