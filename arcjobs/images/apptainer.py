"""Convert the Docker images to Apptainer `.sif` files in a shared image cache, once per digest.

Execute nodes of an HTCondor pool run Apptainer, not Docker, and read images from a shared
filesystem; so each built image becomes `<cache>/arcjobs-<name>-<digest hex>.sif`. The file
name carries the image digest, which makes conversion idempotent (a digest already in the
cache is never converted again, however often the command runs) and lets several versions
coexist while runs that use an older one finish. `<cache>/index.json` maps each image name
to its current digest and file: the condor backend reads it to fill `container_image` and to
key cached step outputs by the exact image.

The digest is the image's config blob's (`sha256:` of its config JSON), read from a `docker
save` archive on both paths:
- given an archive (`--archive`, Docker on another machine), from that archive;
- from the local Docker daemon, the image is first saved to an archive, and Apptainer
  converts that archive. `docker image inspect`'s Id cannot serve: under Docker's containerd
  image store (the default of fresh Docker 29 installs) it is the manifest's digest, not the
  config's, so the two paths would key one image twice. The Id is only recorded beside the
  digest, so that an unchanged image is not saved again to be found up to date.

Apptainer's scratch (`APPTAINER_TMPDIR`, and the saved archive) and its cache
(`APPTAINER_CACHEDIR`) go to a private directory on node-local storage ($TMPDIR, else /tmp;
`--tmpdir` to choose), removed afterwards: Apptainer's cache is private to one user and must
not be shared (Apptainer's "Build Environment" docs), which a shared image cache would do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
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


def _docker(tag: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise UserError(
            f"docker not found on PATH, so {tag} cannot be read from a Docker daemon; `docker "
            "save` it where it was built and pass --archive NAME=FILE.tar"
        )
    return docker


def docker_image_id(tag: str) -> str:
    """The image id (`sha256:...`) the local Docker daemon reports for `tag`: the config's
    digest under the classic store, the manifest's under the containerd one."""
    proc = subprocess.run(
        [_docker(tag), "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
    )
    image_id = proc.stdout.strip()
    if proc.returncode != 0 or not image_id.startswith("sha256:"):
        raise UserError(
            f"image {tag} is not in the local Docker daemon; build it first "
            f"(`docker compose build {tag.split(':')[0].removeprefix('arcjobs-')}`)"
        )
    return image_id


def docker_save(tag: str, archive: Path) -> None:
    """`docker save TAG -o ARCHIVE`: the same archive a user would copy to the cluster."""
    proc = subprocess.run(
        [_docker(tag), "save", "-o", str(archive), tag], capture_output=True, text=True
    )
    if proc.returncode != 0:
        why = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
        raise UserError(f"docker save {tag} failed: {why}")


def archive_digest(archive: Path) -> str:
    """The config digest of the single image in a `docker save` archive.

    `manifest.json` in the archive names the image's config blob (`<hex>.json` in the legacy
    layout, `blobs/sha256/<hex>` in the OCI one, which both of Docker's image stores write),
    so the digest is known without loading the archive anywhere.
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


def unconverted_sif(cache: Path, name: str) -> Path:
    """The path a plan names for image `name` before it is converted: one no conversion
    writes, so the missing image shows in the plan (and `run` refuses it)."""
    return Path(cache) / f"arcjobs-{name}-UNCONVERTED.sif"


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
    """Serialise index updates between converters running at once on the shared filesystem.

    The lock file is opened for writing, which an exclusive lock on NFS needs (the client
    turns flock into a POSIX write lock); so whoever creates it makes it group-writable, for
    the other users of a group's cache.
    """
    lock = cache / ".index.lock"
    try:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o664)
            os.fchmod(fd, 0o664)  # whatever the umask
        except FileExistsError:
            fd = os.open(lock, os.O_RDWR)
    except PermissionError:
        raise UserError(
            f"cannot open {lock} for writing, so the image index cannot be locked; its owner "
            f"can allow the cache's other users with `chmod g+w {lock}`"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _record(cache: Path, name: str, digest: str, path: Path, source: str, docker_id: str) -> None:
    with _locked(cache):
        images = read_index(cache)
        images[name] = {
            "digest": digest,
            "sif": path.name,
            "source": source,
            "docker_id": docker_id,  # the daemon's image id it was saved from; "" for archives
            "recorded": time.time(),
        }
        atomic.write_json(cache / INDEX, {"images": images})


def build_command(apptainer: str, target: Path, source: str) -> list[str]:
    """`apptainer build TARGET docker-archive:FILE`."""
    return [apptainer, "build", str(target), source]


def build_env(tmpdir: Path, cachedir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for prefix in ("APPTAINER", "SINGULARITY"):
        env[f"{prefix}_TMPDIR"] = str(tmpdir)
        env[f"{prefix}_CACHEDIR"] = str(cachedir)
    return env


@dataclass(frozen=True)
class _Source:
    """Where one image comes from: an archive given, or a tag of the local daemon with its
    image id. `digest` is known up front for an archive, and for a daemon image converted
    before under the same image id (`_known_digest`); otherwise it is saved to learn it."""

    name: str
    archive: Path | None
    digest: str | None
    tag: str = ""
    docker_id: str = ""

    @property
    def origin(self) -> str:
        return f"docker-archive:{self.archive}" if self.archive else f"docker-daemon:{self.tag}"


def _known_digest(cache: Path, name: str, docker_id: str) -> str | None:
    entry = read_index(cache).get(name) or {}
    if entry.get("docker_id") == docker_id and sif_path(cache, name, entry["digest"]).exists():
        return str(entry["digest"])
    return None


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

    Sources are all checked before anything is built (archives exist, tags are in the
    daemon, Apptainer is there if anything may need building), so a missing piece fails
    the command before a long conversion of the others. `tmpdir` is where the private
    scratch directory goes (default: $TMPDIR or /tmp); `cachedir` is Apptainer's cache
    (default: inside that scratch, discarded).
    """
    cache = Path(cache).absolute()
    archives, tags = archives or {}, tags or {}
    unknown = sorted(set(archives) - set(names))
    if unknown:
        raise UserError(f"--archive given for {', '.join(unknown)}, which is not being converted")
    sources = []
    for name in names:
        if name in archives:
            archive = Path(archives[name]).absolute()
            if not archive.is_file():
                raise UserError(f"--archive {name}={archive}: no such file")
            sources.append(_Source(name, archive, archive_digest(archive)))
        else:
            tag = tags.get(name, docker_tag(name))
            image_id = docker_image_id(tag)
            sources.append(_Source(name, None, _known_digest(cache, name, image_id), tag, image_id))
    todo = [s for s in sources if not s.digest or not sif_path(cache, s.name, s.digest).exists()]
    apptainer = find_apptainer() if todo else ""
    cache.mkdir(parents=True, exist_ok=True)
    base = Path(tmpdir or tempfile.gettempdir()).absolute()
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="arcjobs-apptainer-", dir=base))
    try:
        return [
            _convert_one(apptainer, src, cache, scratch, Path(cachedir or scratch / "cache"), echo)
            for src in sources
        ]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _convert_one(
    apptainer: str,
    src: _Source,
    cache: Path,
    scratch: Path,
    cachedir: Path,
    echo: Callable[[str], None],
) -> Conversion:
    started = time.monotonic()
    archive, digest = src.archive, src.digest
    if digest is None:
        archive = scratch / f"{src.name}.tar"
        echo(f"{src.name}: saving {src.tag} from the Docker daemon")
        docker_save(src.tag, archive)
        digest = archive_digest(archive)
    target = sif_path(cache, src.name, digest)
    todo = not target.exists()
    if todo:
        echo(f"{src.name}: converting {src.origin} ({digest[:19]}) → {target}")
        _build(apptainer, target, f"docker-archive:{archive}", scratch / "tmp", cachedir)
    if src.archive is None and archive is not None:
        archive.unlink(missing_ok=True)  # several GB: gone before the next image is saved
    _record(cache, src.name, digest, target, src.origin, src.docker_id)
    took = time.monotonic() - started
    echo(f"{src.name}: {'converted in ' + f'{took:.0f}s' if todo else 'up to date'}: {target}")
    return Conversion(src.name, digest, target, todo, took)


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
                f"apptainer build of {source} failed (exit {proc.returncode}); its output is "
                f"above (if it ran out of space in {tmpdir.parent}, choose another --tmpdir)"
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
