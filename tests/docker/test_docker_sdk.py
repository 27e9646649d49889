"""The launcher's own calls to the engine, through the docker SDK, against a real engine: what
the engine says, checked against the docker CLI as an independent witness."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import REPO

from arcjobs import __version__
from arcjobs.backends import compose as cb
from arcjobs.images import docker as dk

pytestmark = pytest.mark.docker


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def fresh_probes() -> Iterator[None]:
    """Each test asks the engine itself, not an answer cached by an earlier one."""
    for cached in (dk._client, dk._engine):
        cached.cache_clear()
    yield
    for cached in (dk._client, dk._engine):
        cached.cache_clear()


def test_engine_size_and_image_identity(docker_engine: str, sandbox_image: str) -> None:
    cpus, memory = docker("info", "--format", "{{.NCPU}} {{.MemTotal}}").split()
    assert dk.engine() == dk.Engine(cpus=int(cpus), memory_mb=int(memory) // 2**20)
    assert dk.image_digest(sandbox_image) == docker(
        "image", "inspect", "--format", "{{.Id}}", sandbox_image
    )
    assert dk.image_digest("arcjobs-nothing:0") is None
    assert dk.image_label(sandbox_image, "arcjobs.no-such-label") is None


def test_images_list_reads_the_engine(docker_engine: str, sandbox_image: str, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "arcjobs", "images", "list", "--json", "--data-root", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout) if r["image"] == "sandbox" and r["current"]]
    assert row["tag"] == __version__
    assert row["digest"] == docker("image", "inspect", "--format", "{{.Id}}", sandbox_image)
    assert row["size"].endswith(("MB", "GB")) and row["created"]
    assert row["recorded"] is False  # built by compose in this tier, not by `images build`


def test_containers_are_found_stopped_and_removed_by_name(
    docker_engine: str, sandbox_image: str
) -> None:
    """What the compose backend does to a container a launcher left: its state by label in
    one call, then `cancel` (stop, then remove) by its deterministic name."""
    name = f"arcjobs.sdk-test.{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--init", "--name", name, "-l", f"{cb.LABEL}.run=sdk-test",
        "--network", "none", "--entrypoint", "sleep", sandbox_image, "300",
    )  # fmt: skip
    try:
        assert cb._container_states()[name] == "running"
        started = time.monotonic()
        cb.ComposeBackend().cancel({"container": name, "pid": 2**22, "start_time": None})
        assert time.monotonic() - started < cb.STOP_GRACE_S  # stopped by SIGTERM, not the kill
        assert name not in cb._container_states()
        assert docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}") == ""
        cb._remove(name)  # already gone: nothing to do, nothing raised
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_an_unreachable_engine_is_one_line(
    docker_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    assert not dk.engine_reachable() and dk.image_digest("arcjobs-sandbox:0") is None
    with pytest.raises(dk.UserError) as e:
        dk.engine("start one")
    assert str(e.value).startswith("no Docker engine is reachable (") and "\n" not in str(e.value)
    assert str(e.value).endswith("; start one")
