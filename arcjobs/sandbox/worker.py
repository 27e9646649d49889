"""The fork server: a warm process that forks one locked-down child per program.

Started by the pool as `python -m arcjobs.sandbox.worker DSL_PATH` with a scrubbed
environment. Once, at start, it:

- dies with the pool (PR_SET_PDEATHSIG), becomes a child subreaper, and moves into an empty
  network namespace and a pids cgroup of its own where it may (`isolation`, `cgroup`);
- imports numpy, scipy and the DSL, so that every child starts warm;
- makes what its children apply: the Landlock ruleset of what programs may read
  (`readable`, `landlock`) and the child's seccomp filter, and decides whether children run
  as uid 65534 (`child.Context`);
- makes itself undumpable and installs the sandbox's first seccomp filter on itself, so
  that every child inherits it already compiled (`seccomp.Filter.worker`);
- forks a probe child that locks down and tries what each layer must refuse (`probe`), and
  says in its hello frame which layers are in force.

Then, for every job on stdin: it hands the job to its spare child (forked, locked down and
rehearsed while the previous program ran), forks the next spare, waits for the child's report until the
job's wall-clock deadline, SIGKILLs the child's process group, and answers with one result
frame on stdout. Children are reaped off the path between two programs, and as a subreaper
the worker hunts down any descendant that escaped the group (only possible without the
seccomp layer). A child that cannot put up a required layer reports `{"fatal": ...}`, which
the worker passes on: the run stops, since it is no program's fault.

The worker forks through libc's fork, not `os.fork`: the interpreter's at-fork handlers
(threading's, random's) would cost each child ~0.5 ms of CPU and do nothing useful here; the
worker has one thread, and every child reseeds its generators.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from arcjobs.sandbox import cgroup, child, dsl, isolation, limits, policy, probe, verdict
from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.isolation import NoCapabilities
from arcjobs.sandbox.landlock import Ruleset
from arcjobs.sandbox.protocol import (
    FrameReader,
    ProtocolError,
    decode_packed,
    encode,
    encode_packed,
    write_frame,
    write_raw,
)
from arcjobs.sandbox.readable import readable
from arcjobs.sandbox.seccomp import Filter, Loadable, Unsupported, install

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
MAX_RESULT = 8 * 1024 * 1024
# modules BARC programs import themselves: loaded once here, not once per program
PRELOAD = ("typing", "random", "math", "itertools", "collections", "functools", "copy", "re")
HIGH_FD = 10  # the ruleset's descriptor is moved above the child's fixed ones
# the job every spare rehearses before its own (`child.run_job`): the path every job takes,
# so that its page faults are paid while the program before runs. Only that path: a
# rehearsal of DSL calls too (tried) took 1.9 ms of CPU per child and gave nothing back
# where every core is busy
REHEARSAL = {
    "code": "def transform(input_grid):\n    return input_grid\n",
    "inputs": Packed.of([[[0, 2, 2], [0, 0, 1], [3, 0, 0]]]),
    "seed": 0,
    "limits": limits.Limits().to_dict(),
}


@dataclass
class Child:
    """A forked child and the worker's ends of its two pipes."""

    pid: int
    job_w: int
    report_r: int

    def close(self) -> None:
        for fd in (self.job_w, self.report_r):
            with contextlib.suppress(OSError):
                os.close(fd)


class Worker:
    """One fork server: layers prepared once, then one child per job."""

    def __init__(
        self, dsl_path: str, audit: bool = True, max_procs: int = 64, require: bool = True
    ) -> None:
        self.libc = isolation.libc()
        if self.libc is not None:
            self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        self.layers: dict[str, Any] = {"fresh_process": "every program", "audit_hook": audit}
        self.why: dict[str, str] = {}  # why a layer could not be prepared
        self.layers["network_namespace"] = isolation.private_network(self.libc)
        self.layers["subreaper"] = bool(
            self.libc is not None and self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        )
        # the worker, its spare, a few children still exiting, and what a program may start
        self.layers["pids_cgroup"] = cgroup.enter(8 + max_procs)
        self.pids_fd = _open_pids_current(self.layers["pids_cgroup"])
        self.layers["rlimits"] = ["CPU", "AS", "DATA", "FSIZE", "NOFILE", "NPROC", "CORE"]
        import numpy  # noqa: F401  (the warm image every child starts from)
        import scipy.ndimage  # noqa: F401

        for name in PRELOAD:
            __import__(name)
        sys.modules["common"] = dsl.new_common(dsl.compile_common(dsl_path)[1], dsl_path)
        allowed = readable(dsl_path)
        drop = isolation.can_switch_uid(self.libc) and isolation.readable_by_others(
            allowed.dirs + allowed.files
        )
        self.ctx = child.Context(
            libc=self.libc,
            ruleset=self._prepared("landlock", lambda: _high(Ruleset.build(allowed, self.libc))),
            child_filter=self._prepared("seccomp", lambda: Loadable(Filter.child(), self.libc)),
            no_capabilities=self._prepared("capabilities", lambda: NoCapabilities(self.libc)),
            hook=policy.make_hook(allowed, _record, child.PROGRAM_FILE) if audit else None,
            drop_uid=drop,
            require=require,
            base_vm=limits.vm_size_bytes(),
            rehearsal=encode_packed(REHEARSAL, "inputs"),
        )
        # what every child would otherwise set itself, costing it page faults: done once here
        os.chdir("/")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, not kills
        self.layers["worker_undumpable"] = isolation.not_dumpable(self.libc)
        if self.ctx.child_filter is not None:
            self._prepared("seccomp", self._filter_self)
        if self.ctx.ruleset is not None:
            self.layers.update(self.ctx.ruleset.layers())
        self.spare: Child | None = None
        self.unreaped: set[int] = set()  # killed after reporting, exit work still running
        self.fork = self.libc.fork if self.libc is not None else os.fork
        gc.collect()
        gc.freeze()  # children don't copy pages just to run the collector over old objects
        self.layers.update(self._probe())
        self.layers["why"] = self.why

    def _prepared(self, layer: str, make: Any) -> Any:
        """`make()`, or None (and the reason kept) where this machine cannot have `layer`."""
        try:
            return make()
        except (OSError, Unsupported, AttributeError) as e:
            self.why[layer] = str(e)
            return None

    def _filter_self(self) -> bool:
        """The worker's own filter: every child inherits it, compiled once."""
        if self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError("prctl(PR_SET_NO_NEW_PRIVS) failed")
        install(Filter.worker().for_pid(0), self.libc)
        return True

    def _probe(self) -> dict[str, Any]:
        """What a child locked down like every other one refuses (`probe`)."""
        ctx = dataclasses.replace(self.ctx, hook=None, require=False)
        c = self._fork_child(lambda: probe.serve(ctx))
        reader = FrameReader()
        frames: list = []
        with contextlib.suppress(OSError, ProtocolError):
            while not frames and (data := os.read(c.report_r, 1 << 16)):
                frames = reader.feed(data)
        c.close()
        os.waitpid(c.pid, 0)
        found = frames[0].message.get("probe") if frames else None
        if not isinstance(found, dict):
            self.why["probe"] = "the probe child did not report"
            return {name: False for name in probe.REQUIRED}
        return found

    def serve(self, jobs_fd: int, results_fd: int) -> None:
        write_frame(results_fd, {"hello": self.layers, "pid": os.getpid()})
        jobs = FrameReader()
        try:
            self.spare = self._fork_child()
            while (frame := jobs.next(jobs_fd)) is not None:
                job = decode_packed(frame, "inputs")
                outcome = self.run(job, frame.raw)
                write_raw(results_fd, encode_packed(outcome, "outputs"))
                if "fatal" in outcome:
                    return
                self.cleanup()
        finally:
            if self.spare is not None:
                self._kill_group(self.spare.pid)
            self._reap_all()

    def run(self, job: dict[str, Any], frame: bytes) -> dict[str, Any]:
        """Run `job` in the spare child and return its checked result; the next spare is
        forked while the program runs, so no fork sits between two programs where a core
        is free for it."""
        c = self.spare if self.spare is not None else self._fork_child()
        self.spare = None
        started = time.monotonic()
        deadline = started + job["limits"]["timeout_s"]
        os.set_blocking(c.job_w, False)
        with contextlib.suppress(OSError):  # no room now: the next job forks its own
            self.spare = self._fork_child(retry=False)
        violation, result, timed_out = self._collect(c, frame, deadline)
        if result is None and not timed_out:  # closed its pipe: let it finish dying, so the
            timed_out = not _wait_exit(c.pid, deadline)  # verdict doesn't depend on a race
        wall = time.monotonic() - started
        self._kill_group(c.pid)
        c.close()
        if isinstance(result, dict) and "fatal" in result:
            os.waitpid(c.pid, 0)
            return {"fatal": str(result["fatal"])[:500], "status": "crash", "outputs": None}
        cpu = result.get("cpu_s") if isinstance(result, dict) else None
        if violation is None and result is not None:
            outcome = verdict.checked(result, len(job["inputs"]))
            self.unreaped.add(c.pid)  # reaped later, off the path between two programs
        else:
            _, status, usage = os.wait4(c.pid, 0)
            cpu = usage.ru_utime + usage.ru_stime
            outcome = verdict.from_exit(job, violation, result, timed_out, status, usage, cpu)
        outcome["wall_s"] = round(wall, 6)
        plausible = isinstance(cpu, (int, float)) and 0 <= cpu < 1e6  # a child's claim
        outcome["cpu_s"] = round(cpu, 6) if plausible else None
        return outcome

    def _fork_child(self, serve: Any = None, retry: bool = True) -> Child:
        """Fork a child that locks itself down and waits for its job on a pipe (or runs
        `serve` instead, for the probe).

        At the pids limit (children still exiting, or, without seccomp, a program's fork bomb
        filling the cgroup) it reaps what it can and tries once more if `retry`, else raises
        OSError.
        """
        job_r, job_w = os.pipe()
        report_r, report_w = os.pipe()
        pipes = (job_r, job_w, report_r, report_w)
        pid = self.fork()
        if pid < 0 and retry:
            self._reap_all(keep=set())
            pid = self.fork()
        if pid < 0:
            for fd in pipes:
                os.close(fd)
            raise OSError("fork failed")
        if pid == 0:  # the child: keep only its two pipes, on fixed numbers
            try:
                for high, fd in enumerate((report_w, job_r), 1000):
                    os.dup2(fd, high)
                for high, fd in enumerate((child.REPORT_FD, child.JOB_FD), 1000):
                    os.dup2(high, fd)
                (serve or (lambda: child.serve(self.ctx)))()
            finally:
                os._exit(70)
        for fd in (job_r, report_w):
            os.close(fd)
        with contextlib.suppress(OSError):  # also here: the child may not have run it yet
            os.setpgid(pid, pid)
        return Child(pid, job_w, report_r)

    def _collect(self, c: Child, frame: bytes, deadline: float) -> tuple[str | None, Any, bool]:
        """Write the job, then read the child's frames until its result, end of file or the
        deadline; returns (the first violation, the result, whether the deadline passed)."""
        violation = None
        reader = FrameReader(MAX_RESULT)
        unsent = memoryview(frame)
        poller = select.poll()
        poller.register(c.report_r, select.POLLIN)
        poller.register(c.job_w, select.POLLOUT)  # until the whole job is in the pipe
        while True:
            events = poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
            if not events:
                return violation, None, True
            for fd, _ in events:
                if fd == c.job_w:
                    try:
                        unsent = unsent[os.write(c.job_w, unsent) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # the child is gone: its report pipe says how
                        unsent = unsent[:0]
                    if not unsent:
                        poller.unregister(c.job_w)
                    continue
                data = os.read(c.report_r, 1 << 16)
                if not data:
                    return violation, None, False
                try:
                    frames = reader.feed(data)
                except ProtocolError as e:
                    return violation, {"malformed": str(e)}, False
                for got in frames:
                    message = got.message
                    if isinstance(message, dict) and "violation" in message:
                        violation = violation or str(message["violation"])[:300]
                    else:
                        return violation, decode_packed(got, "outputs"), False

    def _kill_group(self, pid: int) -> None:
        for target in (
            lambda: os.killpg(pid, signal.SIGKILL),
            lambda: os.kill(pid, signal.SIGKILL),
        ):
            with contextlib.suppress(OSError):
                target()

    def cleanup(self) -> None:
        """Reap what has exited; kill every leftover descendant.

        Escaped descendants (setsid, double fork: only without the seccomp layer) show up
        as our children once the program's process is reaped, so when the pids cgroup shows
        more tasks than the worker, its spare and the children still exiting (or when there
        is no cgroup to count with and no seccomp to rule them out) every child is reaped
        now and the rest hunted down before the next job.
        """
        for pid in list(self.unreaped):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.unreaped.discard(pid)
        if self._maybe_escaped():
            self._reap_all(keep={self.spare.pid} if self.spare is not None else set())

    def _maybe_escaped(self) -> bool:
        if self.pids_fd is None:
            return not self.layers.get("seccomp")
        try:
            current = int(os.pread(self.pids_fd, 64, 0))
        except (OSError, ValueError):
            return True
        return current > 1 + (self.spare is not None) + len(self.unreaped)

    def _reap_all(self, keep: set[int] | None = None) -> None:
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


def _record(what: str) -> None:
    """How the audit hook tells the worker of a violation: a frame on the report pipe, the
    moment it happens (the hook is made here, and runs in the child)."""
    write_raw(child.REPORT_FD, encode({"violation": what}))


def _high(ruleset: Ruleset) -> Ruleset:
    """The ruleset with its descriptor moved above the numbers a child's pipes take."""
    import fcntl

    fd = fcntl.fcntl(ruleset.fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(ruleset.fd)
    return Ruleset(fd, ruleset.abi)


def _open_pids_current(path: str | None) -> int | None:
    """The cgroup's task count, held open: read by `pread` for each job."""
    if path is None:
        return None
    try:
        return os.open(os.path.join(path, "pids.current"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


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
    parser.add_argument("dsl_path")
    parser.add_argument("--max-procs", type=int, default=64)
    parser.add_argument("--no-audit", action="store_true", help="tests of the kernel layers only")
    parser.add_argument(
        "--unprotected",
        action="store_true",
        help="run programs even where a kernel layer cannot be put up",
    )
    args = parser.parse_args()
    jobs, results = os.dup(0), os.dup(1)  # keep the channels off fds 0/1/2
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    Worker(args.dsl_path, not args.no_audit, args.max_procs, not args.unprotected).serve(
        jobs, results
    )


if __name__ == "__main__":
    main()
