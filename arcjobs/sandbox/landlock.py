"""Landlock: the kernel's own limits on what a program's process may touch in the filesystem.

A worker builds one ruleset (`Ruleset.build`) from what programs may read
(`arcjobs.sandbox.readable`); each child enters it with `restrict` after fork, before the
program is compiled. Landlock needs no privilege and works inside containers; once a process
is restricted, nothing it does can lift the restriction, and every process it could start
would inherit it. With the ruleset in force:

- files and directories may be read only within the readable set, and executed nowhere;
- nothing may be written, created, removed, renamed, linked or truncated anywhere, and no
  device node made (ABI 1-3); no ioctl on devices opened from now on (ABI 5);
- no TCP port may be bound or connected to (ABI 4);
- no signal may reach a process outside the child's own domain, and no abstract unix socket
  outside it may be connected to (ABI 6): neither the worker nor the executor, nor another
  program's process.

Descriptors opened before `restrict` keep their access: a child holds only its job and report
pipes and /dev/null. Each right is used only where the kernel's ABI knows it (`abi`), and
`Ruleset.layers` says which were, for the isolation report.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from typing import Any

from arcjobs.sandbox.readable import Readable

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same on every architecture
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
# remove dir/file, make char/dir/reg/sock/fifo/block/sym: bits 4-12
FS_ABI1 = (1 << 13) - 1
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi(libc: Any | None = None) -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is missing or disabled."""
    libc = libc or _libc()
    version = libc.syscall(CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)
    return max(0, int(version))


def handled_fs(version: int) -> int:
    """Every filesystem right ABI `version` knows: all of them are refused unless granted."""
    rights = FS_ABI1
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


@dataclass(frozen=True)
class Ruleset:
    """A built ruleset: its descriptor (inherited by every child) and the ABI it used."""

    fd: int
    abi: int

    @classmethod
    def build(cls, allowed: Readable, libc: Any | None = None) -> Ruleset:
        """Read-only access to `allowed`, nothing else; OSError where Landlock is missing."""
        libc = libc or _libc()
        version = abi(libc)
        if version < 1:
            raise OSError("Landlock is not available in this kernel (or is disabled)")
        attr = struct.pack("=Q", handled_fs(version))
        if version >= 4:
            attr += struct.pack("=Q", NET_BIND_TCP | NET_CONNECT_TCP)
        if version >= 6:
            attr += struct.pack("=Q", SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
        buffer = ctypes.create_string_buffer(attr, len(attr))
        fd = libc.syscall(CREATE_RULESET, buffer, len(attr), 0)
        if fd < 0:
            raise _error("landlock_create_ruleset")
        try:
            for path in allowed.dirs:
                _add(libc, fd, path, READ_FILE | READ_DIR)
            for path in allowed.files:
                _add(libc, fd, path, READ_FILE)
        except BaseException:
            os.close(fd)
            raise
        return cls(int(fd), version)

    def layers(self) -> dict[str, Any]:
        """What this ruleset enforces besides the filesystem, by ABI, for the isolation
        report (whether it is in force at all, a probe child says)."""
        return {
            "landlock_abi": self.abi,
            "landlock_tcp": self.abi >= 4,
            "landlock_scoped_signals": self.abi >= 6,
        }

    def restrict(self, libc: Any) -> None:
        """Enter the ruleset (no_new_privs must be set) and close its descriptor."""
        try:
            if libc.syscall(RESTRICT_SELF, self.fd, 0) != 0:
                raise _error("landlock_restrict_self")
        finally:
            os.close(self.fd)


def _add(libc: Any, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # gone since the set was made: nothing there to read
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        if libc.syscall(ADD_RULE, ruleset, RULE_PATH_BENEATH, attr, 0) != 0:
            raise _error(f"landlock_add_rule {path}")
    finally:
        os.close(fd)


def _error(what: str) -> OSError:
    number = ctypes.get_errno()
    return OSError(number, f"{what}: {os.strerror(number)}")
