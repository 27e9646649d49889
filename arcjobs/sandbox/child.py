"""The program's side of the fork: lock the process down, run one program, report, exit.

Every child is forked from the warm worker (numpy, scipy and the DSL imported), runs exactly
one program and exits, so nothing a program does reaches another: not `common`, numpy,
builtins or `sys.modules`, not the allocator's memory, not a finaliser or a cache entry.
A child starts as the worker's spare, forked while the previous program runs. Before it
reads its job, it puts up every layer that needs no job (`lock_down`), in this order,
because each later step would refuse the ones before it:

1. a parent-death signal, stdio on /dev/null, and every descriptor closed but its job and
   report pipes (its process group, cwd `/` and signal dispositions are the worker's doing);
2. uid 65534 where the worker is root and the Python installation is readable by it
   (`Context.drop_uid`), then no capabilities, whatever the uid;
3. no_new_privs and its own seccomp filter (`arcjobs.sandbox.seccomp`: no processes, no
   signals or limits for other processes, no changing ids), on top of the worker's;
4. Landlock (`arcjobs.sandbox.landlock`): read only what imports need, write nothing, no
   TCP, no signals or abstract sockets beyond its own domain;
5. imports limited to the standard library, numpy, scipy and the DSL.

Then, with its job: the job's rlimits (`arcjobs.sandbox.limits`, soft = hard, so they cannot
be raised back), the audit hook (`arcjobs.sandbox.policy`), which explains refusals without
enforcing them, `random` and `numpy.random` seeded from the program and its inputs, and only
then the program's source is compiled, because compiling is already running it (a 10 MB
source or a nesting bomb attacks the compiler).

Where a layer cannot be put up, the child reports `{"fatal": ...}` and exits without reading
its job, unless the run was told to go on without kernel layers (`Context.require`). It
reports on `REPORT_FD`: frames `{"violation": ...}` from the policy, then one
`{"status", "error", "outputs", "cpu_s"}`, outputs packed (`grids.Packed`). It never sees
expected outputs: they stay in the executor's process.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import os
import random
import re
import resource
import signal
import sys
from dataclasses import dataclass
from typing import Any

import numpy

from arcjobs.sandbox import limits as limits_mod
from arcjobs.sandbox import policy
from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.isolation import NoCapabilities
from arcjobs.sandbox.landlock import Ruleset
from arcjobs.sandbox.outputs import InvalidOutput, to_grid
from arcjobs.sandbox.protocol import (
    Frame,
    FrameReader,
    decode_packed,
    encode,
    encode_packed,
    write_raw,
)
from arcjobs.sandbox.readable import IMPORTABLE
from arcjobs.sandbox.seccomp import Loadable

# private references, immune to the program's monkeypatching (see `execute`)
__builtins__ = dict(vars(builtins))
_exit, _getrusage, _pack = os._exit, resource.getrusage, Packed.of_checked
PROGRAM_FILE = "<program>"
REPORT_FD, JOB_FD = 3, 4
MAX_FD = 1 << 20  # above any descriptor a process here can hold (`closerange` is one syscall)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38


@dataclass(frozen=True)
class Context:
    """What the worker prepared for its children, once: they only apply it.

    ruleset and child_filter are None where the kernel (or the architecture) has none;
    `require` says whether a child must then refuse to run programs (the default) or go on
    without them (the run's explicit opt-out, recorded in its results).
    """

    libc: Any
    ruleset: Ruleset | None
    child_filter: Loadable | None
    no_capabilities: NoCapabilities | None
    hook: Any  # the audit hook, made once by the worker; None to leave it out (tests)
    drop_uid: bool
    require: bool
    base_vm: int  # the worker's virtual size: what a program's memory limit is added to
    rehearsal: bytes | None  # a job frame each spare runs before its own (`run_job`)


class SetupFailed(Exception):
    """A layer that must be in force could not be put up: the sandbox's failure, not the
    program's, so the run stops instead of recording a status."""


def _cpu() -> float:
    usage = _getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(ctx: Context) -> None:
    """Step 1, in as few operations as can be: each costs a fresh child page faults."""
    if ctx.libc is not None:
        ctx.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.dup2(0, 2)  # the worker's stdin and stdout are /dev/null already; its stderr, a log
    keep = JOB_FD if ctx.ruleset is None else ctx.ruleset.fd  # the worker's: above JOB_FD
    os.closerange(JOB_FD + 1, keep)
    os.closerange(keep + 1, MAX_FD)


def lock_down(ctx: Context) -> dict[str, Any]:
    """Steps 2-5. Returns whether each layer is in force; raises SetupFailed when a required
    one cannot be put up."""
    layers: dict[str, Any] = {"uid": os.geteuid()}
    if ctx.drop_uid:
        os.setgroups([])
        os.setgid(limits_mod.NOBODY)
        os.setuid(limits_mod.NOBODY)
        layers["uid"] = limits_mod.NOBODY
    layers["no_capabilities"] = ctx.no_capabilities is not None and ctx.no_capabilities.apply()
    layers["no_new_privs"] = _apply(ctx, "no_new_privs", True, _no_new_privs)
    layers["seccomp"] = _apply(ctx, "seccomp", ctx.child_filter, _seccomp)
    layers["landlock"] = _apply(ctx, "landlock", ctx.ruleset, _landlock)
    sys.meta_path.insert(0, _OnlyImportable)
    return layers


def _apply(ctx: Context, name: str, prepared: Any, put_up: Any) -> bool:
    """Put up one kernel layer from what the worker `prepared` (None: it could not)."""
    try:
        if prepared is None:
            raise OSError("not available here")
        put_up(ctx, prepared)
        return True
    except OSError as e:
        if ctx.require:
            raise SetupFailed(f"{name} ({e})") from None
        return False


def _no_new_privs(ctx: Context, _: Any) -> None:
    if ctx.libc is None or ctx.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError("prctl(PR_SET_NO_NEW_PRIVS) failed")


def _seccomp(ctx: Context, child_filter: Loadable) -> None:
    child_filter.install(os.getpid())


def _landlock(ctx: Context, ruleset: Ruleset) -> None:
    ruleset.restrict(ctx.libc)


class _OnlyImportable:
    """First on `sys.meta_path`: a module outside the standard library, numpy, scipy and the
    DSL is not found, as it is not in the sandbox image. Without this, importing one would
    fail differently on a host (Landlock refuses to read it) and in the image (absent), and
    executions must be the same bytes on both. Not a boundary: Landlock is."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] not in IMPORTABLE:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def seed_randomness(job: dict[str, Any]) -> None:
    """Both random generators seeded from the program and its inputs."""
    seed = job["seed"]
    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    numpy.random.default_rng = _seeded_default_rng(numpy.random.default_rng, seed)


def _seeded_default_rng(default_rng: Any, seed: int) -> Any:
    """`np.random.default_rng()` without a seed would draw OS entropy: derive it instead
    from the program's seed (and a call counter), like the legacy global generator."""
    calls = itertools.count()

    def seeded(seed_arg: Any = None) -> Any:
        return default_rng(seed_arg if seed_arg is not None else [seed, next(calls)])

    return seeded


def serve(ctx: Context) -> None:
    """Be the worker's spare: lock down, rehearse, then run the job that arrives; never
    returns."""
    try:
        prepare(ctx)
        lock_down(ctx)
    except SetupFailed as e:
        _report({"fatal": f"the sandbox cannot put up {e}"})
        _exit(71)
    except BaseException as e:
        _report({"fatal": f"the sandbox's child failed to start: {type(e).__name__}: {e}"})
        _exit(70)
    if ctx.rehearsal is not None:
        with contextlib.suppress(BaseException):
            run_job(FrameReader().feed(ctx.rehearsal)[0], ctx, rehearsal=True)
    try:
        frame = FrameReader().next(JOB_FD)
        if frame is None:  # the worker is shutting down
            _exit(0)
        report = run_job(frame, ctx)
    except BaseException:
        _exit(70)
    try:
        write_raw(REPORT_FD, report)
    finally:
        _exit(0)


def run_job(frame: Frame, ctx: Context, rehearsal: bool = False) -> bytes:
    """The job's result frame. A rehearsal (a job the worker made, before the real one
    arrives) takes the same path without the limits and the hook, which cannot be undone:
    what it touches, a fresh child pays for in page faults once, and a spare has the time
    while the program before it runs. Every child rehearses the same job, so what it
    leaves behind is the same for every program."""
    job = decode_packed(frame, "inputs")
    cpu_before = _cpu()
    try:
        limits = limits_mod.Limits(**job["limits"])
        if not rehearsal:
            limits_mod.apply(limits, ctx.base_vm)
            if ctx.hook is not None:  # after the limits: it refuses setting them
                policy.install(ctx.hook)
        seed_randomness(job)
        result = execute(job["code"], job["inputs"].arrays())
    except MemoryError:
        result = {"status": "memory", "error": "MemoryError", "outputs": None}
    except BaseException as e:  # a broken set-up is the sandbox's failure, not the program's
        result = {"status": "crash", "error": f"sandbox setup: {type(e).__name__}: {e}"}
    result["cpu_s"] = _cpu() - cpu_before  # the program's share, for statistics only
    outputs = result.get("outputs")
    result["outputs"] = None if outputs is None else _pack(outputs)
    return encode_packed(result, "outputs")


def _report(message: dict[str, Any]) -> None:
    with contextlib.suppress(BaseException):
        write_raw(REPORT_FD, encode(message))


def execute(code: str, inputs: list[Any]) -> dict[str, Any]:
    """Compile, exec and call `transform` on each input (a fresh int64 array, made before the
    program ran). Returns status, error and outputs (uint8 grids or None).

    The program may monkeypatch builtins, numpy, os or json: this module, `outputs` and
    `protocol` hold private references to what they need, so sabotage changes only the
    program's own outputs (which the worker checks again anyway), never how it is
    classified or reported.
    """
    try:  # plain Python semantics: not this module's `from __future__` flags
        compiled = compile(code, PROGRAM_FILE, "exec", dont_inherit=True)
    except BaseException as e:  # SyntaxError, NUL bytes, the parser's own stack limits
        return {"status": "syntax_error", "error": _describe(e), "outputs": None}
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compiled, namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            return {"status": "runtime_error", "error": "no function `transform`", "outputs": None}
        returned: list[tuple[bool, Any]] = []
        for grid in inputs:
            try:
                returned.append((True, transform(grid)))
            except BaseException as e:
                returned.append((False, e))
    except BaseException as e:
        return _failure(e)
    outputs: list[Any] = []
    first: dict[str, Any] | None = None
    for ok, value in returned:
        outputs.append(None)
        if not ok:
            first = first or _failure(value)
            continue
        try:
            outputs[-1] = to_grid(value)
        except InvalidOutput as e:
            first = first or {"status": "invalid_output", "error": str(e)}
        except BaseException as e:  # e.g. an int subclass whose __int__ raises
            first = first or {**_failure(e), "status": "invalid_output"}
    if first is None:
        return {"status": "ok", "error": None, "outputs": outputs}
    return {**first, "outputs": outputs}


def _failure(e: BaseException) -> dict[str, Any]:
    status = "memory" if isinstance(e, MemoryError) else "runtime_error"
    return {"status": status, "error": _describe(e), "outputs": None}


def _describe(e: BaseException) -> str:
    """A short message that is the same on every machine: no addresses."""
    line = ""
    if isinstance(e, SyntaxError) and e.lineno:
        line, text = f"line {e.lineno}: ", e.msg
    else:
        tb = e.__traceback__  # walked by hand: formatting it would read source files
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == PROGRAM_FILE:
                line = f"line {tb.tb_lineno}: "
            tb = tb.tb_next
        text = None
    if text is None:
        try:
            text = str(e)
        except BaseException:
            text = "<unprintable>"
    text = _ADDRESS.sub("0x?", text)
    message = f"{line}{type(e).__name__}: {text}" if text else f"{line}{type(e).__name__}"
    return message[:300]
