"""Fixtures for the docker tier: a real engine, the local base image, the sandbox image.

Everything here drives the real `docker` and `docker compose` CLIs against a real engine —
the point of this tier is to prove what the containers actually enforce, which no mock can.

Without a reachable engine the tier is skipped, with the reason, on a developer machine; in CI
(env CI set to a true value) it fails instead, so a broken engine can never pass as "skipped".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import unavailable

from arcjobs import __version__

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
LOCAL_BASE = "arcjobs-base:bookworm"
# The image user's uid (Dockerfile.sandbox); compose runs the service as it by default.
IMAGE_UID = 10001
START = "start it with scripts/docker-up.sh"  # what the message suggests


def _run(cmd: Sequence[str], timeout: float, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The engine's server version; skip (or fail in CI) when there is none to talk to."""
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed", START)
    info = _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    if info.returncode != 0:
        unavailable(f"no Docker engine is reachable ({info.stderr.strip()[:200]})", START)
    compose = _run(["docker", "compose", "version", "--short"], timeout=30)
    if compose.returncode != 0:
        unavailable("Docker Compose v2 (`docker compose`) is not available", START)
    return info.stdout.strip()


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    """The base for image builds: $ARCJOBS_BASE_IMAGE, or the local Debian image (made if missing).

    Set ARCJOBS_BASE_IMAGE=python:3.11-slim where a registry is reachable to skip debootstrap.
    """
    explicit = os.environ.get("ARCJOBS_BASE_IMAGE")
    if explicit:
        return explicit
    made = _run([str(REPO / "scripts" / "make-base-image.sh")], timeout=900)
    assert made.returncode == 0, f"make-base-image.sh failed:\n{made.stderr[-3000:]}"
    return LOCAL_BASE


@dataclass(frozen=True)
class Compose:
    """`docker compose` on the repository's compose.yaml under a private project name.

    The project name keeps test containers apart from a developer's own and lets the
    teardown remove whatever a failed test left behind.
    """

    project: str

    def command(self, *args: str) -> list[str]:
        return [
            "docker",
            "compose",
            "--project-directory",
            str(REPO),
            "-f",
            str(COMPOSE_FILE),
            "-p",
            self.project,
            *args,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "ARCJOBS_VERSION": __version__, **extra}

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return _run(self.command(*args), timeout=timeout, env=self.env(**env), cwd=REPO)

    def build(self, service: str, base_image: str, timeout: float = 1200) -> str:
        """`docker compose build SERVICE` with the base as build arg; returns the image tag."""
        built = self.run(
            "build", "--build-arg", f"BASE_IMAGE={base_image}", service, timeout=timeout
        )
        assert built.returncode == 0, (
            f"docker compose build {service} failed:\n{built.stderr[-4000:]}"
        )
        tag = f"arcjobs-{service}:{__version__}"
        inspect = _run(["docker", "image", "inspect", tag], timeout=30)
        assert inspect.returncode == 0, f"{tag} missing after the build"
        return tag

    def sandbox(
        self, data_root: DataRoot, *cmd: str, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose run --rm -T sandbox CMD...` with `data_root` bound at /data."""
        return self.run(
            "run",
            "--rm",
            "-T",
            "sandbox",
            *cmd,
            timeout=timeout,
            ARCJOBS_DATA_ROOT=str(data_root.path),
            ARCJOBS_UID=str(data_root.uid),
            ARCJOBS_GID=str(data_root.gid),
            **env,
        )


@pytest.fixture(scope="session")
def compose(docker_engine: str) -> Iterator[Compose]:
    c = Compose(project=f"arcjobs-test-{uuid.uuid4().hex[:8]}")
    yield c
    c.run("down", "--remove-orphans", "--timeout", "5", timeout=120)


@pytest.fixture(scope="session")
def sandbox_image(compose: Compose, base_image: str) -> str:
    """Build the sandbox image the way users do: `docker compose build` with the base as arg."""
    built = compose.run("build", "--build-arg", f"BASE_IMAGE={base_image}", "sandbox", timeout=1200)
    assert built.returncode == 0, f"docker compose build sandbox failed:\n{built.stderr[-4000:]}"
    tag = f"arcjobs-sandbox:{__version__}"
    inspect = _run(["docker", "image", "inspect", tag], timeout=30)
    assert inspect.returncode == 0, f"{tag} missing after the build"
    return tag


@dataclass(frozen=True)
class DataRoot:
    """A host directory to bind at /data, and the non-root uid:gid the container runs as.

    Ownership: run as an ordinary user, the container takes that user's uid so that what it
    writes is owned by (and cleaned up by) the user. Run as root (CI), the container keeps the
    image's unprivileged uid 10001 — never 0 — and the directory is made world-writable; it is
    a private per-test tmp directory, so that grants nothing to anyone else.
    """

    path: Path
    uid: int
    gid: int


@pytest.fixture
def data_root(tmp_path: Path) -> DataRoot:
    path = tmp_path / "data"
    path.mkdir()
    if os.getuid() == 0:
        path.chmod(0o777)
        return DataRoot(path, IMAGE_UID, IMAGE_UID)
    return DataRoot(path, os.getuid(), os.getgid())
