"""Fail closed: where a kernel layer cannot be put up, nothing runs unless the user opts out.

A kernel without Landlock, or one that refuses seccomp filters, is made real for the CLI's
process tree (`sandbox_helpers.run_without`). Everything below it inherits that kernel.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from sandbox_helpers import WITHOUT, benign, run_without, tiny_task

from arcjobs.arc.tasks import solutions_of, to_kaggle

pytestmark = pytest.mark.unit


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    tasks = {"tiny": tiny_task()}
    (tmp_path / "tasks.json").write_text(json.dumps(to_kaggle(tasks)))
    (tmp_path / "solutions.json").write_text(json.dumps(solutions_of(tasks)))
    lines = [{"task_id": "tiny", "sample_id": i, "code": benign(str(i))} for i in range(3)]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return {name: tmp_path / f"{name}.json" for name in ("tasks", "solutions")} | {
        "predictions": tmp_path / "predictions.jsonl",
        "cache": tmp_path / "cache.sqlite",
        "out": tmp_path / "out",
    }


def sandbox_run(layer: str, files: dict[str, Path], *extra: str):
    return run_without(
        layer, "sandbox", "run", "--tasks", files["tasks"], "--predictions",
        files["predictions"], "--solutions", files["solutions"], "--out", files["out"],
        "--cache", files["cache"], "--workers", "1", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("layer", sorted(WITHOUT))
def test_a_missing_layer_stops_the_run_naming_it_and_writes_nothing(layer, files) -> None:
    proc = sandbox_run(layer, files)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: the sandbox cannot put up ") and layer in line, line
    assert "--unprotected" in line
    assert not files["out"].exists() and not list(files["out"].parent.glob(".out*"))
    with sqlite3.connect(files["cache"]) as db:  # opened before the workers: no row in it
        assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (0,)


@pytest.mark.parametrize("layer", sorted(WITHOUT))
def test_the_opt_out_runs_and_says_so_in_the_summary_and_every_record(layer, files) -> None:
    proc = sandbox_run(layer, files, "--unprotected")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((files["out"] / "summary.json").read_text())
    assert summary["isolation"]["unprotected"] is True
    assert layer in summary["isolation"]["missing"]
    records = [json.loads(x) for x in (files["out"] / "executions.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] * 3
    assert all(r["unprotected"] is True for r in records)


def test_unprotected_results_never_serve_a_protected_run(files, tmp_path: Path) -> None:
    """Same programs, same cache: what ran without Landlock is not served to a run with it."""
    assert sandbox_run("landlock", files, "--unprotected").returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "arcjobs", "sandbox", "run", "--tasks", str(files["tasks"]),
         "--predictions", str(files["predictions"]), "--out", str(tmp_path / "protected"),
         "--cache", str(files["cache"]), "--workers", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "protected" / "summary.json").read_text())
    assert summary["executed"] == 3 and summary["cached"] == 0
    records = (tmp_path / "protected" / "executions.jsonl").read_text()
    assert "unprotected" not in records


def test_sandbox_check_names_what_is_missing(tmp_path: Path) -> None:
    proc = run_without("landlock", "sandbox", "check", "--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["landlock"] is False and report["seccomp"] is True
    assert report["missing"] == ["landlock"] and "Landlock" in report["why"]["landlock"]
    assert proc.stderr.strip() == "error: missing: landlock"
