"""How a program's end becomes its status: the child's report, checked, or its exit.

A child that reported is judged by its report, which is untrusted bytes: only the known
statuses and well-formed grids pass (`checked`). One that did not is judged by how it ended
(`from_exit`): a policy violation, the wall-clock deadline, the CPU limit, the memory limit,
a signal or an exit code. Messages contain nothing machine-specific, so the same program
gives the same bytes on every machine.
"""

from __future__ import annotations

import os
import signal
from typing import Any

STATUSES = ("ok", "syntax_error", "runtime_error", "timeout", "memory", "invalid_output")


def checked(result: Any, n_inputs: int) -> dict[str, Any]:
    """The child's result if it is well formed, else a crash: its bytes are untrusted."""
    if not isinstance(result, dict) or result.get("status") not in STATUSES:
        return {
            "status": "crash",
            "error": "malformed result from the program's process",
            "outputs": None,
        }
    outputs = result.get("outputs")  # a `Packed` as decoded from the frame, or None
    if outputs is not None and not outputs.valid(n_inputs):
        return {
            "status": "crash",
            "error": "malformed outputs from the program's process",
            "outputs": None,
        }
    error = result.get("error")
    return {
        "status": result["status"],
        "error": None if error is None else str(error)[:300],
        "outputs": outputs,
    }


def from_exit(
    job: dict[str, Any],
    violation: str | None,
    result: Any,
    timed_out: bool,
    status: int,
    usage: Any,
    cpu: float,
) -> dict[str, Any]:
    """The status of a finished child: a policy violation, the deadline, its checked report,
    or — when it did not report — the signal or exit code it ended with. `cpu` is the CPU
    time of the child from its job on."""
    lim = job["limits"]
    n = len(job["inputs"])
    # one message whichever limit (wall clock or RLIMIT_CPU) struck first: which one does
    # depends on the machine, and executions must be the same bytes everywhere
    too_slow = f"exceeded the {lim['timeout_s']}s time limit"
    if violation is not None:
        return {"status": "unsafe", "error": violation, "outputs": None}
    if timed_out:
        return {"status": "timeout", "error": too_slow, "outputs": None}
    if result is not None:
        return checked(result, n)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim["timeout_s"]):
            return {"status": "timeout", "error": too_slow, "outputs": None}
        if sig == signal.SIGKILL and usage.ru_maxrss * 1024 >= 0.9 * lim["memory_mb"] * 2**20:
            return {"status": "memory", "error": "killed at the memory limit", "outputs": None}
        return {
            "status": "crash",
            "error": f"killed by {signal.Signals(sig).name}",
            "outputs": None,
        }
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    return {
        "status": "crash",
        "error": f"exited with code {code} before reporting",
        "outputs": None,
    }
