"""The kernel layers alone: workers started without the audit hook, attacked directly.

The audit hook normally explains these programs' refusals first (see the adversarial suite);
here it is off, to prove that the layers underneath refuse by themselves: seccomp refuses
processes, sockets and signals to the worker; Landlock refuses reads beyond the code imports
need and every write. Each test judges from outside as well: no process, file or connection
appears, and the worker that was attacked goes on serving. Real processes throughout;
bounds are small so nothing here can exhaust the shared machine.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

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


def run_jobs(codes: list[str], workers: int = 1) -> tuple[list[dict], Pool]:
    with Pool(workers, str(DSL_PATH), max_procs=16, audit=False) as pool:
        results = dict(pool.run([(i, job(c)) for i, c in enumerate(codes)]))
        return [results[i] for i in range(len(codes))], pool


def assert_benign(result: dict) -> None:
    assert result["status"] == "ok", result
    assert as_lists(result["outputs"]) == [benign_answer(GRID_IN)]


def refused(result: dict) -> None:
    """The program ran into a PermissionError it did not catch: a kernel refusal."""
    assert result["status"] == "runtime_error", result
    assert "PermissionError" in result["error"], result["error"]


def test_no_process_can_be_started(tmp_path: Path) -> None:
    before = leftovers()
    canary = tmp_path / "spawned"
    bomb = "import os\ndef transform(g):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n"
    escape = (
        "import os, time\ndef transform(g):\n    pid = os.fork()\n    if pid == 0:\n"
        "        os.setsid()\n        time.sleep(60)\n    return g\n"
    )
    # through _posixsubprocess.fork_exec, which raises no audit event of its own
    spawn = f"import subprocess\ndef transform(g):\n    subprocess.run(['/bin/sh', '-c', 'touch {canary}'])\n"
    (bombed, escaped, spawned, after), pool = run_jobs([bomb, escape, spawn, benign("fork")])
    assert pool.layers["audit_hook"] is False and pool.layers["seccomp"] is True
    assert bombed["status"] == "timeout", bombed  # every fork refused, the loop ran out
    refused(escaped)
    refused(spawned)
    assert_benign(after)
    assert leftovers() == before and not canary.exists()


def test_the_network_is_out_of_reach() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    code = f"import socket\ndef transform(g):\n    socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n    return g\n"
    try:
        (result,), _ = run_jobs([code])
        refused(result)
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_no_signal_reaches_the_worker_and_it_goes_on() -> None:
    """SIGKILL and SIGSTOP at the worker, by kill and by pidfd: all refused, so the worker
    serves the programs after them, with no replacement started."""
    attacks = [
        "import os, signal\ndef transform(g):\n    os.kill(os.getppid(), signal.SIGKILL)\n",
        "import os, signal\ndef transform(g):\n    os.kill(os.getppid(), signal.SIGSTOP)\n",
        "import os, signal\ndef transform(g):\n    os.killpg(os.getpgid(os.getppid()), signal.SIGSTOP)\n",
        "import os, signal\ndef transform(g):\n    fd = os.pidfd_open(os.getppid())\n    signal.pidfd_send_signal(fd, signal.SIGSTOP)\n",
    ]
    codes = [benign("before")] + attacks + [benign("after")]
    results, pool = run_jobs(codes)
    assert_benign(results[0])
    for result in results[1:-1]:
        refused(result)
    assert_benign(results[-1])
    assert pool.spawned == 1


def test_reads_beyond_imports_and_every_write_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "answers.json"
    secret.write_text("[[1]]")
    target = tmp_path / "written"
    attacks = [
        f"def transform(g):\n    return open({str(secret)!r}).read()\n",
        "import os\ndef transform(g):\n    return os.listdir('/')\n",
        f"def transform(g):\n    open({str(target)!r}, 'w').write('x')\n",
        "import os\ndef transform(g):\n    os.mkfifo('/tmp/arcjobs-fifo')\n",
        "def transform(g):\n    return open('/proc/self/root/etc/passwd').read()\n",
    ]
    results, _ = run_jobs(attacks)
    for result in results:
        refused(result)
    assert not target.exists() and not os.path.exists("/tmp/arcjobs-fifo")


def test_root_programs_run_as_nobody_when_the_interpreter_allows(tmp_path) -> None:
    """A root-owned 0755 directory: root could write into it, uid 65534 cannot."""
    target = tmp_path / "root-only"
    target.mkdir(mode=0o755)
    code = "import os\ndef transform(g):\n    return [[os.geteuid() % 10]]\n"
    (result,), pool = run_jobs([code])
    if pool.layers["uid"] == os.geteuid():
        pytest.skip("programs keep the caller's uid here (non-root, or Python not world-readable)")
    assert as_lists(result["outputs"]) == [[[65534 % 10]]]


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


def test_a_program_that_stops_itself_ends_at_its_deadline() -> None:
    code = "import os, signal\ndef transform(g):\n    os.kill(os.getpid(), signal.SIGSTOP)\n"
    started = time.monotonic()
    (stopped, after), _ = run_jobs([code, benign("stopped")])
    assert stopped["status"] == "timeout"
    assert_benign(after)
    assert time.monotonic() - started < 10
