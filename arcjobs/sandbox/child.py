"""The program's side of the fork: lock the process down, run `transform`, report.

Every child is forked from the warm worker, so the DSL, numpy, builtins and `sys.modules`
start as pristine copies. A child starts as the worker's spare: `prepare` (own process
group, parent-death signal, private scratch cwd, stdio on /dev/null) runs while the previous
program is still running. When its first job arrives, `lock_down` sets the job's rlimits,
drops to uid 65534 where the worker is root and installs the audit hook — all before the
program's source is compiled, because compiling is already running it (a 10 MB source or a
nesting bomb attacks the compiler).

Every program gets a freshly executed `common` module and `random` / `numpy.random` seeded
from the program and its inputs. After a program this child proved pure (`is_pure`, before
the program ran) and that ended cleanly, it takes the next job the worker sent, and the
worker keeps what it reports only if its own checks of that program and of the child
agree; after any other program the child exits (and the worker kills what is left), so
every other program runs in a fresh fork and what it changed vanishes with the process.

The child reports through two pipes. Where it may run another program, it writes
`{"pure": ..., "job": N}` to `verdict_fd` for its Nth program: whether the compiled program
is pure, decided before any of its code runs (`bytecode`, or `purity` on the source where
the bytecode rules do not apply). The worker reads it only with the result, so it costs no
wake-up of the worker. On `report_fd` come frames `{"violation": ...}` from the policy, then
one `{"status", "error", "outputs", "cpu_s"}`, outputs packed (`grids.Packed`: shapes in
the JSON, cells in the frame's blob). It never sees expected outputs: they stay in the
executor's process.
"""

from __future__ import annotations

import builtins
import functools
import gc
import itertools
import os
import random
import re
import resource
import signal
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy

from arcjobs.sandbox import bytecode, policy, purity
from arcjobs.sandbox import limits as limits_mod
from arcjobs.sandbox.dsl import new_common
from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.outputs import InvalidOutput, to_grid
from arcjobs.sandbox.protocol import FrameReader, decode_packed, encode, encode_packed, write_raw
from arcjobs.sandbox.verdict import REUSABLE

# private references, immune to the program's monkeypatching (see `execute`)
__builtins__ = dict(vars(builtins))
_exit, _getrusage, _pack = os._exit, resource.getrusage, Packed.of_checked
_collect, _freeze = gc.collect, gc.freeze
PROGRAM_FILE = "<program>"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
PR_SET_PDEATHSIG = 1


def _cpu() -> float:
    usage = _getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(ctx: dict[str, Any]) -> None:
    """The layers that need no job: done while the child waits as the worker's spare."""
    os.setpgid(0, 0)
    if ctx.get("libc") is not None:
        ctx["libc"].prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, not kills
    os.chdir(ctx["scratch"])
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def lock_down(job: dict[str, Any], ctx: dict[str, Any], report_fd: int) -> None:
    """The first job's limits, the uid and the policy, before any program code runs.

    They hold for every later program of this child too: the worker sends only jobs with the
    same limits to a child it keeps, and re-arms the CPU limit (cumulative per process) from
    outside before each one, which is why its hard limit is left open where it may keep one.
    """
    # memory_mb is on top of what this process maps right now (the warm image)
    limits_mod.apply(
        limits_mod.Limits(**job["limits"]), limits_mod.vm_size_bytes(), open_cpu=ctx["reuse"]
    )
    if ctx["drop_uid"]:
        os.setgroups([])
        os.setgid(limits_mod.NOBODY)
        os.setuid(limits_mod.NOBODY)
    if ctx["audit"]:
        policy.install(ctx["scratch"], ctx["readable"], report_fd)


def shared_caches() -> tuple[Callable[[], None], ...]:
    """How to empty every `functools.lru_cache` in this (warm) process: numpy's, scipy's
    and `typing`'s caches outlive a program, and keep what it passed them as keys —
    `Literal[x]`, `np.einsum(..., order=x)` — whose Python `__eq__` or `__hash__`, even one
    inherited from the standard library and calling a property of the program's, a later
    program's lookup would run. Where a child may run another program, it empties them
    after each one (~2 µs for the ~50 of them)."""
    # the exact type, and its own method: `isinstance` believes any object that claims the
    # class (a mock), and a wrapper's `__dict__` may hold another `cache_clear`
    lru = functools._lru_cache_wrapper
    return tuple(lru.cache_clear.__get__(o) for o in gc.get_objects() if type(o) is lru)


def fresh_common(ctx: dict[str, Any], previous: ModuleType | None) -> ModuleType:
    """A newly executed `common` for the next program. A child's first program gets the
    worker's, which no program has touched; a kept child makes the next one right after
    reporting, while the worker handles its result, not while the next program waits.

    The new module is frozen out of the garbage collector's sight (`gc.freeze`, as the
    worker froze its whole image), so the collection after the next program walks only
    what that program made (~30 µs less per program). `previous`, the module this child
    made for the program before, is emptied: its functions, in a cycle with its globals,
    are freed now. Only its five classes, cycles of their own, stay frozen (~15 KB a
    program), and the worker retires a child that has grown by GROWTH_LIMIT."""
    if previous is not None:
        vars(previous).clear()
    module = new_common(ctx["dsl_code"], ctx["dsl_path"])
    sys.modules["common"] = module
    _freeze()
    return module


def seed_randomness(job: dict[str, Any]) -> None:
    """Both random generators seeded from the program and its inputs, whatever programs
    this process ran before."""
    seed = job["seed"]
    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    numpy.random.default_rng = _seeded_default_rng(_DEFAULT_RNG, seed)


_DEFAULT_RNG = numpy.random.default_rng


def _seeded_default_rng(default_rng: Any, seed: int) -> Any:
    """`np.random.default_rng()` without a seed would draw OS entropy: derive it instead
    from the program's seed (and a call counter), like the legacy global generator."""
    calls = itertools.count()

    def seeded(seed_arg: Any = None) -> Any:
        return default_rng(seed_arg if seed_arg is not None else [seed, next(calls)])

    return seeded


def serve(ctx: dict[str, Any], report_fd: int, job_fd: int, verdict_fd: int) -> None:
    """Be the worker's spare, then run jobs until the worker stops sending; never returns.

    Without `ctx["reuse"]` it exits after one job; with it, after every program it proved
    pure and that ended cleanly, it takes the next job from its pipe, where the worker may
    have written it while this program ran (`Worker._send_ahead`). After any other program
    it exits: what that program changed must not meet another. The worker, which kills a
    child whose result or verdict it does not like, discards whatever such a child went on
    to do.
    """
    reader = FrameReader()
    locked = False
    made: ModuleType | None = None  # the `common` this child made last
    try:
        prepare(ctx)
    except BaseException:
        _exit(70)
    for ran in itertools.count():
        try:
            frame = reader.next(job_fd)
            if frame is None:  # the worker is shutting down
                _exit(0)
            job = decode_packed(frame, "inputs")
        except BaseException:
            _exit(70)
        cpu_before = _cpu()
        pure = False
        try:
            if not locked:
                lock_down(job, ctx, report_fd)
                locked = True
            seed_randomness(job)
            result, pure = execute(job["code"], job["inputs"].arrays(), ctx, verdict_fd, ran)
        except MemoryError:
            result = {"status": "memory", "error": "MemoryError", "outputs": None}
        except BaseException as e:  # a broken set-up is the sandbox's failure, not the program's
            result = {"status": "crash", "error": f"sandbox setup: {type(e).__name__}: {e}"}
        try:
            result["cpu_s"] = _cpu() - cpu_before  # the program's share, for statistics only
            outputs = result.get("outputs")
            result["outputs"] = None if outputs is None else _pack(outputs)
            write_raw(report_fd, encode_packed(result, "outputs"))
        except BaseException:
            _exit(0)
        if not (ctx["reuse"] and pure and result["status"] in REUSABLE):
            _exit(0)
        try:
            made = fresh_common(ctx, made)
        except BaseException:
            _exit(70)


def execute(
    code: str, inputs: list[Any], ctx: dict[str, Any], verdict_fd: int, job: int = 0
) -> tuple[dict[str, Any], bool]:
    """Compile, write to `verdict_fd` whether the program is pure (where `ctx["allow"]` says
    this child may run another: `{"pure": ..., "job": job}`, `job` counting this child's
    programs from 0, so the worker never takes one program's verdict for another's), exec
    and call `transform` on each input (a fresh int64 array, made before the program ran).
    Returns status, error and outputs (uint8 grids or None), and the verdict.

    The program may monkeypatch builtins, numpy, os or json: this module, `outputs` and
    `protocol` hold private references to what they need, so sabotage changes only the
    program's own outputs (which the worker checks again anyway), never how it is
    classified or reported. The program's namespace is cleared (and, where this process may
    run another program, the shared caches emptied and its cyclic garbage collected) before
    returning, so none of the program's objects outlives it and no finalizer of the
    program's runs after its result is written.
    """
    try:
        return _run(code, inputs, ctx, verdict_fd, job)
    finally:
        if ctx["reuse"]:
            for clear in ctx["caches"]:
                clear()
            _collect()


def _run(
    code: str, inputs: list[Any], ctx: dict[str, Any], verdict_fd: int, job: int
) -> tuple[dict[str, Any], bool]:
    scratch = ctx["scratch"]
    try:  # plain Python semantics: not this module's `from __future__` flags
        compiled = compile(code, PROGRAM_FILE, "exec", dont_inherit=True)
    except BaseException as e:  # SyntaxError, NUL bytes, the parser's own stack limits
        compiled, error = None, _describe(e, scratch)
    pure = False
    if ctx["allow"] is not None:  # this child may run another program
        # not after a source that did not compile: what the compiler did with a hostile
        # one (a nesting bomb at the stack's edge) is not worth reasoning about
        pure = compiled is not None and is_pure(code, compiled, ctx["allow"])
        write_raw(verdict_fd, encode({"pure": pure, "job": job}))
    if compiled is None:
        return {"status": "syntax_error", "error": error, "outputs": None}, False
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    try:
        return _call(compiled, namespace, inputs, scratch), pure
    finally:
        namespace.clear()  # breaks the cycle transform <-> its globals


def is_pure(code: str, compiled: Any, allow: purity.Allowlist) -> bool:
    """Whether the program may share this process with the next: read from its code
    objects where the bytecode rules apply (this Python), else from its source."""
    if bytecode.SUPPORTED:
        return bytecode.is_pure(compiled, len(code), allow)
    return purity.analyse(code, allow)


def _call(
    compiled: Any, namespace: dict[str, Any], inputs: list[Any], scratch: str
) -> dict[str, Any]:
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
        return _failure(e, scratch, None)
    outputs: list[Any] = []
    first: dict[str, Any] | None = None
    for ok, value in returned:
        outputs.append(None)
        if not ok:
            first = first or _failure(value, scratch, None)
            continue
        try:
            outputs[-1] = to_grid(value)
        except InvalidOutput as e:
            first = first or {"status": "invalid_output", "error": str(e)}
        except BaseException as e:  # e.g. an int subclass whose __int__ raises
            first = first or {**_failure(e, scratch, None), "status": "invalid_output"}
    if first is None:
        return {"status": "ok", "error": None, "outputs": outputs}
    return {**first, "outputs": outputs}


def _failure(e: BaseException, scratch: str, outputs: list[Any] | None) -> dict[str, Any]:
    status = "memory" if isinstance(e, MemoryError) else "runtime_error"
    return {"status": status, "error": _describe(e, scratch), "outputs": outputs}


def _describe(e: BaseException, scratch: str) -> str:
    """A short message that is the same on every machine: no addresses, no scratch path."""
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
    text = _ADDRESS.sub("0x?", text.replace(scratch, "<scratch>"))
    message = f"{line}{type(e).__name__}: {text}" if text else f"{line}{type(e).__name__}"
    return message[:300]
