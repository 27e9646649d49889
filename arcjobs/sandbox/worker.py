"""The fork server: a warm process that forks disposable children to run programs in.

Started by the pool as `python -m arcjobs.sandbox.worker SCRATCH DSL_PATH` with a scrubbed
environment. It imports numpy, scipy and the DSL once, freezes its heap, and then for every
job on stdin hands the job to a child (`arcjobs.sandbox.child`) forked from that pristine
copy-on-write image. A child whose program was proved harmless to shared state (the child's
verdict, written to a pipe of its own before the program runs: `child.is_pure`, read with
the result so that it wakes nobody), and which ended cleanly, is kept for the next job (a
fork, its exit and its copy-on-write faults cost more than a typical program); every other
child is killed after its one program, so what that program changed vanishes with it. While
a kept child runs a program, the worker writes the next job into its pipe, so the child goes
on without waiting to be judged (`Worker._send_ahead`); the worker takes that next result only
if the one before passed its checks, and otherwise runs the job again in a fresh child.

The worker is the program's warden: it waits on the child's result pipe with a wall-clock
deadline, then SIGKILLs the child's process group, reaps the child (rusage tells CPU time and
peak memory) and, as a child subreaper, kills every descendant that escaped the group
(`setsid`, double fork) before taking the next job. Before it takes another program's result
from a kept child it checks from outside that the child has one thread and has not grown,
and it re-arms the child's CPU limit for each program. It
answers each job with one frame on stdout (several at once where it can, `_report`) and
exits at end of input, or when the pool dies (PR_SET_PDEATHSIG).

OS layers it sets up for all its children, and reports in its hello frame: a private network
namespace (unshare CLONE_NEWNET, through a user namespace when not root), the subreaper, and
running programs as uid 65534 when the worker is root (so RLIMIT_NPROC is enforced and the
filesystem's permissions apply).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import math
import os
import resource
import select
import signal
import struct
import sys
import termios
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from arcjobs.sandbox import cgroup, child, dsl, isolation, limits, policy, purity, verdict
from arcjobs.sandbox.protocol import (
    FrameReader,
    ProtocolError,
    decode_packed,
    encode_packed,
    write_frame,
    write_raw,
)

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
REPORT_FD, JOB_FD, VERDICT_FD = 3, 4, 5
MAX_RESULT = 8 * 1024 * 1024
# modules BARC programs import themselves: loaded once here, not once per program
PRELOAD = ("typing", "random", "math", "itertools", "collections", "functools", "copy", "re")
# how much a kept child may grow (size and peak resident memory) before it is retired: a
# later program's memory limit must not depend on which programs ran before it
GROWTH_LIMIT = 32 * 2**20
# longest a result waits in the worker for others to travel with (see `Worker._report`)
MAX_HOLD_S = 0.02


class Verdicts:
    """A child's verdict pipe (non-blocking), read once a result is in, never waited on.

    The child writes `{"pure": ..., "job": N}` before its Nth program runs (N from 0). By
    the time a result arrives, the next program's verdict may be there too (a kept child
    holds its next job), so frames are taken one per result, and a frame that does not
    name the job it is asked about says "impure"."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = FrameReader()

    def pure(self, job: int) -> bool:
        """Whether the child's verdict on its program number `job` is `pure`. False also
        for a malformed pipe (then the child is not kept, and not asked again)."""
        data = b""
        with contextlib.suppress(OSError):  # BlockingIOError: all read
            while chunk := os.read(self.fd, 1 << 12):
                data += chunk
        pending = self.reader.pending
        try:
            pending.extend(self.reader.feed(data))
        except ProtocolError:
            return False
        return bool(pending) and pending.pop(0).message == {"pure": True, "job": job}


@dataclass
class Child:
    """A forked child and its three pipes, and what the worker knows of its history."""

    pid: int
    job_w: int
    report_r: int
    verdicts: Verdicts
    stat_fd: int  # its /proc/PID/stat, open for `proc_status` (a pread, not an open, per job)
    pipe_size: int  # its job pipe's capacity in bytes
    # its report pipe's, whose `pending` frames may hold the next program's report before
    # the worker has taken this one's result (a kept child holds its next job)
    reader: FrameReader = field(default_factory=lambda: FrameReader(MAX_RESULT))
    ahead: tuple[dict[str, Any], bytes] | None = None  # its next job, sent while one runs
    base: dict[str, Any] = field(default_factory=dict)  # `proc_status` before its first job
    limits: dict[str, Any] | None = None  # those it locked itself down with
    jobs: int = 0  # programs it ran
    cpu_before: float = 0.0  # its CPU seconds after its previous program (idle since)
    # its hard RLIMIT_CPU, read at the first re-arm: set in `lock_down`, fixed since
    cpu_hard: int | None = None

    def close(self) -> None:
        for fd in (self.job_w, self.report_r, self.verdicts.fd, self.stat_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Running:
    """A job handed to a child, and when: the deadline counts from then."""

    child: Child
    job: dict[str, Any]
    started: float


class Jobs:
    """The worker's input: job frames from the pool, decoded as they arrive.

    A job that arrives while a program runs is read then (`pull`), so on a busy worker
    reading it costs no wall time between two programs.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = FrameReader()
        self.ready: deque[tuple[dict[str, Any], bytes]] = deque()
        self.eof = False

    def want(self) -> bool:
        """Whether reading ahead is worth it: nothing is ready and more may come."""
        return not self.ready and not self.eof

    def pull(self) -> None:
        """Read what the pool sent (blocks until some bytes or the end)."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.eof = True
        for frame in self.reader.feed(data):
            self.ready.append((decode_packed(frame, "inputs"), frame.raw))

    def put_back(self, item: tuple[dict[str, Any], bytes]) -> None:
        """Return a job taken but not run here, to be the next one again."""
        self.ready.appendleft(item)

    def next(self, wait: bool = True) -> tuple[dict[str, Any], bytes] | None:
        """The next job and its frame as the pool sent it (passed on to a child unchanged),
        or None at the end of input; with `wait` False, None also when no whole job has
        arrived yet (the pool may be waiting for a result)."""
        if not wait and self.want() and select.select([self.fd], [], [], 0)[0]:
            self.pull()
        while wait and self.want():
            self.pull()
        return self.ready.popleft() if self.ready else None


class Worker:
    """One fork server: OS layers set up once, then a child per job, or per run of pure
    jobs that ended cleanly."""

    def __init__(
        self,
        scratch: str,
        dsl_path: str,
        audit: bool = True,
        max_procs: int = 64,
        reuse: bool = True,
    ) -> None:
        self.libc = isolation.libc()
        if self.libc is not None:
            self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        self.reuse = reuse
        self.layers: dict[str, Any] = {
            "fresh_process": "every program not proven pure" if reuse else "every program",
            "audit_hook": audit,
        }
        self.layers["network_namespace"] = isolation.private_network(self.libc)
        self.layers["subreaper"] = bool(
            self.libc is not None and self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        )
        readable = policy.readable_roots(os.path.dirname(os.path.abspath(dsl_path)))
        drop = os.geteuid() == 0 and isolation.readable_by_others(readable)
        self.scratch = scratch
        os.makedirs(scratch, exist_ok=True)
        if drop:
            os.chown(scratch, limits.NOBODY, limits.NOBODY)
        os.chmod(scratch, 0o700)
        self.layers["uid"] = limits.NOBODY if drop else os.geteuid()
        self.layers["rlimits"] = ["CPU", "AS", "DATA", "FSIZE", "NPROC", "CORE"]
        self.layers["pdeathsig"] = self.libc is not None
        # the worker, its spare, a few children still exiting, and what a program may start
        self.layers["pids_cgroup"] = cgroup.enter(8 + max_procs)
        import numpy  # noqa: F401  (the warm image every child starts from)
        import scipy.ndimage  # noqa: F401

        for name in PRELOAD:
            __import__(name)
        dsl_source, dsl_code = dsl.compile_common(dsl_path)
        sys.modules["common"] = dsl.new_common(dsl_code, dsl_path)
        self.ctx = {
            "libc": self.libc,
            "drop_uid": drop,
            "scratch": scratch,
            "readable": readable,
            "audit": audit,
            "reuse": reuse,
            "dsl_path": dsl_path,
            "dsl_code": dsl_code,
            "caches": child.shared_caches() if reuse else (),
            # what a child checks programs against, built once from this warm image
            "allow": purity.Allowlist.build(sys.modules["common"], dsl_source) if reuse else None,
        }
        self.jobs: Jobs | None = None
        self.spare: Child | None = None
        self.kept: Child | None = None  # ran a pure program cleanly: may run the next one
        self.unreaped: set[int] = set()  # killed after reporting, exit work still running
        self.running: int | None = None  # the child running a program right now
        self.results_fd = -1
        self.outbox = bytearray()  # results not yet written to the pool
        self.held_since: float | None = None  # when the oldest of them was judged
        gc.collect()
        gc.freeze()  # children don't copy pages just to run the collector over old objects

    def serve(self, jobs_fd: int, results_fd: int) -> None:
        write_frame(results_fd, {"hello": self.layers, "pid": os.getpid()})
        self.jobs, self.results_fd = Jobs(jobs_fd), results_fd
        try:
            running = self._start_next(wait=True)
            while running is not None:
                outcome = self.finish(running)
                # a kept child goes on with the job it holds, or one already here: reporting
                # this result and reaping then overlap that program instead of delaying it
                running = self._resume() if self.kept is not None else None
                self._report(outcome, running)
                if running is None:
                    self.cleanup()
                    running = self._start_next(wait=True)
                else:
                    self._reap_exited()
                self._send_ahead(running)
        finally:
            for c in (self.spare, self.kept):
                if c is not None:
                    self._kill_group(c.pid)
            self._reap_all()

    def _report(self, outcome: dict[str, Any], running: Running | None) -> None:
        """Send `outcome` to the pool, or hold it to travel with the next ones.

        Every write of results wakes the pool's process, which costs both sides more than
        handling a result does (on this 2-core VM, a wake across cores ~20 µs of CPU on
        each side). So results wait here while the worker has at least two jobs at hand
        besides the running one, which is as long as the pool can wait to send more; they
        go now when it has fewer, when no program runs (the worker is about to wait for
        the pool), and at most MAX_HOLD_S after the oldest of them was judged (`_collect`
        watches the clock for that)."""
        self.outbox += encode_packed(outcome, "outputs")
        if self.held_since is None:
            self.held_since = time.monotonic()
        # the running child holds no job ahead yet (`_send_ahead` comes next), so the jobs
        # at hand are the ready ones
        if running is None or len(self.jobs.ready) < 2:
            self._flush()

    def _flush(self) -> None:
        if self.outbox:
            write_raw(self.results_fd, self.outbox)
            self.outbox, self.held_since = bytearray(), None

    def _fork_child(self, retry: bool = True) -> Child:
        """Fork the next spare child: it prepares itself and waits for a job on a pipe.

        At the pids limit (children still exiting, or a program's fork bomb filling the
        cgroup) it reaps what it can and tries once more if `retry`, else raises OSError.
        """
        job_r, job_w = os.pipe()
        report_r, report_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
        pipes = (job_r, job_w, report_r, report_w, verdict_r, verdict_w)
        try:
            try:
                pid = os.fork()
            except OSError:
                if not retry:
                    raise
                self._reap_all(keep={self.running})
                pid = os.fork()
        except OSError:
            for fd in pipes:
                os.close(fd)
            raise
        if pid == 0:  # the child: keep only its three pipes, on fixed numbers
            try:
                for high, fd in enumerate((report_w, job_r, verdict_w), 1000):
                    os.dup2(fd, high)
                for high, fd in enumerate((REPORT_FD, JOB_FD, VERDICT_FD), 1000):
                    os.dup2(high, fd)
                os.closerange(VERDICT_FD + 1, 1 << 16)
                child.serve(self.ctx, REPORT_FD, JOB_FD, VERDICT_FD)
            finally:
                os._exit(70)
        for fd in (job_r, report_w, verdict_w):
            os.close(fd)
        os.set_blocking(verdict_r, False)
        with contextlib.suppress(OSError):  # also here: the child may not have run it yet
            os.setpgid(pid, pid)
        stat_fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        pipe_size = fcntl.fcntl(job_w, fcntl.F_GETPIPE_SZ)
        return Child(pid, job_w, report_r, Verdicts(verdict_r), stat_fd, pipe_size)

    def _start_next(self, wait: bool) -> Running | None:
        item = self.jobs.next(wait) if self.jobs is not None else None
        return None if item is None else self.start(*item)

    def start(self, job: dict[str, Any], frame: bytes) -> Running:
        """Hand `job` to the kept child or the spare; the next spare is forked while this
        program runs, so no fork sits between two programs when there is a core for it."""
        c = self._take_kept(job)
        if c is None:
            c = self.spare if self.spare is not None else self._fork_child()
            self.spare = None
            c.base, c.limits = proc_status(c.stat_fd) or {}, job["limits"]
            with contextlib.suppress(OSError):  # no room now: the next job forks its own
                self.spare = self._fork_child(retry=False)
        self.running = c.pid
        started = time.monotonic()
        with contextlib.suppress(OSError):  # a spare that died: its verdict says so
            write_raw(c.job_w, frame)
        if not self.reuse:
            os.close(c.job_w)
            c.job_w = -1
        return Running(c, job, started)

    def finish(self, r: Running) -> dict[str, Any]:
        """Enforce the job's deadline and return its checked result; keep the child for the
        next job if its program was pure and ended cleanly, else kill it (reaped later, in
        `cleanup`, so its exit does not sit between two programs either)."""
        c, job = r.child, r.job
        deadline = r.started + job["limits"]["timeout_s"]
        violation, result, timed_out = self._collect(r, deadline)
        if result is None and not timed_out:  # closed its pipe: let it finish dying, so the
            timed_out = not _wait_exit(c.pid, deadline)  # verdict doesn't depend on a race
        wall = time.monotonic() - r.started
        self.running = None
        cpu = result.get("cpu_s") if isinstance(result, dict) else None
        if violation is None and result is not None:
            outcome = verdict.checked(result, len(job["inputs"]))
            pure = c.verdicts.pure(c.jobs)
            if pure and outcome["status"] in verdict.REUSABLE and self._fit(c):
                self.kept = c
            else:
                self._retire(c)
        else:
            self._kill_group(c.pid)
            _, status, usage = os.wait4(c.pid, 0)
            cpu = usage.ru_utime + usage.ru_stime - c.cpu_before
            outcome = verdict.from_exit(job, violation, result, timed_out, status, usage, cpu)
        if self.kept is not c:
            if c.ahead is not None:  # whatever the child did with it is discarded
                self.jobs.put_back(c.ahead)
                c.ahead = None
            c.close()
        outcome["wall_s"] = round(wall, 6)
        plausible = isinstance(cpu, (int, float)) and 0 <= cpu < 1e6  # a child's claim
        outcome["cpu_s"] = round(cpu, 6) if plausible else None
        outcome["shared_process"] = c.jobs > 0  # statistics only: never part of a result
        c.jobs += 1
        return outcome

    def _take_kept(self, job: dict[str, Any]) -> Child | None:
        """The kept child, its CPU limit re-armed for `job`, or None (then it is retired)."""
        c, self.kept = self.kept, None
        if c is None:
            return None
        if c.limits == job["limits"] and self._arm(c, [job]):
            return c
        self._retire(c)
        c.close()
        return None

    def _resume(self) -> Running | None:
        """The kept child's next program: the job it was sent ahead, now its running one
        (CPU limit re-armed), or a job already here; None if there is none yet."""
        c = self.kept
        if c is None or c.ahead is None:
            return self._start_next(wait=False)
        (job, frame), c.ahead, self.kept = c.ahead, None, None
        if not self._arm(c, [job]):
            self._retire(c)
            c.close()
            return self.start(job, frame)
        self.running = c.pid
        return Running(c, job, time.monotonic())

    def _send_ahead(self, r: Running | None) -> None:
        """Write the next job into the pipe of the kept child running `r`, if one is here:
        the child starts it the moment it has reported `r` (when `r` was pure and ended
        cleanly) instead of sleeping until the worker has judged `r`. The worker judges
        `r` and the child all the same before it takes anything more from that child
        (`finish`); when either fails, the child is killed and the job runs elsewhere.

        Not to a child on its first program, whose CPU limit it sets itself; not a job with
        other limits; and only a job that fits in the pipe's free half, so that the write
        can never block while `r` runs and its deadline needs watching."""
        if r is None or r.child.jobs == 0 or r.child.ahead is not None or self.jobs is None:
            return
        item = self.jobs.next(wait=False)
        if item is None:
            return
        c, (job, frame) = r.child, item
        room = c.pipe_size // 2 - _unread(c.job_w)
        if job["limits"] != c.limits or len(frame) > room or not self._arm(c, [r.job, job]):
            self.jobs.put_back(item)
            return
        with contextlib.suppress(OSError):  # a child that died: its report says so
            write_raw(c.job_w, frame)
        c.ahead = item

    def _arm(self, c: Child, jobs: list[dict[str, Any]]) -> bool:
        """Move `c`'s soft CPU limit to what it has used (as of its last check) plus the
        time limits of `jobs`, the ones it may run from now on; False if it cannot be.

        RLIMIT_CPU counts the process's whole life. A child holding its next job gets the
        time of both, so that the next one never starts under what is left of this one's;
        once it runs, the limit is moved again to its own (`_resume`). The wall-clock
        deadline of each job holds all the while."""
        soft = math.ceil(c.cpu_before)
        soft += sum(limits.cpu_seconds(job["limits"]["timeout_s"]) for job in jobs)
        with contextlib.suppress(OSError):  # gone, or a container's hard limit is lower
            if c.cpu_hard is None:
                c.cpu_hard = resource.prlimit(c.pid, resource.RLIMIT_CPU)[1]
            if c.cpu_hard == resource.RLIM_INFINITY or soft <= c.cpu_hard:
                resource.prlimit(c.pid, resource.RLIMIT_CPU, (soft, c.cpu_hard))
                return True
        return False

    def _retire(self, c: Child) -> None:
        """Kill `c`'s process group; it is reaped later (`cleanup`), off the path between
        two programs."""
        self._kill_group(c.pid)
        self.unreaped.add(c.pid)

    def _fit(self, c: Child) -> bool:
        """Whether `c` may run another program (see `fits`); records its CPU time so far,
        which the next job's CPU limit starts from."""
        now = proc_status(c.stat_fd)
        if now is not None:
            c.cpu_before = now["cpu"]
        return fits(c.base, now)

    def _collect(self, r: Running, deadline: float) -> tuple[str | None, Any, bool]:
        """Read the child's frames until its result, end of file or the deadline. Meanwhile
        read the next jobs if the pool sends them (and send one ahead to the child, if it
        holds none), and write held results once they have waited MAX_HOLD_S. Frames
        after the result (the next program's, from a child that was sent it ahead) stay
        for the next call."""
        c, violation = r.child, None
        poller = select.poll()
        poller.register(c.report_r, select.POLLIN)
        reading_jobs = False
        while True:
            while c.reader.pending:
                frame = c.reader.pending.pop(0)
                if isinstance(frame.message, dict) and "violation" in frame.message:
                    violation = violation or str(frame.message["violation"])[:300]
                else:
                    return violation, decode_packed(frame, "outputs"), False
            if self.jobs is not None and self.jobs.want() != reading_jobs:
                reading_jobs = not reading_jobs
                if reading_jobs:
                    poller.register(self.jobs.fd, select.POLLIN)
                else:
                    poller.unregister(self.jobs.fd)
            wake = deadline
            if self.held_since is not None:
                wake = min(deadline, self.held_since + MAX_HOLD_S)
            # past the deadline, still take a result that is already there: checking the
            # next job may have kept this loop from looking
            events = poller.poll(max(0.0, wake - time.monotonic()) * 1000)
            if not events:
                if wake < deadline:
                    self._flush()
                    continue
                return violation, None, True
            if reading_jobs and any(ready == self.jobs.fd for ready, _ in events):
                self.jobs.pull()
                self._send_ahead(r)
            if not any(ready == c.report_r for ready, _ in events):
                continue
            data = os.read(c.report_r, 1 << 16)
            if not data:
                return violation, None, False
            try:
                c.reader.pending.extend(c.reader.feed(data))
            except ProtocolError as e:
                return violation, {"malformed": str(e)}, False

    def _kill_group(self, pid: int) -> None:
        for target in (
            lambda: os.killpg(pid, signal.SIGKILL),
            lambda: os.kill(pid, signal.SIGKILL),
        ):
            with contextlib.suppress(OSError):
                target()

    def cleanup(self) -> None:
        """Reap what has exited; kill every leftover descendant; empty the scratch directory.

        Escaped descendants (setsid, double fork) only show up as our children once the
        program's process is reaped, so when the pids cgroup shows more tasks than the
        worker, its spare and the children still exiting — or when there is no cgroup to
        count with — every child is reaped now and the rest hunted down before the next job.
        """
        self._reap_exited()
        if self._maybe_escaped():
            self._reap_all(keep={c.pid for c in (self.spare, self.kept) if c is not None})
        if os.listdir(self.scratch):
            isolation.wipe(self.scratch)

    def _reap_exited(self) -> None:
        for pid in list(self.unreaped):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.unreaped.discard(pid)

    def _maybe_escaped(self) -> bool:
        path = self.layers.get("pids_cgroup")
        if not path:
            return True
        try:
            with open(os.path.join(path, "pids.current")) as f:
                current = int(f.read())
        except (OSError, ValueError):
            return True
        alive = (self.spare is not None) + (self.kept is not None)
        return current > 1 + alive + len(self.unreaped)

    def _reap_all(self, keep: set[int | None] | None = None) -> None:
        """Wait for every killed child, then kill and reap any descendant not in `keep`."""
        for pid in self.unreaped:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.unreaped.clear()
        keep = keep or set()
        for _ in range(10_000):
            orphans = [p for p in children(os.getpid()) if p not in keep]
            if not orphans:
                break
            for pid in orphans:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            for pid in orphans:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)


def children(pid: int) -> list[int]:
    """The live children of process `pid` (of its main thread: every process here has one)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan for processes whose parent is `pid`
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            found.append(int(entry))
                except (OSError, IndexError, ValueError):
                    pass
        return found


def _unread(fd: int) -> int:
    """Bytes in a pipe that its reader has not taken yet (FIONREAD; from either end)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def fits(base: dict[str, Any], now: dict[str, Any] | None) -> bool:
    """Whether a child that was `base` before its first program and is `now` after its
    latest may run another: alive, one thread, not grown by more than GROWTH_LIMIT."""
    return (
        now is not None
        and bool(base)
        and now["threads"] == 1
        and now["size"] <= base["size"] + GROWTH_LIMIT
        and now["resident"] <= base["resident"] + GROWTH_LIMIT
    )


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_status(stat_fd: int) -> dict[str, Any] | None:
    """A child's threads, size and resident memory (bytes) and CPU seconds, read from its
    open /proc/PID/stat (from outside: nothing the program does can change what it says),
    or None if it is gone or dying."""
    try:
        stat = os.pread(stat_fd, 4096, 0).rsplit(b")", 1)[1].split()
        if stat[0] in (b"Z", b"X"):
            return None
        return {  # proc(5): fields 3, 14, 15, 20, 23 and 24, counted from 3 here
            "threads": int(stat[17]),
            "size": int(stat[20]),
            "resident": int(stat[21]) * _PAGE,
            "cpu": (int(stat[11]) + int(stat[12])) / _TICK,
        }
    except (OSError, ValueError, IndexError):
        return None


def _wait_exit(pid: int, deadline: float) -> bool:
    """Wait until child `pid` has exited (not reaping it) or the deadline; True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
        finally:
            os.close(fd)
    while time.monotonic() < deadline:  # kernels before 5.3: poll without reaping
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.001)
    return False


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="arcjobs.sandbox.worker")
    parser.add_argument("scratch")
    parser.add_argument("dsl_path")
    parser.add_argument("--max-procs", type=int, default=64)
    parser.add_argument("--no-audit", action="store_true", help="tests of the OS layers only")
    parser.add_argument(
        "--fork-per-program", action="store_true", help="never let two programs share a child"
    )
    args = parser.parse_args()
    jobs, results = os.dup(0), os.dup(1)  # keep the channels off fds 0/1/2
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    Worker(
        args.scratch, args.dsl_path, not args.no_audit, args.max_procs, not args.fork_per_program
    ).serve(jobs, results)


if __name__ == "__main__":
    main()
