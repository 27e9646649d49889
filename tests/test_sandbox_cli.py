"""`arcjobs sandbox run` and the `execute` step, run as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, arcjobs
from sandbox_helpers import GRID_IN, GRID_TEST, benign, benign_answer, descendants, tiny_task

from arcjobs.arc.tasks import solutions_of, to_kaggle

pytestmark = pytest.mark.unit

IDENTITY = "def transform(input_grid):\n    return input_grid\n"
AUG = {"dihedral": 6, "colors": [0, 4, 1, 2, 3, 5, 6, 7, 8, 9]}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    tasks = {"tiny": tiny_task()}
    (tmp_path / "tasks.json").write_text(json.dumps(to_kaggle(tasks)))
    (tmp_path / "solutions.json").write_text(json.dumps(solutions_of(tasks)))
    lines = [
        {"task_id": "tiny", "sample_id": 0, "code": benign("cli")},
        {
            "task_id": "tiny",
            "sample_id": "s1",
            "text": f"Let's solve it.\n```python\n{IDENTITY}```\ntrailing",
        },
        {"task_id": "tiny", "sample_id": 2, "code": IDENTITY, "augmentation": AUG, "test_index": 0},
        {"task_id": "tiny", "sample_id": 3, "text": "no code block at all"},
        {
            "task_id": "tiny",
            "sample_id": 4,
            "code": "import time\ndef transform(g):\n    time.sleep(60)\n",
        },
    ]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return {
        "tasks": tmp_path / "tasks.json",
        "solutions": tmp_path / "solutions.json",
        "predictions": tmp_path / "predictions.jsonl",
        "cache": tmp_path / "cache.sqlite",
    }


def sandbox_run(inputs: dict[str, Path], out: Path, *extra: str):
    return arcjobs(
        "sandbox", "run", "--tasks", inputs["tasks"], "--predictions", inputs["predictions"],
        "--solutions", inputs["solutions"], "--out", out, "--timeout", "1", "--workers", "2",
        "--cache", inputs["cache"], *extra,
    )  # fmt: skip


def test_run_writes_executions_in_prediction_order(inputs, tmp_path: Path) -> None:
    proc = sandbox_run(inputs, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = [
        json.loads(x) for x in (tmp_path / "out" / "executions.jsonl").read_text().splitlines()
    ]
    assert [x["sample_id"] for x in lines] == [0, "s1", 2, 3, 4]
    assert [x["status"] for x in lines] == ["ok", "ok", "ok", "syntax_error", "timeout"]
    ok = lines[0]
    assert ok["train_outputs"] == [benign_answer(GRID_IN)] and ok["test_outputs"] == [
        benign_answer(GRID_TEST)
    ]
    assert ok["train_correct"] == [True] and ok["test_correct"] == [True] and ok["fingerprint"]
    assert lines[1]["code"] == IDENTITY.rstrip()
    # the identity program on augmented inputs, mapped back, gives the original inputs again
    assert lines[2]["train_outputs"] == [GRID_IN] and lines[2]["test_outputs"] == [GRID_TEST]
    assert lines[2]["augmentation"] == AUG and lines[2]["test_index"] == 0
    assert lines[2]["fingerprint"] == lines[1]["fingerprint"]
    assert lines[3]["train_outputs"] is None and lines[3]["fingerprint"] is None
    assert lines[4]["train_correct"] == [False] and lines[4]["test_correct"] == [False]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["ok"] == 3 and summary["counts"]["timeout"] == 1
    assert summary["program_seconds"]["max"] >= 1.0  # the sleeper ran to its 1 s limit
    assert summary["isolation"]["audit_hook"] is True
    assert "network_namespace" in summary["isolation"]
    for key in ("wall_s", "duration", "seconds"):
        assert key not in lines[0]


def test_rerun_is_byte_identical_and_cached(inputs, tmp_path: Path) -> None:
    assert sandbox_run(inputs, tmp_path / "a").returncode == 0
    assert sandbox_run(inputs, tmp_path / "b").returncode == 0
    assert sandbox_run(inputs, tmp_path / "c", "--no-cache").returncode == 0
    a, b, c = ((tmp_path / d / "executions.jsonl").read_bytes() for d in "abc")
    assert a == b == c
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["executed"] == 0
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["cache"] is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"sample_id": 1, "code": "x"}, ":2: task_id must be a string"),
        ({"task_id": "nope", "sample_id": 1, "code": "x"}, ":2: unknown task id 'nope'"),
        ({"task_id": "tiny", "code": "x"}, ":2: missing key 'sample_id'"),
        ({"task_id": "tiny", "sample_id": 1}, ":2: needs 'code' or 'text'"),
        (
            {"task_id": "tiny", "sample_id": 1, "code": "x", "augmentation": {"dihedral": 9}},
            ":2: bad augmentation",
        ),
        (
            {"task_id": "tiny", "sample_id": 1, "code": "x", "test_index": 3},
            ":2: test_index 3 out of range",
        ),
    ],
)
def test_bad_prediction_lines_exit_2_naming_the_line(inputs, tmp_path: Path, line, message) -> None:
    good = json.dumps({"task_id": "tiny", "sample_id": 0, "code": IDENTITY})
    inputs["predictions"].write_text(good + "\n" + json.dumps(line) + "\n")
    proc = sandbox_run(inputs, tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert f"predictions.jsonl{message}" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_missing_tasks_file_exits_2(inputs, tmp_path: Path) -> None:
    inputs["tasks"] = tmp_path / "missing.json"
    proc = sandbox_run(inputs, tmp_path / "out")
    assert proc.returncode == 2 and "missing.json" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_killing_the_cli_leaves_no_workers(inputs, tmp_path: Path) -> None:
    slow = "import time\ndef transform(g):\n    time.sleep(60)\n"
    inputs["predictions"].write_text(
        "".join(
            json.dumps({"task_id": "tiny", "sample_id": i, "code": slow + f"# {i}\n"}) + "\n"
            for i in range(20)
        )
    )
    cmd = [sys.executable, "-m", "arcjobs", "sandbox", "run", "--tasks", str(inputs["tasks"]),
           "--predictions", str(inputs["predictions"]), "--out", str(tmp_path / "out"),
           "--timeout", "30", "--workers", "2", "--no-cache"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(descendants(proc.pid)) < 4 and time.monotonic() < deadline:  # 2 workers + 2 programs
        time.sleep(0.1)
    tree = descendants(proc.pid)
    assert len(tree) >= 4
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in tree if os.path.exists(f"/proc/{p}")]
    assert not (tmp_path / "out").exists()


def test_execute_step_uses_the_data_root_cache(inputs, data_root: Path) -> None:
    step_dir = data_root / "runs" / "r1" / "steps" / "execute"
    args = ["step", "execute", "--predictions", inputs["predictions"], "--dataset", inputs["tasks"],
            "--solutions", inputs["solutions"], "--timeout-s", "1", "--out", step_dir / "out"]  # fmt: skip
    proc = arcjobs(*args, env={"ARCJOBS_RESOURCES": json.dumps({"cpus": 2})})
    assert proc.returncode == 0, proc.stderr
    assert (data_root / "cache" / "sandbox.sqlite").exists()
    summary = json.loads((step_dir / "out" / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["programs"] == 5
    lines = (step_dir / "out" / "executions.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["ok", "ok", "ok", "syntax_error", "timeout"]


def test_execute_step_schema_is_light_and_strict() -> None:
    code = "import sys, arcjobs.steps.execute as e; print(sorted(m for m in ('numpy', 'scipy', 'torch') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"
    from pydantic import ValidationError

    from arcjobs.steps.execute import Params

    with pytest.raises(ValidationError):
        Params(predictions="p", dataset="d", timeout_s=0)
    with pytest.raises(ValidationError):
        Params(predictions="p", dataset="d", bogus=1)


def test_sandbox_check_shows_every_layer_in_force() -> None:
    table = arcjobs("sandbox", "check")
    assert table.returncode == 0, table.stderr
    for name in ("fresh_process", "no_new_privs", "seccomp", "landlock", "rlimits", "audit_hook"):
        assert name in table.stdout
    report = json.loads(arcjobs("sandbox", "check", "--json", check=True).stdout)
    assert report["missing"] == []
    assert report["landlock"] is report["seccomp"] is report["no_new_privs"] is True
    assert report["no_capabilities"] is True and report["worker_undumpable"] is True


def test_fork_per_program_is_a_deprecated_no_op(inputs, tmp_path: Path) -> None:
    proc = sandbox_run(inputs, tmp_path / "out", "--fork-per-program")
    assert proc.returncode == 0, proc.stderr
    assert "notice: --fork-per-program is how every program runs now" in proc.stderr
    assert (tmp_path / "out" / "executions.jsonl").exists()
