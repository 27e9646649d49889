"""Process-wide OS layers a worker sets up once, and the scratch directory it keeps clean.

Everything here is best effort and reported, never assumed: a network namespace only where
the kernel lets this user create one, uid 65534 only where that uid can still read the
Python installation (else every lazy import would fail and results would differ from a
machine where it can).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
from typing import Any

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def libc() -> Any:
    """The C library, for prctl and unshare; None where ctypes cannot load it."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def private_network(libc: Any) -> bool:
    """Move this process (and so every child) into an empty network namespace, if allowed."""
    if libc is None:
        return False
    if os.geteuid() == 0 and libc.unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    try:  # map our own ids, or files created in scratch would fail with EOVERFLOW
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        pass
    return True


def readable_by_others(roots: tuple[str, ...]) -> bool:
    """Whether uid 65534 could read the Python installation (else lazy imports would fail).

    Programs may only run as nobody when every directory on the way to the interpreter's
    libraries and the DSL is world-searchable; a pyenv under /root, say, is not.
    """
    for root in roots:
        path = root
        while True:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                return False
            if not mode & stat.S_IXOTH or (path == root and not mode & stat.S_IROTH):
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


def wipe(path: str) -> None:
    """Empty `path`, whatever permissions the program left on what it created there."""

    def unlock(func: Any, p: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, onerror=unlock)
        else:
            os.unlink(full)
