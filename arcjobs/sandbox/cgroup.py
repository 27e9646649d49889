"""A pids cgroup per worker: the process limit that holds even for root.

RLIMIT_NPROC is not enforced for root, and counts every process of a uid machine-wide
otherwise. A pids cgroup bounds exactly one worker and everything it forks, so a fork bomb
that got past the audit hook stops at `pids.max` whoever runs the sandbox. It is created
where the caller may (root on the host; cgroup v1 `pids` hierarchy, or v2 when the parent
already delegates `pids`), is optional elsewhere (containers bring their own `pids_limit`),
and is emptied and removed by the pool when the worker ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

V1, V2 = "/sys/fs/cgroup/pids", "/sys/fs/cgroup"
PREFIX = "arcjobs-sandbox-"


def _own_base() -> str | None:
    """This process's pids cgroup directory (v1), or its v2 cgroup if it delegates pids."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(",") and os.path.isdir(V1):
            return V1 + path
    for line in lines:
        if line.startswith("0::"):
            base = V2 + line[3:]
            try:
                with open(os.path.join(base, "cgroup.subtree_control")) as f:
                    if "pids" in f.read().split():
                        return base
            except OSError:
                return None
    return None


def sweep(alive: Callable[[int], bool]) -> None:
    """Remove the empty cgroups of workers or pools that died without cleaning up."""
    base = _own_base()
    if base is None:
        return
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            pids = name[len(PREFIX) :].split("-")
            if (
                name.startswith(PREFIX)
                and all(p.isdigit() for p in pids)
                and not all(alive(int(p)) for p in pids)
            ):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(base, name))


def path_of(worker_pid: int) -> str | None:
    """Where `enter` puts the cgroup of a worker that this process started."""
    base = _own_base()
    return None if base is None else os.path.join(base, f"{PREFIX}{os.getpid()}-{worker_pid}")


def enter(limit: int) -> str | None:
    """Move this process into a new pids cgroup allowing `limit` tasks; its path, or None."""
    base = _own_base()
    if base is None:
        return None
    path = os.path.join(base, f"{PREFIX}{os.getppid()}-{os.getpid()}")  # pool's pid, ours
    try:
        os.mkdir(path)
    except OSError:
        return None
    try:
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(limit))
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(path)
        return None
    return path


def remove(path: str) -> None:
    """Kill whatever is still in the cgroup and delete it (after its worker has ended)."""
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            pass
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
