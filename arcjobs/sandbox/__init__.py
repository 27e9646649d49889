"""Safe execution of model-written programs: a fresh, kernel-confined process per program.

One call executes a batch: `execute(programs, tasks, limits, workers, cache)` returns a
`SandboxRun` that yields a `ProgramResult` per program as each finishes (its `.summary()`
then gives counts, throughput and the isolation layers that were in force). The pieces, one
concern each: `readable` (what programs may read), `landlock` and `seccomp` (the kernel's
boundary), `limits` (rlimits), `isolation` (network namespace, uid, dumpable), `cgroup`
(pids limit), `child` (the program's process), `probe` (which layers are in force),
`policy` (the audit hook, which explains), `outputs` (grid validation), `verdict` (how a
child's end becomes a status), `worker` (the fork server), `protocol` (JSON frames), `pool`
(workers and pipes), `cache` (sqlite results, HMAC'd), `executor` (the batch), `files` (the
CLI/step file formats). docs/architecture.md §6 is the trust model.
The DSL programs import as `common` lives in `dsl/`; `corpus/` holds BARC-style programs.

Importing this package imports the executor, and with it numpy: the launcher's commands
and steps import what they need from it inside the functions that run the sandbox.
"""

from __future__ import annotations

from arcjobs.sandbox.cache import ResultCache
from arcjobs.sandbox.executor import EXECUTOR_VERSION, Program, ProgramResult, SandboxRun, execute
from arcjobs.sandbox.limits import Limits

__all__ = [
    "EXECUTOR_VERSION",
    "Limits",
    "Program",
    "ProgramResult",
    "ResultCache",
    "SandboxRun",
    "execute",
]
