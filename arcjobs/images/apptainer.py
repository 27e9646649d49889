"""Convert the Docker images to Apptainer `.sif` files in a shared image cache, once per digest.

Execute nodes of an HTCondor pool run Apptainer, not Docker, and read images from a shared
filesystem; so each built image becomes `<cache>/arcjobs-<name>-<digest hex>.sif`. The file
name carries the image digest, which makes conversion idempotent (a digest already in the
cache is never converted again, however often the command runs) and lets several versions
coexist while runs that use an older one finish. `<cache>/index.json` maps each image name
to its current digest and file: the condor backend reads it to fill `container_image` and to
key cached step outputs by the exact image.

The source is the local Docker daemon (`docker-daemon:arcjobs-train:0.1.0`) or, when Docker
runs on another machine, a `docker save` archive (`docker-archive:train.tar`). Apptainer's
temporary and cache directories are set explicitly (`APPTAINER_TMPDIR`, `APPTAINER_CACHEDIR`)
because their defaults, /tmp and ~/.apptainer, are small or quota-limited on cluster login
nodes and a multi-GB layer unpack there fails half-way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcjobs import atomic
from arcjobs.errors import UserError
from arcjobs.images import docker_tag

INDEX = "index.json"


@dataclass(frozen=True)
class Sif:
    """One converted image: what the condor backend needs to run it and key its outputs."""

    name: str
    digest: str  # sha256:<hex> of the Docker image it was built from
    path: Path


@dataclass(frozen=True)
class Conversion:
    name: str
    digest: str
    path: Path
    converted: bool  # False: this digest was already in the cache
    seconds: float


def find_apptainer() -> str:
    """The Apptainer executable (SingularityCE's `singularity` accepted too), or one clear line."""
    for exe in ("apptainer", "singularity"):
        found = shutil.which(exe)
        if found:
            return found
    raise UserError(
        "apptainer not found on PATH; install Apptainer (https://apptainer.org/docs/admin/"
        "main/installation.html) or run `arcjobs images apptainer` on a machine that has it"
    )


def docker_digest(tag: str) -> str:
    """The image id (`sha256:...`) the local Docker daemon has for `tag`."""
    docker = shutil.which("docker")
    if docker is None:
        raise UserError(
            f"docker not found on PATH, so {tag} cannot be read from a Docker daemon; `docker "
            "save` it where it was built and pass --archive NAME=FILE.tar"
        )
    proc = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
    )
    digest = proc.stdout.strip()
    if proc.returncode != 0 or not digest.startswith("sha256:"):
        raise UserError(
            f"image {tag} is not in the local Docker daemon; build it first "
            f"(`docker compose build {tag.split(':')[0].removeprefix('arcjobs-')}`)"
        )
    return digest


def archive_digest(archive: Path) -> str:
    """The image id of the single image in a `docker save` archive (its config blob's hash).

    Docker's image id is the sha256 of the image config, and `manifest.json` in the archive
    names that config file (`<hex>.json` in the legacy layout, `blobs/sha256/<hex>` in the
    OCI one), so the digest is known without loading the archive anywhere.
    """
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else None
    except (OSError, tarfile.TarError, KeyError, ValueError) as e:
        raise UserError(f"{archive}: not a `docker save` archive ({e})") from None
    if not isinstance(manifest, list) or len(manifest) != 1:
        count = len(manifest) if isinstance(manifest, list) else 0
        raise UserError(f"{archive}: expected exactly one image in the archive, found {count}")
    hexdigest = Path(manifest[0]["Config"]).name.removesuffix(".json")
    return f"sha256:{hexdigest}"


def sif_path(cache: Path, name: str, digest: str) -> Path:
    return Path(cache) / f"arcjobs-{name}-{digest.removeprefix('sha256:')}.sif"


def read_index(cache: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(cache) / INDEX).read_text()).get("images", {})
    except (OSError, ValueError):
        return {}


def lookup(cache: Path, name: str) -> Sif | None:
    """The current `.sif` of image `name` in `cache`, if it was converted and is still there."""
    entry = read_index(cache).get(name)
    if not entry:
        return None
    path = Path(cache) / entry["sif"]
    return Sif(name, entry["digest"], path) if path.exists() else None


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Serialise index updates between converters running at once on the shared filesystem."""
    fd = os.open(cache / ".index.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _record(cache: Path, name: str, digest: str, path: Path, source: str) -> None:
    with _locked(cache):
        images = read_index(cache)
        images[name] = {
            "digest": digest,
            "sif": path.name,
            "source": source,
            "recorded": time.time(),
        }
        atomic.write_json(cache / INDEX, {"images": images})


def build_command(apptainer: str, target: Path, source: str) -> list[str]:
    """`apptainer build TARGET SOURCE`; SOURCE is docker-daemon:TAG or docker-archive:FILE."""
    return [apptainer, "build", str(target), source]


def build_env(tmpdir: Path, cachedir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for prefix in ("APPTAINER", "SINGULARITY"):
        env[f"{prefix}_TMPDIR"] = str(tmpdir)
        env[f"{prefix}_CACHEDIR"] = str(cachedir)
    return env


def convert(
    names: list[str],
    cache: Path,
    archives: dict[str, Path] | None = None,
    tmpdir: Path | None = None,
    cachedir: Path | None = None,
    tags: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[Conversion]:
    """Make sure `cache` holds a `.sif` of each image's current digest; convert what is missing.

    Digests are all resolved before anything is built, so a missing image or archive fails
    the command before a long conversion of the others starts.
    """
    cache = Path(cache).absolute()
    archives, tags = archives or {}, tags or {}
    unknown = sorted(set(archives) - set(names))
    if unknown:
        raise UserError(f"--archive given for {', '.join(unknown)}, which is not being converted")
    sources: dict[str, tuple[str, str]] = {}
    for name in names:
        if name in archives:
            archive = Path(archives[name]).absolute()
            if not archive.is_file():
                raise UserError(f"--archive {name}={archive}: no such file")
            sources[name] = (archive_digest(archive), f"docker-archive:{archive}")
        else:
            tag = tags.get(name, docker_tag(name))
            sources[name] = (docker_digest(tag), f"docker-daemon:{tag}")
    todo = [n for n in names if not sif_path(cache, n, sources[n][0]).exists()]
    apptainer = find_apptainer() if todo else ""
    cache.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tmpdir or cache / ".apptainer-tmp").absolute()
    cachedir = Path(cachedir or cache / ".apptainer-cache").absolute()
    results = []
    for name in names:
        digest, source = sources[name]
        target = sif_path(cache, name, digest)
        started = time.monotonic()
        if name in todo:
            echo(f"{name}: converting {source} ({digest[:19]}) → {target}")
            _build(apptainer, target, source, tmpdir, cachedir)
        _record(cache, name, digest, target, source)
        took = time.monotonic() - started
        results.append(Conversion(name, digest, target, name in todo, took))
        echo(
            f"{name}: {'converted in ' + f'{took:.0f}s' if name in todo else 'up to date'}: "
            f"{target}"
        )
    return results


def _build(apptainer: str, target: Path, source: str, tmpdir: Path, cachedir: Path) -> None:
    """Build into a private name beside `target`, then rename: a reader never sees half a .sif."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    cachedir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    part.unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            build_command(apptainer, part, source), env=build_env(tmpdir, cachedir)
        )
        if proc.returncode != 0 or not part.exists():
            raise UserError(
                f"apptainer build of {source} failed (exit {proc.returncode}); its output is above"
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
