"""Launcher latency: cold `arcjobs --help`, `plan` of a 3-round × 4-config sweep, and a no-op
re-run (every step reused). Each figure is the median of several runs, with a baseline
measured in the same process: a bare `python -c pass` start.

    .venv/bin/python benchmarks/launcher.py [--reps 5]

Goals (issue 2): --help < 0.3 s, plan < 1 s, no-op re-run < 2 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "benchmarks/jobs/sweep_3x4.yaml"
DEMO = ROOT / "tests/fixtures/jobs/fanout.yaml"


def timed(cmd: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    py = sys.executable
    arcjobs = [py, "-m", "arcjobs"]
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        baseline = timed([py, "-c", "pass"], reps)
        help_s = timed([*arcjobs, "--help"], reps)
        plan_s = timed([*arcjobs, "plan", str(SWEEP), "--data-root", data], reps)
        plan_json = subprocess.run(
            [*arcjobs, "plan", str(SWEEP), "--json", "--data-root", data],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout
        n_steps = len(json.loads(plan_json)["steps"])
        subprocess.run(
            [*arcjobs, "run", str(DEMO), "--data-root", data],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        rerun_s = timed([*arcjobs, "run", str(DEMO), "--data-root", data], reps)
    rows = [
        ("python -c pass (baseline)", baseline, "", ""),
        ("arcjobs --help (cold)", help_s, "< 0.3 s", "ok" if help_s < 0.3 else "MISSED"),
        (
            f"arcjobs plan sweep_3x4 ({n_steps} steps)",
            plan_s,
            "< 1 s",
            "ok" if plan_s < 1 else "MISSED",
        ),
        (
            "arcjobs run, no-op re-run (5 steps reused)",
            rerun_s,
            "< 2 s",
            "ok" if rerun_s < 2 else "MISSED",
        ),
    ]
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}, "
        f"Python {platform.python_version()}, median of {reps}"
    )
    print("| measurement | seconds | × baseline | goal | |\n|---|---|---|---|---|")
    for name, secs, goal, ok in rows:
        print(f"| {name} | {secs:.3f} | {secs / baseline:.1f} | {goal} | {ok} |")


if __name__ == "__main__":
    main()
