"""Wall time of the CPU demo (jobs/demo.yaml) from nothing: every step computed, none reused.
Prints a Markdown table of the steps' durations (from run.json) and the total against the
goal of 5 minutes on 2 cores.

    .venv/bin/python benchmarks/demo_walltime.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 300.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "arcjobs",
                "run",
                str(ROOT / "jobs/demo.yaml"),
                "--run-id",
                "demo",
                "--data-root",
                str(data),
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        total = time.perf_counter() - started
        state = json.loads((data / "runs/demo/run.json").read_text())
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print("| step | seconds |\n|---|---:|")
    for name, info in state["steps"].items():
        print(f"| {name} | {info['ended'] - info['started']:.1f} |")
    print(
        f"| **total (launcher included)** | **{total:.1f}** ({total / GOAL_S:.2f} × the 5-minute goal) |"
    )


if __name__ == "__main__":
    main()
