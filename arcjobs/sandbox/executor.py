"""Execute a batch of programs against ARC tasks: cache, dedupe, pool, map back, score.

This is the library call behind `arcjobs sandbox run` and the `execute` step. For each
program it builds the inputs the program must see (the task's train and test inputs,
through the program's augmentation when it has one), looks the result up in the cache,
runs the misses in the worker pool — identical (source, inputs) pairs only once — and maps
every output back through the inverse augmentation before comparing it with the expected
grids, which stay in this process.

Results are yielded as they finish (cached ones first). Everything that goes into the
executions file is a function of the inputs only, so the same batch gives the same bytes on
any machine, in any order, with any number of workers; timings go to `SandboxRun.summary()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcjobs.arc.grids import outputs_fingerprint
from arcjobs.arc.statuses import STATUSES
from arcjobs.sandbox.cache import ResultCache, cache_key, key_prefix
from arcjobs.sandbox.grids import Packed
from arcjobs.sandbox.limits import Limits

if TYPE_CHECKING:
    from arcjobs.sandbox.pool import Pool

# bump whenever a change can alter a result or its cached form (policy, validation, limits,
# how outputs are stored): it is in every cache key
EXECUTOR_VERSION = "6"


@dataclass(frozen=True)
class Program:
    """One prediction to execute. code None means the completion held no program."""

    task_id: str
    sample_id: Any
    code: str | None
    augmentation: dict[str, Any] | None = None
    test_index: int | None = None


@dataclass
class ProgramResult:
    """The outcome of one program, outputs in the original (de-augmented) task frame."""

    index: int
    program: Program
    status: str
    error: str | None
    train_outputs: list[Any] | None
    test_outputs: list[Any] | None
    train_correct: list[bool]
    test_correct: list[bool] | None
    fingerprint: str | None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cached: bool = False
    unprotected: bool = False  # from a run that went on without a required kernel layer

    def record(self) -> dict[str, Any]:
        """The executions.jsonl line: deterministic fields only (no timings, no paths)."""
        p = self.program
        rec: dict[str, Any] = {"task_id": p.task_id, "sample_id": p.sample_id}
        if p.test_index is not None:
            rec["test_index"] = p.test_index
        rec.update(
            status=self.status,
            error=self.error,
            train_outputs=self.train_outputs,
            test_outputs=self.test_outputs,
            train_correct=self.train_correct,
            test_correct=self.test_correct,
            fingerprint=self.fingerprint,
            augmentation=p.augmentation,
            code=p.code,
        )
        if self.unprotected:
            rec["unprotected"] = True
        return rec


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass
class _Prepared:
    """What a task looks like to programs under one augmentation."""

    augmentation: Any  # arcjobs.arc.augment.Augmentation
    inputs: Packed  # what the program's process gets
    inputs_json: str  # what cache keys and seeds are made of
    n_train: int
    key_prefix: Any  # `cache.key_prefix` of the run's version and these inputs


@dataclass
class SandboxRun:
    """An iterable batch execution; `summary()` after iterating gives counts and timings."""

    programs: Sequence[Program]
    tasks: Mapping[str, Any]
    limits: Limits = field(default_factory=Limits)
    workers: int | None = None
    cache: ResultCache | None = None
    dsl_path: Path | None = None
    # go on where a kernel layer is missing: recorded in the summary, every record, cache keys
    unprotected: bool = False
    reject: str = "none"  # a static rejection policy (`arcjobs.sandbox.rejection`)
    pool: Pool | None = None  # a running pool to use and leave running, instead of a new one
    layers: dict[str, Any] | None = None
    counts: Counter = field(default_factory=Counter)
    stats: dict[str, Any] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)  # seconds per program actually run
    expected: dict[str, Any] = field(default_factory=dict)  # task id → `_expected`

    def __iter__(self) -> Iterator[ProgramResult]:
        from arcjobs.sandbox.dsl import DSL_PATH, DSL_VERSION
        from arcjobs.sandbox.pool import Pool

        started = time.monotonic()
        dsl_path = Path(self.pool.dsl_path if self.pool else self.dsl_path or DSL_PATH)
        limits = self.limits.to_dict()
        version = [EXECUTOR_VERSION, DSL_VERSION, _file_hash(dsl_path), limits]
        if self.unprotected:  # results that may be a cheat's never serve a protected run
            version.append("unprotected")
        prepared: dict[tuple[str, str], _Prepared] = {}
        jobs: dict[str, dict[str, Any]] = {}  # cache key → job, deduplicated
        waiting: dict[str, list[int]] = {}  # cache key → indices of programs sharing it
        stats = Counter()
        # workers start at the first miss, so their imports overlap preparing the rest
        with contextlib.ExitStack() as stack:
            pool = self.pool
            for index, program in enumerate(self.programs):
                if program.task_id not in self.tasks:
                    raise ValueError(f"program {index}: unknown task id {program.task_id!r}")
                refused = self._refuse(program)
                if refused is not None:
                    stats["refused"] += 1
                    yield self._finish(index, refused, None, 0)
                    continue
                prep = self._prepare(prepared, program, version)
                key = cache_key(prep.key_prefix, program.code)
                if key in waiting:
                    waiting[key].append(index)
                    stats["duplicates"] += 1
                    continue
                hit = _from_cache(self.cache.get(key)) if self.cache is not None else None
                if hit is not None:
                    stats["cached"] += 1
                    yield self._finish(index, hit, prep, True)
                    continue
                seed_text = f"{program.code}\0{prep.inputs_json}".encode("utf-8", "surrogatepass")
                seed = int(hashlib.sha256(seed_text).hexdigest()[:16], 16)
                waiting[key] = [index]
                if pool is None:
                    n = min(self.workers or default_workers(), len(self.programs) - index)
                    pool = stack.enter_context(
                        Pool(n, str(dsl_path), self.limits.max_procs, require=not self.unprotected)
                    )
                jobs[key] = {  # inputs travel packed: one blob per task and augmentation
                    "code": program.code,
                    "inputs": prep.inputs,
                    "seed": seed,
                    "limits": limits,
                }
            stats["executed"] = len(jobs)
            stats["workers"] = pool.size if jobs else 0
            run_started = time.monotonic()
            if jobs:
                for key, result in pool.run(list(jobs.items())):
                    self.layers = self.layers or pool.layers
                    if self.cache is not None:
                        self.cache.put(key, _to_cache(result))
                    # each program's own preparation: programs whose augmentations make the
                    # same inputs share a result, but each maps it back through its own
                    for i, index in enumerate(waiting[key]):
                        prep = self._prepare(prepared, self.programs[index], version)
                        yield self._finish(index, result, prep, i > 0)
        if self.cache is not None:
            self.cache.flush()
        stats["execute_s"] = time.monotonic() - run_started
        stats["total_s"] = time.monotonic() - started
        self.stats = dict(stats)

    def _refuse(self, program: Program) -> dict[str, Any] | None:
        """A result for programs that are not worth a process, or None to run it."""
        from arcjobs.sandbox.rejection import POLICIES

        if program.code is None:
            return {"status": "syntax_error", "error": "no ```python block in the completion"}
        size = len(program.code.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_source_bytes:
            return {
                "status": "syntax_error",
                "error": f"source is {size} bytes (limit {self.limits.max_source_bytes})",
            }
        policy = POLICIES[self.reject]
        why = policy(program.code) if policy is not None else None
        if why is not None:
            return {"status": "unsafe", "error": f"refused by the {self.reject} policy: {why}"}
        return None

    def _prepare(
        self, prepared: dict[tuple[str, str], _Prepared], program: Program, version: Any
    ) -> _Prepared:
        """The inputs `program` sees, made once per task and augmentation in a run;
        `version` (what the run's cache keys say it ran under) starts their key."""
        from arcjobs.arc.augment import Augmentation

        aug = program.augmentation
        aug_key = "null" if aug is None else json.dumps(aug, sort_keys=True)
        cached = prepared.get((program.task_id, aug_key))
        if cached is None:
            task = self.tasks[program.task_id]
            aug = Augmentation.from_dict(program.augmentation)
            grids = [x for x, _ in task.train] + list(task.test_inputs)
            inputs = [aug.apply(g) for g in grids]
            inputs_json = json.dumps([g.tolist() for g in inputs], separators=(",", ":"))
            prefix = key_prefix(version, inputs_json)
            cached = _Prepared(aug, Packed.of(inputs), inputs_json, len(task.train), prefix)
            prepared[(program.task_id, aug_key)] = cached
        return cached

    def _expected(self, task_id: str) -> tuple[list[Any], list[Any] | None]:
        """The task's expected train and test outputs as nested lists, made once per task:
        outputs arrive as validated lists of ints, so list equality is the exact comparison."""
        found = self.expected.get(task_id)
        if found is None:
            task = self.tasks[task_id]
            test = task.test_outputs
            found = (
                [y.tolist() for _, y in task.train],
                None if test is None else [y.tolist() for y in test],
            )
            self.expected[task_id] = found
        return found

    def _finish(
        self, index: int, raw: dict[str, Any], prep: _Prepared | None, cached: bool
    ) -> ProgramResult:
        program = self.programs[index]
        packed = raw.get("outputs")
        train_out = test_out = fingerprint = None
        if packed is not None and prep is not None:
            grids, aug, n = packed.views(), prep.augmentation, prep.n_train
            if not aug.is_identity:
                grids = [None if g is None else aug.invert(g) for g in grids]
            if any(g is not None for g in grids):
                fingerprint = outputs_fingerprint(grids[:n], grids[n:])
            lists = [None if g is None else g.tolist() for g in grids]
            train_out, test_out = lists[:n], lists[n:]
        expected_train, expected_test = self._expected(program.task_id)
        train_correct = _correct(train_out, expected_train)
        test_correct = None if expected_test is None else _correct(test_out, expected_test)
        self.counts[raw["status"]] += 1
        if not cached and "wall_s" in raw:
            self.walls.append(float(raw["wall_s"] or 0.0))
        return ProgramResult(
            index=index,
            program=program,
            status=raw["status"],
            error=raw.get("error"),
            train_outputs=train_out,
            test_outputs=test_out,
            train_correct=train_correct,
            test_correct=test_correct,
            fingerprint=fingerprint,
            wall_s=float(raw.get("wall_s") or 0.0),
            cpu_s=float(raw.get("cpu_s") or 0.0),
            cached=cached,
            unprotected=self.unprotected,
        )

    def summary(self) -> dict[str, Any]:
        """Counts by status, throughput, timings and the isolation layers that were active."""
        from arcjobs.sandbox.dsl import DSL_VERSION

        n = len(self.programs)
        total = self.stats.get("total_s", 0.0)
        return {
            "programs": n,
            "counts": {s: self.counts.get(s, 0) for s in STATUSES},
            "executed": self.stats.get("executed", 0),
            "cached": self.stats.get("cached", 0),
            "duplicates": self.stats.get("duplicates", 0),
            "refused": self.stats.get("refused", 0),
            "workers": self.stats.get("workers", 0),
            "seconds": round(total, 3),
            "programs_per_s": round(n / total, 1) if total > 0 else None,
            "program_seconds": _spread(self.walls),
            "limits": self.limits.to_dict(),
            "executor_version": EXECUTOR_VERSION,
            "dsl_version": DSL_VERSION,
            "isolation": isolation_report(self.layers, self.unprotected),
        }


def _to_cache(result: dict[str, Any]) -> dict[str, Any]:
    packed = result.get("outputs")
    return {**result, "outputs": None if packed is None else packed.to_json()}


def _from_cache(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cached result as the pool gives it, or None (a miss) for one in any other form."""
    if value is None or value.get("outputs") is None:
        return value
    try:
        return {**value, "outputs": Packed.from_json(value["outputs"])}
    except (KeyError, TypeError, ValueError):
        return None


def _spread(walls: list[float]) -> dict[str, float] | None:
    """Mean, median, 95th percentile and max of per-program wall times (None if none ran)."""
    if not walls:
        return None
    ordered = sorted(walls)
    last = len(ordered) - 1
    return {
        "mean": round(sum(ordered) / len(ordered), 4),
        "p50": round(ordered[min(last, len(ordered) // 2)], 4),
        "p95": round(ordered[min(last, int(0.95 * len(ordered)))], 4),
        "max": round(ordered[-1], 4),
    }


def _correct(outputs: list[Any] | None, expected: Sequence[Any]) -> list[bool]:
    """Per expected grid (a nested list): did the program produce exactly it?"""
    outputs = outputs if outputs is not None else [None] * len(expected)
    return [o is not None and o == e for o, e in zip(outputs, expected, strict=True)]


def isolation_report(layers: dict[str, Any] | None, unprotected: bool) -> dict[str, Any]:
    """Which layers were in force, as the workers' probes found them, plus the container's;
    `unprotected` and `missing` say whether the run went on without a required one."""
    from arcjobs.sandbox.probe import missing

    report: dict[str, Any] = {
        "container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
        "unprotected": unprotected,
    }
    if layers is None:
        report["workers"] = "none started (every result came from the cache or was refused)"
    else:
        report.update(layers)
        report["missing"] = missing(layers)
    return report


def execute(
    programs: Sequence[Program],
    tasks: Mapping[str, Any],
    limits: Limits | None = None,
    workers: int | None = None,
    cache: ResultCache | None = None,
    dsl_path: Path | None = None,
    unprotected: bool = False,
    pool: Pool | None = None,
    reject: str = "none",
) -> SandboxRun:
    """Execute `programs` on `tasks` (id → `arcjobs.arc.tasks.Task`); iterate for results.

    Results come in completion order, each with `.index` into `programs`. `workers`
    defaults to the CPUs this process may use. Nothing starts until iteration does.
    `unprotected=True` goes on where a kernel layer of the sandbox cannot be put up (else
    iterating raises `SandboxError`); every record then says so, and the cache keeps such
    results apart. `reject` names a static policy (`arcjobs.sandbox.rejection`) whose
    refusals become `unsafe` without running.

    `pool`, a running `arcjobs.sandbox.pool.Pool`, runs the batch instead of a pool started
    for it (and closed after it): a caller that executes many batches pays the workers'
    start-up once. Its own worker count, DSL (also in the cache keys) and process limit then
    apply, not `workers`, `dsl_path` or `limits.max_procs`; the caller closes it.
    """
    return SandboxRun(
        list(programs),
        tasks,
        limits or Limits(),
        workers,
        cache,
        dsl_path,
        unprotected,
        reject,
        pool=pool,
    )
