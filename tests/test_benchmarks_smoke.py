"""The GPU benchmarks' CPU smoke runs: the scripts must keep working between the rare sessions
that have a GPU to run them on, so CI runs each at toy scale and reads its table back."""

from __future__ import annotations

import json
import os
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


def acceptance(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_acceptance.sh"), "--cpu-smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, **env},
        timeout=900,
    )


def test_gpu_acceptance_runs_every_check_at_toy_scale_and_reports_them(tmp_path) -> None:
    """The script the first GPU run executes, on the CPU with the tiny model: imports, the
    throughput benchmark, the train step and its resume, one JSON and one Markdown table."""
    done = acceptance(tmp_path / "acc")
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads((tmp_path / "acc" / "results.json").read_text())["checks"]
    assert list(checks) == ["imports", "devices", "throughput", "model", "train"]
    assert {c["state"] for c in checks.values()} == {"passed"}
    assert checks["imports"]["result"]["modules"]["trl"]["ok"]
    assert checks["devices"]["result"]["skipped"] == "no CUDA GPU"
    configs = checks["throughput"]["result"]["configs"]
    assert configs["A"]["tokens_per_s"] > 0 and configs["B"]["tokens_per_s"] > 0
    first, resumed = checks["train"]["result"]["runs"]
    assert first["global_step"] == 2 and resumed["global_step"] == 4
    assert resumed["resumed_from_step"] == 2 and resumed["loss_finite"]
    assert resumed["adapter_saved"]
    rows = table_rows((tmp_path / "acc" / "results.md").read_text())
    assert list(rows) == list(checks) and rows["train"]["state"] == "passed"


def test_gpu_acceptance_out_of_time_skips_and_fails(tmp_path) -> None:
    done = acceptance(tmp_path / "acc", ACCEPT_BUDGET_S="0")
    assert done.returncode == 1
    checks = json.loads((tmp_path / "acc" / "results.json").read_text())["checks"]
    assert checks["imports"]["state"] == "skipped: out of time"
    assert "failed: imports" in done.stderr
