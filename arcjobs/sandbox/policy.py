"""The audit hook: it explains refusals; it is not what enforces them.

The boundary is the kernel's: Landlock, seccomp, rlimits and the rest, set up in the child
before the program is compiled (`arcjobs.sandbox.child`). Python's audit hooks are not a
sandbox: a program can reach past them (a C call that raises no event, memory corruption
through an allowed call). What the hook adds is a clear, deterministic `unsafe` status with a
message, the same on a laptop, in the container and on the cluster, for the attempts it
recognises, instead of whatever error the kernel's refusal turns into inside the program. A
program may catch the exception it raises; the violation is recorded anyway, written to the
result pipe the moment it happens, and decides the program's status.

It refuses what the kernel layers refuse, by the same rules: processes (fork, exec, spawn,
subprocess, system), signals to any process, sockets and DNS, ctypes, sqlite3 and the dbm
modules (they open files in C, unseen by the "open" event), any write, deletion or change of
a file, reading or listing anything outside what programs may read
(`arcjobs.sandbox.readable`), and the introspection (`gc.get_objects`, `get_referrers`,
`sys._current_frames`, swapping the hook's `__code__`) a program would need to reach the
hook itself. Its tables are bound into the hook when it is made: rebinding this module's
globals changes nothing for a hook already installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from arcjobs.sandbox.readable import Readable


class Violation(PermissionError):
    """Raised inside the program when it attempts something the policy refuses."""


ALWAYS_REFUSED = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
        "os.kill",
        "os.killpg",
        "os.setuid",
        "os.chroot",
        "subprocess.Popen",
        "pty.spawn",
        "signal.pthread_kill",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys._current_frames",
        "resource.setrlimit",
        "resource.prlimit",
        "os.symlink",
        "os.link",
        "shutil.chown",
        "os.chown",
        "webbrowser.open",
        "urllib.Request",
        # path-taking events that change the filesystem: nothing may, anywhere
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.rmdir",
        "os.chmod",
        "os.truncate",
        "os.utime",
        "os.chflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.move",
        "shutil.copyfile",
        "shutil.copytree",
    }
)
# sqlite3 opens its files in C, past the "open" event (the result cache is a sqlite file)
REFUSED_PREFIXES = (
    "socket.",
    "ctypes.",
    "_ctypes.",
    "ftplib.",
    "smtplib.",
    "http.client.",
    "sqlite3.",
)
# extension modules that open files in C and raise no event of their own when they do
REFUSED_IMPORTS = frozenset({"_dbm", "_gdbm"})
# events that read a directory: the path is their first argument (None: the working one)
LIST_EVENTS = frozenset({"os.listdir", "os.scandir"})
# the events programs raise most (`copy.deepcopy` alone calls `id` ~150 times in a typical
# corpus program), none of which the hook checks: let through before any other test, since
# every event costs a call of the hook
UNCHECKED = frozenset(
    {"builtins.id", "object.__getattr__", "exec", "compile", "marshal.loads", "sys._getframe"}
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def make_hook(
    allowed: Readable, record: Callable[[str], None], program_file: str
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook for a program that may read `allowed` and write nothing.

    `record` is called with a description of each violation before the exception is raised,
    so a program that swallows the exception is still known to have tried. Opening a file
    named `program_file` (the name the program is compiled under) is let through to the
    kernel: the compiler tries it to quote the line of a SyntaxError, and there is no such
    file to read. Every table the hook uses is a local of this call, out of the program's
    reach once installed.
    """
    unchecked, refused, prefixes = UNCHECKED, ALWAYS_REFUSED, REFUSED_PREFIXES
    refused_imports, list_events, write_flags = REFUSED_IMPORTS, LIST_EVENTS, _WRITE_FLAGS
    covers, abspath, fsdecode, basename = (
        allowed.covers,
        os.path.abspath,
        os.fsdecode,
        os.path.basename,
    )

    def refuse(what: str) -> None:
        record(what)
        raise Violation(f"sandbox policy: {what} is not allowed")

    def resolve(path: Any) -> str | None:
        """An absolute path, or None for a descriptor the process already holds."""
        if isinstance(path, int):
            return None
        try:
            return abspath(fsdecode(path))
        except (TypeError, ValueError):
            return "?"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in unchecked:
            return
        if event in refused or event.startswith(prefixes):
            refuse(event)
        elif event == "import" and args and args[0] in refused_imports:
            refuse(f"importing {args[0]}")
        elif event == "open":
            path = resolve(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            ):
                refuse(f"writing {path}")
            if not covers(path) and basename(path) != program_file:
                refuse(f"reading {path}")
        elif event in list_events:
            path = resolve("." if not args or args[0] is None else args[0])
            if path is not None and not covers(path):
                refuse(f"listing {path}")
        elif event == "object.__setattr__" and args and args[0] is hook:
            refuse("tampering with the sandbox hook")

    return hook


def install(hook: Callable[[str, tuple[Any, ...]], None]) -> None:
    """Install `hook` for the rest of this process's life: audit hooks cannot be removed."""
    sys.addaudithook(hook)
