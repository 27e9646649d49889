"""Shared pieces of the sandbox tests: a tiny task and a benign program with a known answer."""

from __future__ import annotations

import errno
import glob
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from helpers import ROOT

from arcjobs.arc.tasks import Task

GRID_IN = [[2, 0, 0], [0, 2, 0], [1, 0, 2]]
GRID_TEST = [[0, 2], [2, 1]]


def tiny_task(task_id: str = "tiny") -> Task:
    """One train pair and one test input; outputs are the benign program's answers."""
    return Task(
        task_id,
        train=[(np.array(GRID_IN), np.array(benign_answer(GRID_IN)))],
        test_inputs=[np.array(GRID_TEST)],
        test_outputs=[np.array(benign_answer(GRID_TEST))],
    )


def benign(tag: str) -> str:
    """A program that uses the DSL, numpy and builtins; `tag` makes each copy a distinct source
    (the executor runs identical sources only once, and each case needs its own run)."""
    return f"""from common import *
import numpy as np
# after: {tag}
def transform(input_grid):
    out = np.where(input_grid == Color.RED, Color.BLUE, input_grid)
    out = np.rot90(out)
    objects = find_connected_components(out, background=Color.BLACK, monochromatic=True)
    out[0, 0] = min(9, len(objects) + sum([0, 0]) + abs(-0))
    return out
"""


def benign_answer(grid: list[list[int]]) -> list[list[int]]:
    """What `benign` must return, computed without the DSL (components of 4-connectivity)."""
    from scipy import ndimage

    g = np.array(grid)
    out = np.rot90(np.where(g == 2, 1, g))
    count = 0
    for color in range(1, 10):
        count += ndimage.label(out == color)[1]
    out = out.copy()
    out[0, 0] = min(9, count)
    return out.tolist()


def descendants(pid: int | None = None) -> set[int]:
    """Every live descendant of `pid` (default: this process), from /proc children lists."""
    found: set[int] = set()
    todo = [pid or os.getpid()]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = {int(k) for k in f.read().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def leftovers() -> dict[str, object]:
    """What a finished run must not leave behind: processes, pool temp dirs, cgroups, fds.

    Temp dirs and cgroups carry the pool owner's pid, so other sessions' runs don't count.
    """
    mine = f"arcjobs-sandbox-{os.getpid()}-*"
    return {
        "processes": descendants(),
        "tmp": sorted(glob.glob(os.path.join(tempfile.gettempdir(), mine))),
        "cgroups": sorted(glob.glob(f"/sys/fs/cgroup/pids/**/{mine}", recursive=True)),
        "fds": sorted(os.listdir("/proc/self/fd")),
    }


def as_lists(packed) -> list:
    """A `grids.Packed` as nested lists of ints (None where there is no grid)."""
    return [None if v is None else v.tolist() for v in packed.views()]


def in_child(body: Callable[[], Any]) -> Any:
    """Run `body` in a forked child (its own session, no terminal) and return what it
    returned (JSON), or ("signal", N) if the child was killed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            os.write(w, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ["signal", os.WTERMSIG(status)]
    return json.loads(data)


WITHOUT = {
    "landlock": {"landlock_create_ruleset": errno.ENOSYS},
    "seccomp": {("prctl", 22): errno.EINVAL},
}
WRAPPER = """
import ctypes, errno, os, sys
from arcjobs.sandbox.seccomp import Filter, install
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
refused = {tuple(k) if isinstance(k, list) else k: v for k, v in %s}
install(Filter.refusing(refused).for_pid(0), libc)
os.execv(sys.executable, [sys.executable, "-m", "arcjobs", *sys.argv[1:]])
"""


def run_without(
    layers: str, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`arcjobs ARGS` on a kernel without `layers` ("landlock", "seccomp" or "both"): a
    wrapper installs a seccomp filter of its own that answers landlock_create_ruleset with
    ENOSYS (what a kernel built without Landlock says) and prctl(PR_SET_SECCOMP) with EINVAL
    (a kernel without seccomp filters), then execs `arcjobs`."""
    refused = {**WITHOUT["landlock"], **WITHOUT["seccomp"]} if layers == "both" else WITHOUT[layers]
    pairs = [[list(k) if isinstance(k, tuple) else k, v] for k, v in refused.items()]
    return subprocess.run(
        [sys.executable, "-c", WRAPPER % json.dumps(pairs), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
