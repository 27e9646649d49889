"""Sandbox speed: a fresh locked-down process per program, against running programs bare.

Two workloads, every program a distinct source (nothing deduplicated, nothing cached):
  corpus  the 50 corpus programs on their own ARC-AGI-1 training tasks (median ~0.2 ms)
  ms      those of them that take 1-10 ms unprotected here: BARC-style programs of a few ms,
          what the speed goal is about

Modes, measured in this one process:
  (a)   unprotected: every program exec'd here, no isolation at all (the baseline)
  (a2)  (a) in two forked processes at once, taking programs from a shared counter as a
        pool's workers do: what this machine gives two processes that share nothing
  (b1), (b2)  the executor (cache off) on a running pool of 1 and of 2 workers: the steady
        state of an execute step of 100,000s of programs (the pool's start-up, reported on
        its own line, is excluded)
  floor  a bare fork + wait of the same worker (its real warm image, its seccomp filter on),
        and a fork that puts up every layer and exits: what a process per program costs
        before any program runs
  (c)   a fresh `python -I` per program;  (d) the executor re-run on a warm cache

(a), (a2), (b1) and (b2) run in rounds, back to back in a rotating order, and each round's
ratios are kept: this VM's speed swings by up to 1.8x within seconds, and only modes
measured under the same load compare. Goals (issue 17): b1/a >= 0.75 on `ms`, and
b2/b1 >= 0.9 x a2/a. Per program, the CPU of the executor, the workers and the programs'
processes is read from /proc (a worker's cutime holds its reaped children's).

    .venv/bin/python benchmarks/sandbox.py [--reps 8] [--rounds 9] [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arcjobs.arc.tasks import load_dataset  # noqa: E402
from arcjobs.sandbox import Limits, Program, ResultCache, execute  # noqa: E402
from arcjobs.sandbox.dsl import DSL_PATH, load_common  # noqa: E402
from arcjobs.sandbox.pool import Pool  # noqa: E402

CORPUS = ROOT / "arcjobs" / "sandbox" / "corpus"
LIMITS = Limits(timeout_s=10, memory_mb=2048)
TICK = os.sysconf("SC_CLK_TCK")
SUBPROCESS_RUNNER = """
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("common", sys.argv[1])
module = importlib.util.module_from_spec(spec); sys.modules["common"] = module; spec.loader.exec_module(module)
job = json.loads(sys.stdin.read())
ns = {"__name__": "__main__"}
exec(compile(job["code"], "<program>", "exec"), ns)
print(json.dumps([np.asarray(ns["transform"](np.array(g))).tolist() for g in job["inputs"]]))
"""


def inputs_of(task) -> list:
    return [x for x, _ in task.train] + list(task.test_inputs)


def unprotected(programs: Iterable[Program], tasks: dict) -> float:
    """(a): exec every program here, fresh namespace each, outputs validated like the sandbox."""
    started, ended = _unprotected_span(programs, tasks)
    return ended - started


def _unprotected_span(programs: Iterable[Program], tasks: dict) -> tuple[float, float]:
    """When (a) started and ended, on the clock every process shares."""
    import numpy as np

    from arcjobs.sandbox.outputs import to_grid

    sys.modules["common"] = load_common()
    started = time.perf_counter()
    for p in programs:
        namespace = {"__name__": "__main__"}
        exec(compile(p.code, "<program>", "exec", dont_inherit=True), namespace)
        for grid in inputs_of(tasks[p.task_id]):
            to_grid(namespace["transform"](np.array(grid, dtype=np.int64)))
    return started, time.perf_counter()


def workloads(reps: int) -> tuple[dict[str, list[Program]], dict]:
    """Both workloads, each program `reps` times as distinct sources; `ms` picked by
    timing every corpus program here, unprotected (best of three)."""
    ids = sorted(p.stem for p in CORPUS.glob("*.py"))
    tasks = load_dataset("arc-agi-1/training", task_ids=ids)
    sources = {t: (CORPUS / f"{t}.py").read_text() for t in ids}
    took = {t: min(unprotected([Program(t, 0, sources[t])], tasks) for _ in range(3)) for t in ids}
    few_ms = [t for t in ids if 0.001 <= took[t] < 0.010]

    def repeated(chosen: list[str]) -> list[Program]:
        return [
            Program(t, rep, f"{sources[t]}\n# rep {rep}\n") for rep in range(reps) for t in chosen
        ]

    return {"corpus": repeated(ids), "ms": repeated(few_ms)}, tasks


def sandboxed(programs: list[Program], tasks: dict, pool: Pool | None, cache=None) -> float:
    """(b)/(d): the executor's seconds for `programs` on `pool` (a new one of 2 if None)."""
    started = time.perf_counter()
    results = list(execute(programs, tasks, LIMITS, workers=2, cache=cache, pool=pool))
    seconds = time.perf_counter() - started
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} programs failed in the sandbox, e.g. {bad[0].error}")
    return seconds


class Pair:
    """(a) in two processes at once, sharing a workload the way a pool's workers do (each
    takes the next program when it is done with one, from a counter in shared memory). Two
    helpers forked once, before any pool starts, and warmed by one pass, so that no fork,
    import or copy-on-write fault is in the time."""

    def __init__(self, workloads: list[list[Program]], tasks: dict) -> None:
        import multiprocessing

        self.next = multiprocessing.get_context("fork").Value("i", 0)
        self.helpers: list[tuple[int, int, int]] = []
        for _ in range(2):
            to_r, to_w = os.pipe()
            back_r, back_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    for fd in (to_w, back_r, *(fd for _, *fds in self.helpers for fd in fds)):
                        os.close(fd)  # the other helper's too, or it never sees its EOF
                    with os.fdopen(to_r) as commands:
                        for line in commands:
                            span = _unprotected_span(self._take(workloads[int(line)]), tasks)
                            os.write(back_w, json.dumps(span).encode() + b"\n")
                finally:
                    os._exit(0)
            os.close(to_r)
            os.close(back_w)
            self.helpers.append((pid, to_w, back_r))
        for index in range(len(workloads)):  # each helper's first pass copies its pages
            self.run(index)

    def _take(self, programs: list[Program]) -> Iterator[Program]:
        while True:
            with self.next.get_lock():
                index = self.next.value
                self.next.value += 1
            if index >= len(programs):
                return
            yield programs[index]

    def run(self, index: int) -> float:
        """Seconds from the first helper's start to the last one's end on workload `index`."""
        self.next.value = 0
        for _, to_w, _ in self.helpers:
            os.write(to_w, f"{index}\n".encode())
        spans = [json.loads(os.read(back_r, 256)) for _, _, back_r in self.helpers]
        return max(end for _, end in spans) - min(start for start, _ in spans)

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, to_w, back_r in self.helpers:
            os.close(to_w)
            os.waitpid(pid, 0)
            os.close(back_r)


def _stat(pid: int) -> tuple[float, float, int, int]:
    """A live process's own CPU seconds and its reaped children's, and their minor page
    faults (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    minflt, cminflt = int(fields[7]), int(fields[8])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK, minflt, cminflt


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def accounted(pool: Pool, run: Callable[[], float]) -> tuple[float, dict[str, float]]:
    """`run()`'s seconds, and the CPU seconds of this process (the executor), the pool's
    workers and their children (the programs' processes) while it ran, and the workers'
    and the children's page faults."""
    workers = pool.worker_pids()
    before = [_stat(w) for w in workers], _self_cpu()
    seconds = run()
    after = [_stat(w) for w in workers], _self_cpu()
    deltas = [[a[i] - b[i] for a, b in zip(after[0], before[0], strict=True)] for i in range(4)]
    return seconds, {
        "executor": after[1] - before[1],
        "workers": sum(deltas[0]),
        "programs": sum(deltas[1]),
        "worker faults": sum(deltas[2]),
        "program faults": sum(deltas[3]),
    }


def rounds(
    workloads: dict[str, list[Program]], tasks: dict, count: int
) -> dict[str, list[dict[str, float]]]:
    """Per workload and round, (a), (a2), (b1) and (b2) back to back in a rotating order, on
    running pools: the ratios of each round, and (b)'s CPU per program."""
    names = list(workloads)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with (
        Pair([workloads[n] for n in names], tasks) as pair,
        Pool(1, str(DSL_PATH)) as one,
        Pool(2, str(DSL_PATH)) as two,
    ):
        for pool in (one, two):  # both pools up and warm before anything counts
            sandboxed(workloads[names[0]][:20], tasks, pool)
        for r in range(count):
            for index, name in enumerate(names):
                programs, n = workloads[name], len(workloads[name])
                modes: dict[str, Callable[[], tuple[float, dict[str, float] | None]]] = {
                    "a": lambda programs=programs: (unprotected(programs, tasks), None),
                    "a2": lambda index=index: (pair.run(index), None),
                    "b1": lambda p=programs: accounted(one, lambda: sandboxed(p, tasks, one)),
                    "b2": lambda p=programs: accounted(two, lambda: sandboxed(p, tasks, two)),
                }
                order = list(modes)[r % 4 :] + list(modes)[: r % 4]
                measured = {mode: modes[mode]() for mode in order}
                s = {mode: took for mode, (took, _) in measured.items()}
                row = {
                    "b1/a": s["a"] / s["b1"],
                    "b2/b1": s["b1"] / s["b2"],
                    "a2/a": s["a"] / s["a2"],
                }
                row["a ms"], row["b1 ms"] = s["a"] / n * 1e3, s["b1"] / n * 1e3
                for mode in ("b1", "b2"):
                    for part, used in measured[mode][1].items():
                        scale = 1 if part.endswith("faults") else 1e3  # CPU in ms per program
                        row[f"{mode} {part}"] = used / n * scale
                rows[name].append(row)
    return rows


def floor(count: int) -> dict[str, float]:
    """Per fork of a real worker's warm image (its filter on), in a helper process: a bare
    fork + wait, and a fork that prepares and locks down like a spare child, then exits.
    Wall and CPU (the worker's and the child's) in ms."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, json.dumps(_floor_in_worker(count)).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        found = json.loads(f.read())
    os.waitpid(pid, 0)
    return found


def _floor_in_worker(count: int) -> dict[str, float]:
    from arcjobs.sandbox import child
    from arcjobs.sandbox.worker import Worker

    worker = Worker(str(DSL_PATH))

    def bare() -> int:
        pid = worker.fork()
        if pid == 0:
            os._exit(0)
        return pid

    def locked() -> int:
        def serve() -> None:
            child.prepare(worker.ctx)
            child.lock_down(worker.ctx)
            os._exit(0)

        c = worker._fork_child(serve)
        c.close()
        return c.pid

    found = {}
    for name, start in (("bare", bare), ("locked", locked)):
        for _ in range(20):  # warm
            os.waitpid(start(), 0)
        own, kids = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        started = time.perf_counter()
        for _ in range(count):
            os.waitpid(start(), 0)
        wall = time.perf_counter() - started
        own2, kids2 = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        found[f"{name} wall ms"] = wall / count * 1e3
        found[f"{name} worker ms"] = (
            (own2.ru_utime + own2.ru_stime - own.ru_utime - own.ru_stime) / count * 1e3
        )
        found[f"{name} child ms"] = (
            (kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime) / count * 1e3
        )
    return found


def fault_costs(pages: int = 16384) -> dict[str, float]:
    """µs per minor page fault here: a first write to fresh anonymous memory, and to memory
    a fork shares with its parent (a forked child's first write to the warm image)."""
    import mmap

    region = mmap.mmap(-1, pages * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def touch() -> float:
        started = time.perf_counter()
        for offset in range(0, pages * 4096, 4096):
            region[offset] = 1
        return time.perf_counter() - started

    zero_fill, loop = touch(), touch()  # the second pass: the loop's own cost, no fault
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, str(touch()).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        cow = float(f.read())
    os.waitpid(pid, 0)
    return {
        "zero-fill us": (zero_fill - loop) / pages * 1e6,
        "copy-on-write us": (cow - loop) / pages * 1e6,
    }


def fresh_subprocess(programs: list[Program], tasks: dict) -> float:
    """(c): `python -I` per program, importing numpy, scipy and the DSL every time."""
    started = time.perf_counter()
    for p in programs:
        job = json.dumps(
            {"code": p.code, "inputs": [g.tolist() for g in inputs_of(tasks[p.task_id])]}
        )
        subprocess.run(
            [sys.executable, "-I", "-c", SUBPROCESS_RUNNER, str(DSL_PATH)],
            input=job, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return time.perf_counter() - started


def pool_startup(tasks: dict) -> float:
    """Seconds from starting a one-worker pool to its first result (a trivial program)."""
    one = [Program(next(iter(tasks)), "startup", "def transform(g):\n    return g\n")]
    started = time.perf_counter()
    list(execute(one, tasks, LIMITS, workers=1))
    return time.perf_counter() - started


def _median(rows: list[dict[str, float]], key: str, digits: int = 2) -> str:
    values = [row[key] for row in rows]
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    low, mid, high = statistics.quantiles(values, n=4)
    return f"{mid:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=8, help="each program this many times")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of (a), (a2), (b1), (b2)")
    parser.add_argument("--quick", action="store_true", help="one repetition, two rounds")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    reps, count = (1, 2) if args.quick else (args.reps, args.rounds)
    loads, tasks = workloads(reps)
    for name, programs in loads.items():
        print(f"{name}: {len(programs)} programs", file=sys.stderr)
    per_round = rounds(loads, tasks, count)
    fork = floor(200 if args.quick else 1000)
    faults = fault_costs()
    startup = pool_startup(tasks)
    corpus = loads["corpus"]
    sub_n = 5 if args.quick else 40
    c = fresh_subprocess(corpus[:sub_n], tasks) / sub_n
    with tempfile.TemporaryDirectory() as tmp:
        cache = ResultCache(Path(tmp) / "c.sqlite")
        b = sandboxed(corpus, tasks, None, cache) / len(corpus)
        cache.flush()
        d = min(sandboxed(corpus, tasks, None, cache) for _ in range(2)) / len(corpus)
        cache.close()

    ms = per_round["ms"]
    lines = [
        f"## Sandbox speed — {datetime.date.today().isoformat()}",
        "",
        f"- machine: {platform.node() or 'host'} ({platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, "
        f"kernel {platform.release()}",
        f"- command: `.venv/bin/python benchmarks/sandbox.py"
        f"{' --quick' if args.quick else f' --reps {reps} --rounds {count}'}`",
        f"- every program in a fresh process with every layer on (Landlock, seccomp, rlimits, "
        f"no capabilities, audit hook); median [quartiles] of {count} rounds, each running "
        f"(a), (a2), (b1) and (b2) back to back on running pools",
        "",
        "| workload | programs | (a) ms/program | (b1) ms/program | b1/a | b2/b1 | a2/a | (b2/b1)/(a2/a) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in per_round.items():
        scaling = [row["b2/b1"] / row["a2/a"] for row in rows]
        lines.append(
            f"| {name} | {len(loads[name])} | {_median(rows, 'a ms')} | {_median(rows, 'b1 ms')} "
            f"| {_median(rows, 'b1/a')} | {_median(rows, 'b2/b1')} | {_median(rows, 'a2/a')} "
            f"| {statistics.median(scaling):.2f} |"
        )
    overhead = [row["b1 ms"] - row["a ms"] for row in ms]
    lines += [
        "",
        f"- goals, on `ms`: b1/a ≥ 0.75 (here {_median(ms, 'b1/a')}); (b2/b1)/(a2/a) ≥ 0.9 "
        f"(here {statistics.median(row['b2/b1'] / row['a2/a'] for row in ms):.2f})",
        f"- per program, (b1) − (a) on `ms`: {statistics.median(overhead):.2f} ms of wall; its "
        f"floor, a bare fork + wait of the same worker: {fork['bare wall ms']:.2f} ms of wall "
        f"({fork['bare worker ms']:.2f} ms CPU in the worker, {fork['bare child ms']:.2f} in the "
        f"child); a fork that puts up every layer and exits: {fork['locked wall ms']:.2f} ms "
        f"({fork['locked worker ms']:.2f} + {fork['locked child ms']:.2f} ms CPU)",
        f"- CPU per program with 1 worker on `ms`: programs' processes "
        f"{_median(ms, 'b1 programs')} ms, worker {_median(ms, 'b1 workers')} ms, "
        f"executor {_median(ms, 'b1 executor')} ms, against {_median(ms, 'a ms')} ms in (a); "
        f"with 2 workers {_median(ms, 'b2 programs')}, {_median(ms, 'b2 workers')} and "
        f"{_median(ms, 'b2 executor')} ms",
        f"- minor page faults per program on `ms`, 1 worker: {_median(ms, 'b1 program faults', 0)} "
        f"in the program's process (fork to exit), {_median(ms, 'b1 worker faults', 0)} in the "
        f"worker; on this machine a copy-on-write fault costs {faults['copy-on-write us']:.1f} µs "
        f"and a zero-filled one {faults['zero-fill us']:.1f} µs (one write per page of 64 MB)",
        f"- pool start-up (first result of a one-worker pool): {startup:.2f} s, not in (b)",
        f"- (c) fresh `python -I` per program: {c * 1e3:.0f} ms/program (from {sub_n}); "
        f"(b1) on `corpus` is {c / (statistics.median(r['b1 ms'] for r in per_round['corpus']) / 1e3):.0f}× faster",
        f"- (d) cached re-run of `corpus`, new pool of 2: {d * 1e6:.0f} µs/program, "
        f"{b / d:.0f}× the same run uncached ({b * 1e3:.2f} ms/program, start-up included)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with (ROOT / "BENCHMARKS.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
