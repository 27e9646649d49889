"""Process-wide OS layers a worker sets up once for all its children: extra layers.

Everything here is best effort and reported, never assumed (the layers a run requires are
the kernel's, in `landlock` and `seccomp`): a network namespace only where the kernel lets
this user create one; uid 65534 only where the worker may switch uids and that uid can still
read the Python installation (else every lazy import would fail and results would differ
from a machine where it can).
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable
from typing import Any

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_DUMPABLE = 4
CAP_SETGID, CAP_SETUID = 6, 7


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
    try:  # map our own ids, so that a uid means the same inside as outside
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


def not_dumpable(libc: Any) -> bool:
    """Make this process (and so every child) undumpable: no core files, its /proc entries
    owned by root, and no ptrace by processes of its own uid."""
    return libc is not None and libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def can_switch_uid(libc: Any) -> bool:
    """Whether this process may set its uid and gid: root, with CAP_SETUID and CAP_SETGID
    (a container started with `--cap-drop ALL` is root without them)."""
    if os.geteuid() != 0 or libc is None:
        return False
    found = NoCapabilities(libc)
    wanted = (1 << CAP_SETUID) | (1 << CAP_SETGID)
    return found.capget(found.header, found.data) == 0 and found.data[0] & wanted == wanted


def readable_by_others(paths: Iterable[str]) -> bool:
    """Whether uid 65534 could read `paths` (else lazy imports would fail as that uid).

    Programs may only run as nobody when every directory on the way to each path is
    world-searchable and the path itself world-readable; a pyenv under /root, say, is not.
    """
    for target in paths:
        path = target
        while True:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                return False
            if not mode & stat.S_IXOTH and stat.S_ISDIR(mode):
                return False
            if path == target and not mode & stat.S_IROTH:
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


class NoCapabilities:
    """capset(2) to empty effective, permitted and inheritable sets, its arguments made once
    (by the worker): a root process that could not drop its uid, or one in a user namespace
    of its own, has capabilities until then."""

    def __init__(self, libc: Any) -> None:
        self.capset, self.capget = libc.capset, libc.capget
        self.header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
        self.data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; two words each

    def apply(self) -> bool:
        """True once this process has none."""
        return self.capset(self.header, self.data) == 0

    def none_left(self) -> bool:
        found = (ctypes.c_uint32 * 6)()
        return self.capget(self.header, found) == 0 and not any(found)
