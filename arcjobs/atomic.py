"""Atomic publication on a POSIX filesystem: write elsewhere, fsync, rename into place.

Every file or directory that another process may read while we write it goes through here,
so a kill at any moment leaves either the old version or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide it from container users
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` to disk before it is renamed into view."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def publish_dir(tmp: Path, dest: Path) -> None:
    """Make the finished directory `tmp` visible as `dest`, replacing any older `dest`.

    The old directory is first renamed aside (one rename), then `tmp` renamed in (another),
    so a reader sees the old tree, no tree, or the new tree — never a mixture.
    """
    fsync_tree(tmp)
    trash = None
    if dest.exists():
        trash = dest.with_name(f".trash-{dest.name}-{uuid.uuid4().hex[:8]}")
        os.rename(dest, trash)
    os.rename(tmp, dest)
    _fsync_dir(dest.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A fresh directory beside `dest` to fill; published as `dest` when the block ends
    normally, removed when it raises (a kill leaves only a dot-named sibling behind)."""
    dest = Path(dest).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        publish_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_tree(src: Path, dest_tmp: Path) -> None:
    """Copy the tree `src` to the new path `dest_tmp` with hard links (a copy where not possible).

    Used to reuse a published output in another run without duplicating its bytes: published
    outputs are never modified in place, so sharing inodes is safe.
    """

    def _link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest_tmp, copy_function=_link, symlinks=True)
