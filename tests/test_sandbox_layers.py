"""The OS layers alone: workers started without the audit hook, attacked directly.

The audit hook normally stops these programs first (see the adversarial suite); here it is
off, to prove that the limits underneath hold by themselves: a fork bomb stays bounded and
is killed, an escaped `setsid` child is reaped, the network namespace has no route, and a
program that kills its own worker costs only its own result. Real processes throughout;
bounds are small so nothing here can exhaust the shared machine.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from sandbox_helpers import GRID_IN, as_lists, benign, benign_answer, leftovers

from arcjobs.sandbox import Limits
from arcjobs.sandbox.dsl import DSL_PATH
from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.pool import Pool

pytestmark = pytest.mark.unit

LIMITS = Limits(timeout_s=1.0, memory_mb=128, max_procs=16).to_dict()


def job(code: str) -> dict:
    return {"code": code, "inputs": Packed.of([GRID_IN]), "seed": 0, "limits": LIMITS}


def run_jobs(codes: list[str], workers: int = 1) -> tuple[list[dict], dict]:
    with Pool(workers, str(DSL_PATH), max_procs=16, audit=False) as pool:
        results = dict(pool.run([(i, job(c)) for i, c in enumerate(codes)]))
        return [results[i] for i in range(len(codes))], pool.layers


def assert_benign(result: dict) -> None:
    assert result["status"] == "ok", result
    assert as_lists(result["outputs"]) == [benign_answer(GRID_IN)]


def test_fork_bomb_is_bounded_and_killed() -> None:
    before = leftovers()
    bomb = "import os\ndef transform(g):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n"
    (bombed, after), layers = run_jobs([bomb, benign("fork bomb")])
    assert layers["audit_hook"] is False
    assert layers["pids_cgroup"] or layers["uid"] != 0, "no process limit could be set"
    assert bombed["status"] == "timeout", bombed  # the worker survived it: no retry, no crash
    assert_benign(after)
    assert leftovers() == before


def test_escaped_setsid_child_is_reaped() -> None:
    code = (
        "import os, time\ndef transform(g):\n    pid = os.fork()\n    if pid == 0:\n"
        "        os.setsid()\n        if os.fork() == 0:\n            time.sleep(60)\n        os._exit(0)\n"
        "    raise RuntimeError(f'escapee {pid}')\n"
    )
    (escaped, after), _ = run_jobs([code, benign("escapee")])
    assert escaped["status"] == "runtime_error"
    pid = int(re.search(r"escapee (\d+)", escaped["error"]).group(1))
    assert_benign(after)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert leftovers()["processes"] == set()


def test_network_namespace_has_no_route_to_the_host() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    code = f"import socket\ndef transform(g):\n    socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n    return g\n"
    try:
        (result,), layers = run_jobs([code])
        if not layers["network_namespace"]:
            pytest.skip("this kernel refuses unprivileged network namespaces")
        assert result["status"] == "runtime_error", result
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_a_program_that_kills_its_worker_loses_only_its_own_result() -> None:
    killer = "import os, signal\ndef transform(g):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
    codes = (
        [benign(f"before {i}") for i in range(3)]
        + [killer]
        + [benign(f"after {i}") for i in range(3)]
    )
    results, _ = run_jobs(codes, workers=2)
    assert results[3]["status"] == "crash" and "worker died" in results[3]["error"]
    for i in (0, 1, 2, 4, 5, 6):
        assert_benign(results[i])


def test_root_programs_run_as_nobody_when_the_interpreter_allows(tmp_path) -> None:
    """A root-owned 0755 directory: root could write into it, uid 65534 cannot."""
    target = tmp_path / "root-only"
    target.mkdir(mode=0o755)
    probe = target / "probe"
    code = f"import os\ndef transform(g):\n    open({str(probe)!r}, 'w')\n    return g\n"
    (result,), layers = run_jobs([code])
    if layers["uid"] == os.geteuid():
        pytest.skip("programs keep the caller's uid here (non-root, or Python not world-readable)")
    assert result["status"] == "runtime_error" and "PermissionError" in result["error"]
    assert not probe.exists()


def test_a_dsl_that_cannot_load_stops_the_run_with_its_error(tmp_path) -> None:
    """Not a program's fault, so not a status: the run stops, naming the cause, leaving nothing."""
    from sandbox_helpers import tiny_task

    from arcjobs.sandbox import Program, execute
    from arcjobs.sandbox.pool import SandboxError

    broken = tmp_path / "common.py"
    broken.write_text("raise ImportError('this DSL is broken')\n")
    before = leftovers()
    with pytest.raises(SandboxError, match="this DSL is broken"):
        list(
            execute(
                [Program("tiny", 0, benign("x"))], {"tiny": tiny_task()}, workers=1, dsl_path=broken
            )
        )
    assert leftovers() == before
