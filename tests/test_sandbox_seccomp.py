"""The seccomp filters, installed in real forked processes and tried with raw syscalls.

Each refused syscall is called with arguments that are invalid for it (every one -1), so a
process without the filter gets EINVAL, EFAULT, EBADF or the like and changes nothing, while
one with it gets EPERM before the kernel looks at them. The syscall numbers are checked
against the kernel headers where they are installed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sandbox_helpers import in_child

from arcjobs.sandbox import seccomp

pytestmark = pytest.mark.unit

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}
# a syscall whose all -1 arguments would still do something: called another way
SPECIAL_ARGS = {
    "msgget": (0x7A7A7A7A, 0),
    "shmget": (0x7A7A7A7A, 1, 0),
    "semget": (0x7A7A7A7A, 1, 0),
}
NOT_CALLED = {"vfork"}  # shares the caller's memory until it exits: not from Python


def install_both() -> None:
    assert LIBC.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs
    seccomp.install(seccomp.Filter.worker().for_pid(0), LIBC)
    seccomp.install(seccomp.Filter.child().for_pid(os.getpid()), LIBC)


def call(name: str) -> int:
    """errno of the syscall (0 if it succeeded)."""
    number = seccomp.ARCHES[platform.machine()][1][name]
    args = SPECIAL_ARGS.get(name, (-1,) * 6)
    caller = os.getpid()
    ctypes.set_errno(0)
    result = LIBC.syscall(number, *[ctypes.c_long(a) for a in args])
    if os.getpid() != caller:  # a process creation got through: the new one leaves at once
        os._exit(0)
    return ctypes.get_errno() if result < 0 else 0


@pytest.mark.skipif(platform.machine() not in HEADERS, reason="no filter for this architecture")
def test_every_refused_syscall_gets_eperm_and_the_rest_still_work() -> None:
    names = sorted(
        n
        for n in {*seccomp.WORKER_REFUSED, *seccomp.CHILD_REFUSED}
        if n in seccomp.ARCHES[platform.machine()][1] and n not in NOT_CALLED
    )

    def body() -> dict:
        install_both()
        return {name: call(name) for name in names} | {"getpid": LIBC.syscall(39) > 0}

    got = in_child(body)
    assert got.pop("getpid") is True
    wrong = {n: errno.errorcode.get(e, e) for n, e in got.items() if e != errno.EPERM}
    assert not wrong, f"not refused with EPERM: {wrong}"
    assert len(got) >= 100


def test_only_the_process_itself_may_be_signalled_or_limited() -> None:
    import fcntl
    import resource
    import threading

    def body() -> dict:
        install_both()
        out: dict[str, str] = {}

        def attempt(name: str, fn: Callable[[], Any]) -> None:
            try:
                fn()
                out[name] = "ok"
            except OSError as e:
                out[name] = errno.errorcode[e.errno]

        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        attempt("kill self", lambda: os.kill(os.getpid(), signal.SIGUSR1))
        attempt("raise", lambda: signal.raise_signal(signal.SIGUSR1))
        attempt("kill parent", lambda: os.kill(os.getppid(), 0))
        attempt("kill group", lambda: os.kill(0, 0))
        attempt("kill all", lambda: os.kill(-1, 0))
        attempt("pidfd parent", lambda: os.pidfd_open(os.getppid()))
        attempt("prlimit self", lambda: resource.prlimit(0, resource.RLIMIT_NOFILE))
        attempt("prlimit parent", lambda: resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE))
        attempt("fork", os.fork)
        r, _ = os.pipe()
        attempt("fcntl getfl", lambda: fcntl.fcntl(r, fcntl.F_GETFL))
        attempt("fcntl setown", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, os.getppid()))
        ran: list[int] = []
        thread = threading.Thread(target=lambda: ran.append(1))
        attempt("thread", thread.start)
        thread.join()
        out["thread ran"] = str(ran)
        number = seccomp.ARCHES[platform.machine()][1]["clone3"]
        ctypes.set_errno(0)
        LIBC.syscall(number, None, 0)
        out["clone3"] = errno.errorcode[ctypes.get_errno()]
        return out

    assert in_child(body) == {
        "kill self": "ok",
        "raise": "ok",
        "kill parent": "EPERM",
        "kill group": "EPERM",
        "kill all": "EPERM",
        "pidfd parent": "EPERM",
        "prlimit self": "ok",
        "prlimit parent": "EPERM",
        "fork": "EPERM",
        "fcntl getfl": "ok",
        "fcntl setown": "EPERM",
        "thread": "ok",
        "thread ran": "[1]",
        "clone3": "ENOSYS",
    }


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 is an x86_64 ABI")
def test_a_syscall_of_another_abi_kills_the_process() -> None:
    def body() -> str:
        install_both()
        LIBC.syscall(seccomp.X32_SYSCALL_BIT | 39)  # getpid, as x32 numbers it
        return "survived"

    assert in_child(body) == ["signal", signal.SIGSYS]


def test_refusing_names_a_syscall_and_optionally_its_first_argument() -> None:
    def body() -> list:
        assert LIBC.prctl(38, 1, 0, 0, 0) == 0
        refusing = seccomp.Filter.refusing(
            {"landlock_create_ruleset": errno.ENOSYS, ("prctl", 22): errno.EINVAL}
        )
        seccomp.install(refusing.for_pid(0), LIBC)
        ctypes.set_errno(0)
        landlock = LIBC.syscall(444, None, 0, 1)
        landlock_errno = ctypes.get_errno()
        other_prctl = LIBC.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS: let through
        return [landlock, landlock_errno, other_prctl, LIBC.prctl(22, 2, None, 0, 0)]

    assert in_child(body) == [-1, errno.ENOSYS, 1, -1]


@pytest.mark.parametrize("machine", sorted(HEADERS))
def test_syscall_numbers_match_the_kernel_headers(machine: str) -> None:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    defined = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text())
    }
    table = seccomp.ARCHES[machine][1]
    compared = {name: number for name, number in table.items() if name in defined}
    assert compared == {name: defined[name] for name in compared}
    # the headers may be older than the newest syscalls; everything older must be there
    assert {name for name, number in table.items() if number < 424} <= set(defined)


def test_the_filters_fit_and_stay_short() -> None:
    """Every child installs its own filter: ~0.5 µs of kernel time per instruction here."""
    for machine in seccomp.ARCHES:
        assert len(seccomp.Filter.child(machine)) < 64
        assert len(seccomp.Filter.worker(machine)) < 256
    with pytest.raises(seccomp.Unsupported):
        seccomp.Filter.worker("riscv64")


def test_every_syscall_of_the_tables_is_in_one_filter_and_only_one() -> None:
    listed = [*seccomp.WORKER_REFUSED, *seccomp.CHILD_REFUSED, *seccomp.CHILD_SPECIAL, "fcntl"]
    assert len(listed) == len(set(listed))
    for machine, (_, table, _) in seccomp.ARCHES.items():
        assert set(table) <= set(listed), machine
    assert set(listed) <= {n for _, table, _ in seccomp.ARCHES.values() for n in table}
