"""The GPU benchmarks' CPU smoke runs: the scripts must keep working between the rare sessions
that have a GPU to run them on, so CI runs each at toy scale and reads its table back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The Markdown table: each row by its first cell, as {column header: cell}."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = cells[0], [c for c in cells[1:] if not re.fullmatch(r"[-: ]*", "".join(c))]
    return {row[0]: dict(zip(header, row, strict=True)) for row in body}


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--cpu-smoke", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_train_throughput_smoke_measures_both_configurations() -> None:
    rows = table_rows(run("train_throughput.py", "--steps", "1", "--warmup", "0"))
    assert set(rows) == {"A", "B"}
    for row in rows.values():
        assert float(row["tokens/s"]) > 0 and float(row["samples/s"]) > 0
    assert rows["A"]["× A"] == "1.00" and float(rows["B"]["× A"]) > 0


def test_infer_throughput_smoke_measures_the_step_against_its_baseline() -> None:
    rows = table_rows(run("infer_throughput.py"))
    (baseline,) = (row for name, row in rows.items() if name.startswith("baseline"))
    step = rows["step"]
    assert int(step["completions"]) > int(baseline["completions"]) > 0
    assert float(step["programs/s"]) > 0 and float(step["tokens/s"]) > 0
    assert baseline["x baseline"] == "1.00" and float(step["x baseline"]) > 0
