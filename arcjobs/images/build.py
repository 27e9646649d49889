"""`arcjobs images build|list`: build the images through Docker Compose and record their digests.

Why through compose: compose.yaml already says how each image is built (Dockerfile, context,
base image argument) and tagged (`arcjobs-<name>:<version>`), so `images build` is exactly
`docker compose build <service>` with the project version and the base image filled in —
what a person typing the compose command gets too.

Each build's image id (the digest of its config, which every cache key of the compose backend
contains) is recorded in `<data-root>/images/docker.json`, beside the Apptainer conversions'
`index.json`: per image the current tag, digest, base image, build arguments and time, and the
digests it replaced. The engine stays the truth for cache keys (an image rebuilt by hand
changes them just the same); the record says which digest `arcjobs` built, when and from what,
and `images list` flags an image whose current digest it did not build.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from arcjobs import __version__, atomic
from arcjobs.errors import UserError
from arcjobs.images import IMAGES, docker_tag
from arcjobs.images import docker as dk

RECORDS = Path("images") / "docker.json"
HISTORY = 20  # earlier digests kept per image


@dataclass(frozen=True)
class Built:
    name: str
    tag: str
    digest: str
    seconds: float


def records_path(data_root: Path) -> Path:
    return Path(data_root) / RECORDS


def read_records(data_root: Path) -> dict[str, Any]:
    try:
        return json.loads(records_path(data_root).read_text()).get("images", {})
    except (OSError, ValueError):
        return {}


def build_command(
    compose_file: Path, name: str, build_args: dict[str, str], no_cache: bool = False
) -> list[str]:
    """`docker compose ... build [--no-cache] --build-arg K=V ... NAME`."""
    argv = [*dk.compose_command(), *dk.project_argv(compose_file), "build"]
    argv += ["--no-cache"] if no_cache else []
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, name]


def build(
    names: list[str],
    data_root: Path,
    build_args: dict[str, str] | None = None,
    compose_file: str | Path | None = None,
    no_cache: bool = False,
    echo: Callable[[str], None] = print,
    capture: bool = False,
) -> list[Built]:
    """Build `names` one after the other (each its own line of progress and failure), tagged
    with the project version, and record their digests. Build output goes to the terminal
    unless `capture` (then it appears only when a build fails)."""
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise UserError(f"unknown image {unknown[0]!r}; expected one of: {', '.join(IMAGES)}")
    file = dk.require_file(dk.compose_file(compose_file))
    dk.engine()
    env = {**os.environ, "ARCJOBS_VERSION": __version__}
    results = []
    for name in names:
        argv = build_command(file, name, build_args or {}, no_cache)
        args = " ".join(f"{k}={v}" for k, v in (build_args or {}).items())
        echo(f"{name}: building {docker_tag(name)}" + (f" with {args}" if args else ""))
        started = time.monotonic()
        done = subprocess.run(argv, env=env, cwd=file.parent, capture_output=capture, text=True)
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] if capture else []
            raise UserError(
                f"building {docker_tag(name)} failed (exit {done.returncode})"
                + (f": {tail[0][:300]}" if tail else "")
            )
        digest = dk.image_digest(docker_tag(name))
        if digest is None:
            raise UserError(f"{docker_tag(name)} is missing after its build")
        took = time.monotonic() - started
        record(data_root, name, digest, build_args or {}, took)
        echo(f"{name}: {docker_tag(name)} {digest[:19]} in {took:.1f}s")
        results.append(Built(name, docker_tag(name), digest, took))
    return results


def record(
    data_root: Path, name: str, digest: str, build_args: dict[str, str], seconds: float
) -> None:
    images = read_records(data_root)
    old = images.get(name, {})
    previous = [d for d in [old.get("digest"), *old.get("previous", [])] if d and d != digest]
    images[name] = {
        "tag": docker_tag(name),
        "digest": digest,
        "base_image": build_args.get("BASE_IMAGE", "(compose.yaml default)"),
        "build_args": build_args,
        "built": time.time(),
        "seconds": round(seconds, 1),
        "previous": previous[:HISTORY],
    }
    path = records_path(data_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, {"images": images})


def listing(data_root: Path) -> list[dict[str, Any]]:
    """Every arcjobs-{train,infer,sandbox} image the engine has, any version, newest first,
    with whether `images build` recorded its digest."""
    client = dk.client()
    try:
        images = client.images.list(filters={"reference": [f"arcjobs-{n}" for n in IMAGES]})
    except dk.api_errors() as e:
        raise UserError(f"listing the engine's images failed: {str(e)[:300]}") from None
    records = read_records(data_root)
    rows = []
    for img in sorted(images, key=lambda i: str(i.attrs.get("Created", "")), reverse=True):
        for tag in img.tags:
            repo, _, version = tag.rpartition(":")
            name = repo.removeprefix("arcjobs-")
            if name not in IMAGES:
                continue
            rec = records.get(name, {})
            rows.append(
                {
                    "image": name,
                    "tag": version,
                    "digest": img.id,
                    "created": _age(img.attrs.get("Created")),
                    "size": _size(img.attrs.get("Size", 0)),
                    "current": version == __version__,
                    "recorded": img.id == rec.get("digest") or img.id in rec.get("previous", []),
                    "base_image": rec.get("base_image", "") if img.id == rec.get("digest") else "",
                }
            )
    return rows


def _size(size: int) -> str:
    return f"{size / 1e9:.1f}GB" if size >= 1e9 else f"{size / 1e6:.0f}MB"


def _age(created: Any) -> str:
    """`3 hours ago` from an image's creation time (`2026-12-06T06:57:12.1234Z`, UTC)."""
    try:
        when = datetime.strptime(str(created)[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=timezone.utc
        )
    except ValueError:
        return ""
    seconds = max(0.0, time.time() - when.timestamp())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"
