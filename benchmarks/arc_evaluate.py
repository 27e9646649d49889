"""Throughput of the evaluate and relabel steps' core on a realistic executions file.

Builds synthetic executions for a built-in dataset (per task: correct programs, identity
programs, wrong-shape programs, crashes and timeouts, some with augmentations), then times
in one process: the baseline (json-parsing every line, the least any reader must do),
`evaluate` and `relabel` over the same file. Prints and appends to BENCHMARKS.md the times
as ratios against the baseline, plus predictions per second.

    .venv/bin/python benchmarks/arc_evaluate.py [--dataset arc-agi-1/evaluation] [--per-task 64]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.executions import read_executions
from arcjobs.arc.grids import grid_to_list, outputs_fingerprint
from arcjobs.arc.metrics import evaluate
from arcjobs.arc.relabel import Options, relabel
from arcjobs.arc.tasks import load_dataset


def synthesize(tasks, per_task: int, rng: np.random.Generator, path: Path) -> int:
    kinds = ["correct", "identity", "crop", "crash", "timeout"]
    n = 0
    with path.open("w") as f:
        for tid, task in tasks.items():
            for i in range(per_task):
                kind = kinds[int(rng.integers(len(kinds)))]
                aug = Augmentation.random(rng)
                train = test = None
                status = {"crash": "crash", "timeout": "timeout"}.get(kind, "ok")
                if kind == "correct":
                    train = [grid_to_list(y) for _, y in task.train]
                    test = [grid_to_list(y) for y in task.test_outputs]
                elif kind in ("identity", "crop"):
                    cut = (
                        (lambda g: g[: max(1, g.shape[0] // 2)])
                        if kind == "crop"
                        else (lambda g: g)
                    )
                    train = [grid_to_list(cut(x)) for x, _ in task.train]
                    test = [grid_to_list(cut(x)) for x in task.test_inputs]
                code = f"def transform(g):\n    return g  # {kind} {i}" + " " * int(
                    rng.integers(50)
                )
                row = {
                    "task_id": tid, "sample_id": f"{tid}:{i}", "status": status, "error": None,
                    "code": code, "augmentation": aug.to_dict(),
                    "train_outputs": train, "test_outputs": test,
                    "fingerprint": outputs_fingerprint(train, test) if train else None,
                }  # fmt: skip
                f.write(json.dumps(row) + "\n")
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="arc-agi-1/evaluation")
    ap.add_argument("--per-task", type=int, default=64)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    tasks = load_dataset(args.dataset, limit=args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "executions.jsonl"
        n = synthesize(tasks, args.per_task, np.random.default_rng(0), path)
        size_mb = path.stat().st_size / 1e6

        t0 = time.perf_counter()
        with path.open() as f:
            for line in f:
                json.loads(line)
        baseline = time.perf_counter() - t0

        t0 = time.perf_counter()
        evaluate(tasks, read_executions(str(path), tasks, args.dataset), ks=[1, 2, 8, 32])
        t_eval = time.perf_counter() - t0

        t0 = time.perf_counter()
        relabel(tasks, read_executions(str(path), tasks, args.dataset), Options())
        t_relabel = time.perf_counter() - t0

    machine = (
        f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus)"
    )
    lines = [
        f"## arc evaluate/relabel throughput — {datetime.date.today().isoformat()}",
        "",
        f"- machine: {machine}, Python {platform.python_version()}",
        f"- command: `.venv/bin/python benchmarks/arc_evaluate.py --dataset {args.dataset} "
        f"--per-task {args.per_task}`",
        f"- workload: {len(tasks)} tasks × {args.per_task} = {n} executions, {size_mb:.0f} MB JSONL",
        f"- baseline (json.loads of every line): {baseline:.2f} s",
        f"- evaluate: {t_eval / baseline:.1f}× baseline ({n / t_eval:,.0f} executions/s)",
        f"- relabel: {t_relabel / baseline:.1f}× baseline ({n / t_relabel:,.0f} executions/s)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
    with results.open("a") as f:
        f.write(("" if results.stat().st_size else "# Benchmarks\n") + "\n" + text)


if __name__ == "__main__":
    main()
