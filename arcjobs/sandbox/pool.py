"""A pool of fork-server workers, fed jobs through pipes, surviving anything a job does.

Each worker (`arcjobs.sandbox.worker`) is a separate Python process in its own session, with
a scrubbed environment (no secrets for a program to read; PYTHONHASHSEED fixed) and no
descriptor of the pool's but its two pipes. It answers first with the layers in force, as a
child of its own found them (`arcjobs.sandbox.probe`): the pool refuses to go on when a
required one is missing, unless it was started with `require=False` (the run's explicit
opt-out). A worker that reports `fatal` (a child could not put up a required layer) stops
the run the same way: it is no program's fault.

The pool keeps up to `depth` jobs in flight per worker, so that a worker never waits for the
pool between two programs. It multiplexes all pipes with one selector (non-blocking writes,
so a big source and a big result can never deadlock), and yields results as they arrive.

If a worker dies or stops answering (its own deadline plus a grace period), its session is
killed and the jobs it had in flight go back to the queue, each to run alone on a worker. A
job whose worker dies while it runs alone is retried once more, and a second death is that
job's `crash`: nobody else's result is lost. `close` ends every worker and removes the
directory of their logs, so no process, file or pipe outlives the pool.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from arcjobs.sandbox import cgroup, probe
from arcjobs.sandbox.protocol import FrameReader, ProtocolError, decode_packed, encode_packed

GRACE_S = 5.0  # beyond a job's own limit, before the pool declares its worker hung
STARTUP_S = 120.0
MAX_START_FAILURES = 3


PREFIX = "arcjobs-sandbox-"


def sweep_stale() -> None:
    """Remove log directories and cgroups left by pools whose process was SIGKILLed.

    Only a kill -9 of the executor skips `close`; its workers die with it (PDEATHSIG), and
    the next pool on the machine removes what they left, recognising it by the dead pid.
    """
    tmp = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(tmp):
            owner = name[len(PREFIX) :].split("-", 1)[0]
            if name.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
    cgroup.sweep(_alive)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


class _Job(NamedTuple):
    """A job as the pool tracks it: `alone` when it must run with nothing else in flight
    on its worker, to tell whether it is the one that kills workers."""

    key: Any
    job: dict[str, Any]
    attempt: int = 0
    alone: bool = False


class SandboxError(RuntimeError):
    """The sandbox itself cannot run (a worker fails to start, a required layer is missing):
    not any program's fault."""


OPT_OUT_HINT = (
    "; programs would run without it: pass --unprotected to run them anyway (recorded in"
    " every result)"
)


def worker_env() -> dict[str, str]:
    """The whole environment of a worker and so of every program: nothing from the caller's."""
    package_root = str(Path(__file__).resolve().parents[2])
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": package_root,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
    }


class _Worker:
    def __init__(self, index: int, root: str, dsl_path: str, options: list[str]) -> None:
        self.log_path = os.path.join(root, f"w{index}.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "arcjobs.sandbox.worker", dsl_path, *options],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=worker_env(),
                start_new_session=True,
                close_fds=True,
            )
        self.fd_in = self.proc.stdin.fileno()
        self.fd_out = self.proc.stdout.fileno()
        os.set_blocking(self.fd_in, False)
        self.reader = FrameReader()
        self.outbuf = bytearray()
        self.inflight: deque[_Job] = deque()
        self.layers: dict[str, Any] | None = None
        self.head_since = time.monotonic()

    def deadline(self) -> float:
        if self.layers is None:
            return self.head_since + STARTUP_S
        if not self.inflight:
            return float("inf")
        return self.head_since + self.inflight[0].job["limits"]["timeout_s"] + GRACE_S

    def log_tail(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc.wait()
        # also for a worker that died before saying hello (and so before naming its cgroup)
        path = cgroup.path_of(self.proc.pid)
        if path is not None:
            cgroup.remove(path)


class Pool:
    """`workers` fork servers running jobs `{"code", "inputs", "seed", "limits"}` (inputs a
    `grids.Packed`); results are `{"status", "error", "outputs", ...}`, outputs a `Packed`
    or None."""

    def __init__(
        self,
        workers: int,
        dsl_path: str,
        max_procs: int = 64,
        depth: int = 3,
        audit: bool = True,
        require: bool = True,
    ) -> None:
        """max_procs bounds each worker's pids cgroup (where one can be made) beyond the
        worker and its child; audit=False leaves out the audit hook, for tests of the kernel
        layers alone; require=False runs programs even where a kernel layer is missing."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.size, self.dsl_path, self.depth, self.require = workers, dsl_path, depth, require
        self.options = ["--max-procs", str(max_procs)]
        self.options += ([] if audit else ["--no-audit"]) + ([] if require else ["--unprotected"])
        sweep_stale()
        self.root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        self.selector = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        self.layers: dict[str, Any] | None = None
        self.spawned = 0
        self.start_failures = 0
        try:
            for _ in range(workers):
                self._spawn()
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> None:
        w = _Worker(self.spawned, self.root, self.dsl_path, self.options)
        self.spawned += 1
        self.workers.append(w)
        self.selector.register(w.fd_out, selectors.EVENT_READ, w)

    def start(self) -> dict[str, Any] | None:
        """Wait until every worker has said hello (SandboxError if one cannot start, or
        reports a required layer missing); the layers in force."""
        pending: deque[_Job] = deque()
        while any(w.layers is None for w in self.workers):
            timeout = max(0.0, min(w.deadline() for w in self.workers) - time.monotonic())
            for key, _ in self.selector.select(min(timeout, 1.0)):
                w = key.data
                if w in self.workers and key.fileobj == w.fd_out:
                    self._receive(w, pending)
            for w in list(self.workers):
                if w.deadline() < time.monotonic():
                    self._lost(w, pending, "worker stopped answering")
        return self.layers

    def run(self, jobs: list[tuple[Any, dict[str, Any]]]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Yield (key, result) for every (key, job), in completion order."""
        pending: deque[_Job] = deque(_Job(k, j) for k, j in jobs)
        remaining = len(pending)
        while remaining:
            self._feed(pending)
            timeout = max(0.0, min(w.deadline() for w in self.workers) - time.monotonic())
            for key, _ in self.selector.select(min(timeout, 1.0)):
                w = key.data
                if w not in self.workers:
                    continue
                if key.fileobj == w.fd_in:
                    self._flush(w, pending)
                    continue
                for done in self._receive(w, pending):
                    remaining -= 1
                    yield done
            now = time.monotonic()
            for w in list(self.workers):
                if w.deadline() < now:
                    for done in self._lost(w, pending, "worker stopped answering"):
                        remaining -= 1
                        yield done

    def _feed(self, pending: deque) -> None:
        for w in self.workers:
            added = False
            while pending and len(w.inflight) < self.depth:
                if w.inflight and (pending[0].alone or w.inflight[-1].alone):
                    break  # a job that must run alone waits for an idle worker
                item = pending.popleft()
                if not w.inflight:
                    w.head_since = time.monotonic()
                w.inflight.append(item)
                w.outbuf += encode_packed(item.job, "inputs")
                added = True
            if added:
                self._flush(w, pending)

    def _flush(self, w: _Worker, pending: deque) -> None:
        try:
            while w.outbuf:
                n = os.write(w.fd_in, w.outbuf)
                del w.outbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            return  # a dead worker: its stdout's EOF reports it
        events = selectors.EVENT_WRITE
        registered = w.fd_in in self.selector.get_map()
        if w.outbuf and not registered:
            self.selector.register(w.fd_in, events, w)
        elif not w.outbuf and registered:
            self.selector.unregister(w.fd_in)

    def _receive(self, w: _Worker, pending: deque) -> list[tuple[Any, dict[str, Any]]]:
        try:
            data = os.read(w.fd_out, 1 << 16)
            frames = w.reader.feed(data) if data else None
        except (OSError, ProtocolError):
            frames = None
        if frames is None:
            return self._lost(w, pending, "worker died")
        done = []
        for frame in frames:
            message = decode_packed(frame, "outputs")
            if "hello" in message:
                w.layers = message["hello"]
                self.layers = self.layers or w.layers
                self._check(w.layers)
                self.start_failures = 0
                w.head_since = time.monotonic()
                continue
            if "fatal" in message:
                raise SandboxError(f"{message['fatal']}{OPT_OUT_HINT}")
            w.head_since = time.monotonic()
            done.append((w.inflight.popleft().key, message))
        return done

    def _check(self, layers: dict[str, Any]) -> None:
        """Refuse to go on without a required layer, naming it and why it is missing."""
        missing = probe.missing(layers)
        if missing and self.require:
            why = layers.get("why") or {}
            named = ", ".join(f"{name} ({why[name]})" if name in why else name for name in missing)
            raise SandboxError(f"the sandbox cannot put up {named}{OPT_OUT_HINT}")

    def _lost(self, w: _Worker, pending: deque, why: str) -> list[tuple[Any, dict[str, Any]]]:
        """Replace a dead or hung worker and requeue its jobs, each to run alone; a job that
        was alone in flight is retried once, and is a crash the second time."""
        started = w.layers is not None
        self._remove(w)
        done = []
        inflight = list(w.inflight)
        if not started:
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                raise SandboxError(f"sandbox worker failed to start: {w.log_tail().strip()}")
        elif len(inflight) == 1:  # the job that was running, for sure
            key, job, attempt, _ = inflight.pop()
            if attempt >= 1:
                done.append((key, {"status": "crash", "error": f"{why} (twice)", "outputs": None}))
            else:
                inflight = [_Job(key, job, attempt + 1, alone=True)]
        else:
            inflight = [item._replace(alone=True) for item in inflight]
        pending.extendleft(reversed(inflight))
        self._spawn()
        return done

    def _remove(self, w: _Worker) -> None:
        for fd in (w.fd_in, w.fd_out):
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
        self.workers.remove(w)
        w.kill()

    def worker_pids(self) -> list[int]:
        """The workers' process ids, for measuring what they and their children use."""
        return [w.proc.pid for w in self.workers]

    def close(self) -> None:
        """End every worker (EOF first, then SIGKILL of its session) and remove their logs."""
        for w in list(self.workers):
            with contextlib.suppress(OSError):
                w.proc.stdin.close()
        for w in list(self.workers):
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=2)
            self._remove(w)
        self.selector.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
