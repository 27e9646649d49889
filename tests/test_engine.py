"""The engine on the local backend, end to end through the real CLI: caching and reuse,
plans that explain themselves, failures, cancellation, and resumes after SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import JOBS, ROOT, arcjobs

from arcjobs.backends.local import LocalBackend
from arcjobs.engine.orchestrate import Cancelled, Plan, run_plan
from arcjobs.engine.planner import decide
from arcjobs.engine.store import RunStore
from arcjobs.spec import load_job

pytestmark = pytest.mark.integration

FANOUT = JOBS / "fanout.yaml"
EXPECTED_D = "HELLO 1\nHELLO 2\nHELLO 3\ndone\n2\n4\n6\n3\n6\n9\n"


def runs(data: Path) -> list[dict]:
    return sorted(
        (json.loads(p.read_text()) for p in data.glob("runs/*/run.json")),
        key=lambda r: r["created"],
    )


def outputs(run_dir: Path) -> dict[str, str]:
    """Every published file of a run, by path relative to the run's steps/ directory."""
    return {
        str(p.relative_to(run_dir / "steps")): p.read_text()
        for p in sorted((run_dir / "steps").glob("*/out/**/*"))
        if p.is_file()
    }


def _of_step(files: dict[str, str], step: str) -> dict[str, str]:
    return {path: text for path, text in files.items() if path.startswith(f"{step}/out/")}


def statuses(state: dict) -> dict[str, str]:
    return {name: info["status"] for name, info in state["steps"].items()}


def test_run_then_rerun_reuses_everything(data_root: Path) -> None:
    arcjobs("run", FANOUT, "--data-root", data_root, check=True)
    first = runs(data_root)[0]
    assert first["status"] == "succeeded"
    assert set(statuses(first).values()) == {"succeeded"}
    run_dir = data_root / "runs" / first["run_id"]
    assert (run_dir / "steps/d/out/d.txt").read_text() == EXPECTED_D
    manifest = json.loads((run_dir / "steps/d/manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["key"] == first["steps"]["d"]["key"]
    assert (run_dir / "job.yaml").exists()

    proc = arcjobs("run", FANOUT, "--data-root", data_root, check=True)
    second = runs(data_root)[1]
    assert set(statuses(second).values()) == {"reused"}
    assert f"same cache key as run {first['run_id']}" in second["steps"]["a"]["reason"]
    assert "0 ran, 5 reused" in proc.stderr
    assert outputs(data_root / "runs" / second["run_id"]) == outputs(run_dir)


def test_a_damaged_output_index_is_rebuilt_from_the_manifests(data_root: Path) -> None:
    arcjobs("run", FANOUT, "--data-root", data_root, check=True)
    index = data_root / "index.sqlite"
    index.write_bytes(b"not a database, and never was" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    again = arcjobs("run", FANOUT, "--data-root", data_root, check=True)
    assert "0 ran, 5 reused" in again.stderr
    assert index.read_bytes().startswith(b"SQLite format 3")


def test_resuming_a_finished_run_says_nothing_ran(data_root: Path) -> None:
    first = arcjobs("run", FANOUT, "--run-id", "r", "--data-root", data_root, check=True)
    assert "5 ran, 0 reused, 0 failed, 0 skipped\n" in first.stderr
    again = arcjobs("run", FANOUT, "--run-id", "r", "--data-root", data_root, check=True)
    assert "0 ran, 0 reused, 0 failed, 0 skipped (5 already complete in this run)" in again.stderr


def test_plan_explains_and_run_reruns_exactly_the_affected_steps(data_root: Path) -> None:
    arcjobs("run", FANOUT, "--data-root", data_root, check=True)
    plan = json.loads(
        arcjobs(
            "plan", FANOUT, "--data-root", data_root, "--set", "scale=10", "--json", check=True
        ).stdout
    )
    decisions = {s["step"]: (s["action"], s["reason"]) for s in plan["steps"]}
    assert decisions["a"][0] == decisions["b"][0] == "reuse"
    assert decisions["c.factor=2"] == (
        "run",
        "param command changed (job param scale 1 → 10)",
    )
    assert decisions["d"] == ("run", "input from c.factor=2, c.factor=3 changed")
    assert not list(data_root.glob(f"runs/{plan['run_id']}")), "plan must not write a run"

    arcjobs("run", FANOUT, "--data-root", data_root, "--set", "scale=10", check=True)
    latest = runs(data_root)[-1]
    assert statuses(latest) == {
        "a": "reused",
        "b": "reused",
        "c.factor=2": "succeeded",
        "c.factor=3": "succeeded",
        "d": "succeeded",
    }
    d = (data_root / "runs" / latest["run_id"] / "steps/d/out/d.txt").read_text()
    assert d.endswith("20\n40\n60\n30\n60\n90\n")


def test_failure_stops_dependants_only_and_shows_the_log(tmp_path: Path, data_root: Path) -> None:
    job = tmp_path / "fail.yaml"
    job.write_text("""
name: fail
steps:
  bad: {run: "echo about to fail; echo the reason >&2; exit 3"}
  after_bad: {run: "cat ${bad.out}/x"}
  good: {run: "echo fine > $OUT/x"}
  after_good: {run: "cat ${good.out}/x > $OUT/y"}
""")
    proc = arcjobs("run", job, "--data-root", data_root)
    assert proc.returncode == 1
    state = runs(data_root)[0]
    assert statuses(state) == {
        "bad": "failed",
        "after_bad": "skipped",
        "good": "succeeded",
        "after_good": "succeeded",
    }
    assert state["steps"]["bad"]["exit_code"] == 3
    assert "the reason" in proc.stderr and "step bad failed (exit code 3)" in proc.stderr
    assert not (data_root / "runs" / state["run_id"] / "steps/bad/out").exists()


def test_cpus_bound_concurrency(tmp_path: Path, data_root: Path) -> None:
    cpus = os.cpu_count()
    job = tmp_path / "cpus.yaml"
    steps = "".join(
        f"  s{i}:\n    resources: {{cpus: {cpus}}}\n    run: date +%s.%N > $OUT/t; sleep 0.3; date +%s.%N >> $OUT/t\n"
        for i in range(3)
    )
    job.write_text(f"name: cpus\nsteps:\n{steps}")
    arcjobs("run", job, "--data-root", data_root, check=True)
    run_dir = data_root / "runs" / runs(data_root)[0]["run_id"]
    spans = sorted(
        tuple(map(float, (run_dir / f"steps/s{i}/out/t").read_text().split())) for i in range(3)
    )
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)), spans


def _descendants_alive(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    return [p for p in out if int(p) != os.getpid()]


def test_sigterm_cancels_cleanly_and_resume_completes(tmp_path: Path, data_root: Path) -> None:
    marker = f"sleepmarker{os.getpid()}"
    job = tmp_path / "slow.yaml"
    job.write_text(
        f"name: slow\nsteps:\n  s:\n    run: echo start > $OUT/x; sleep 30 # {marker}\n  t:\n    run: cat ${{s.out}}/x\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arcjobs",
            "run",
            str(job),
            "--run-id",
            "r1",
            "--data-root",
            str(data_root),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while not _descendants_alive(marker) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with --run-id r1" in err
    state = json.loads((data_root / "runs/r1/run.json").read_text())
    assert state["status"] == "cancelled" and statuses(state) == {"s": "cancelled", "t": "pending"}
    assert not _descendants_alive(marker)
    assert (
        not list((data_root / "runs/r1/steps/s").glob(".out-*"))
        and not (data_root / "runs/r1/steps/s/out").exists()
    )

    job.write_text(job.read_text().replace("sleep 30", "sleep 0"))
    arcjobs("run", job, "--run-id", "r1", "--data-root", data_root, check=True)
    state = json.loads((data_root / "runs/r1/run.json").read_text())
    assert state["status"] == "succeeded"


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    arcjobs("run", FANOUT, "--run-id", "ref", "--data-root", reference, check=True)
    expected = outputs(reference / "runs/ref")
    rng = random.Random(1234)
    for trial in range(10):
        data = tmp_path / f"trial{trial}"
        cmd = [
            sys.executable,
            "-m",
            "arcjobs",
            "run",
            str(FANOUT),
            "--run-id",
            "r",
            "--data-root",
            str(data),
        ]
        kills = 0
        while True:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if kills < 2:
                time.sleep(rng.uniform(0.0, 1.2))
                if proc.poll() is None:
                    proc.kill()
                    kills += 1
            proc.wait(timeout=120)
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL
            # whatever the moment, a visible out/ is whole: exactly the reference's files
            run_dir = data / "runs/r"
            visible = outputs(run_dir)
            for out in (run_dir / "steps").glob("*/out"):
                step = out.parent.name
                assert _of_step(visible, step) == _of_step(expected, step), (trial, step)
        run_dir = data / "runs/r"
        assert outputs(run_dir) == expected, f"trial {trial}"
        assert not [
            p
            for p in (run_dir / "steps").glob("*/.*")
            if p.name.startswith((".out-", ".trash-", ".reuse-"))
        ]
        assert json.loads((run_dir / "run.json").read_text())["status"] == "succeeded"


def test_status_logs_and_cancel_commands(data_root: Path) -> None:
    arcjobs("run", FANOUT, "--run-id", "r1", "--data-root", data_root, check=True)
    listing = arcjobs("status", "--data-root", data_root, check=True).stdout
    assert "r1" in listing and "succeeded" in listing and "5/5" in listing
    steps = arcjobs("status", "r1", "--data-root", data_root, check=True).stdout
    assert [line.split()[:2] for line in steps.splitlines() if "factor=3" in line] == [
        ["c", "factor=3"]
    ]
    log = arcjobs("logs", "r1", "d", "--data-root", data_root, check=True).stdout
    assert "arcjobs step run --command" in log
    missing = arcjobs("logs", "r1", "zz", "--data-root", data_root)
    assert missing.returncode == 2 and "run r1 has no step 'zz'" in missing.stderr
    assert (
        "has nothing running"
        in arcjobs("cancel", "r1", "--data-root", data_root, check=True).stdout
    )


def test_help_is_light() -> None:
    """`arcjobs --help` must not import the ML stack (or even numpy)."""
    code = (
        "import sys; from arcjobs.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "from arcjobs.spec import load_job; load_job(sys.argv[1])\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'vllm', 'peft', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(FANOUT)], capture_output=True, text=True, cwd=ROOT
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_an_image_runs_in_the_interpreter_its_variable_names(tmp_path: Path) -> None:
    """`run:` steps are the sandbox image's: with ARCJOBS_PYTHON_SANDBOX set they run in that
    interpreter (here a wrapper that notes each call, then execs this Python), plan shows it,
    and the cache keys change, since another environment may compute other outputs."""
    data = tmp_path / "data"
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$1 $2 $3 $4" >> {calls}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    plain = json.loads(arcjobs("plan", FANOUT, "--data-root", data, "--json", check=True).stdout)
    mapped_env = {"ARCJOBS_PYTHON_SANDBOX": str(wrapper)}
    proc = arcjobs("plan", FANOUT, "--data-root", data, "--json", env=mapped_env, check=True)
    mapped = json.loads(proc.stdout)
    for before, after in zip(plain["steps"], mapped["steps"], strict=True):
        assert before["request"]["command"][0] == sys.executable
        assert after["request"]["command"][:3] == [str(wrapper), "-m", "arcjobs"]
        assert before["key"] != after["key"]

    arcjobs("run", FANOUT, "--data-root", data, env=mapped_env, check=True)
    # a, b, two branches of c, d
    assert calls.read_text().splitlines() == ["-m arcjobs step run"] * 5

    proc = arcjobs("plan", FANOUT, "--data-root", data, env={"ARCJOBS_PYTHON_SANDBOX": "nope"})
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("ARCJOBS_PYTHON_SANDBOX=nope: not an executable Python interpreter")
    )


class PacedLocal(LocalBackend):
    """The real local backend at another pace, noting when the engine polls it."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval, self.polled = interval, []

    @property
    def poll_interval_s(self) -> float:
        return self.interval

    def poll(self, handles):
        self.polled.append(time.monotonic())
        return super().poll(handles)


def _plan(job_file: Path, data_root: Path, backend: LocalBackend) -> Plan:
    job = load_job(job_file)
    store = RunStore(data_root)
    layout = store.layout("paced")
    image_ids = {s.image: backend.image_id(s.image) for s in job.steps.values()}
    return Plan(job, backend, store, layout, decide(job, store, layout, image_ids), False)


def test_the_engine_polls_at_the_backends_pace(data_root: Path) -> None:
    backend = PacedLocal(0.4)
    state = run_plan(_plan(FANOUT, data_root, backend), [], lambda state: None)
    assert state["status"] == "succeeded"
    gaps = [b - a for a, b in zip(backend.polled, backend.polled[1:], strict=False)]
    assert gaps and min(gaps) >= 0.4


def test_a_signal_is_acted_on_at_once_whatever_the_pace(tmp_path: Path, data_root: Path) -> None:
    """SIGINT as soon as the step runs (the reporter sends it): the engine, whose backend
    would next poll in 10 minutes, cancels the step at once."""
    job = tmp_path / "nap.yaml"
    job.write_text("name: nap\nsteps:\n  nap:\n    run: sleep 600\n")
    sent = []

    def report(state: dict) -> None:
        if state["steps"]["nap"]["status"] == "running" and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))

    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_plan(_plan(job, data_root, PacedLocal(600.0)), [], report)
    assert time.monotonic() - started < 60  # not the backend's 600 s
    state = RunStore(data_root).read("paced")
    assert state["status"] == "cancelled" and statuses(state) == {"nap": "cancelled"}


def test_a_run_json_of_an_earlier_version_still_resumes(tmp_path: Path, data_root: Path) -> None:
    """run.json as arcjobs 0.1.0 wrote it before handles were typed (a launcher killed while
    step b ran): `status` reads it, and `run --run-id` reaps b's handle and completes."""
    job = tmp_path / "old.yaml"
    job.write_text(
        "name: old\nsteps:\n  a:\n    run: echo a > $OUT/a.txt\n"
        "  b:\n    run: cat ${a.out}/a.txt > $OUT/b.txt\n"
    )
    step = {"image": "sandbox", "image_id": "host:arcjobs-0.1.0:python-3.11", "kind": "run"}
    old = {
        "backend": "local",
        "created": 1796547868.49,
        "job": "old",
        "launcher": {"host": "vm", "pid": 2**22 + 1, "started": 1796547868.49},
        "overrides": [],
        "run_id": "old",
        "source": str(job),
        "status": "running",
        "steps": {
            "a": step | {"attempt": 1, "ended": 1796547868.71, "exit_code": 0, "handle": None,
                         "key": "e93d", "needs": [], "params": {"command": "echo a"},
                         "reason": "runs: no earlier output", "started": 1796547868.50,
                         "status": "succeeded"},
            "b": step | {"attempt": 1, "handle": {"pid": 2**22 + 2, "start_time": "978664"},
                         "key": "06d9", "needs": ["a"], "params": {"command": "cat"},
                         "reason": "runs: upstream a runs", "started": 1796547868.76,
                         "status": "running"},
        },
        "updated": 1796547868.76,
    }  # fmt: skip
    run_dir = data_root / "runs/old"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(old))
    shown = arcjobs("status", "old", "--data-root", data_root, check=True).stdout
    assert "runs: upstream a runs" in shown and "running" in shown
    arcjobs("run", job, "--run-id", "old", "--data-root", data_root, check=True)
    state = json.loads((run_dir / "run.json").read_text())
    assert state["status"] == "succeeded" and statuses(state) == {
        "a": "succeeded",
        "b": "succeeded",
    }
    assert (run_dir / "steps/b/out/b.txt").read_text() == "a\n"


def test_site_is_refused_for_the_local_backend_but_not_from_the_environment(
    data_root: Path, tmp_path: Path
) -> None:
    """--site names a cluster's config: given to the local backend it is a mistake, said in
    one line; exported for the cluster backends ($ARCJOBS_SITE) it does not concern `local`."""
    site = tmp_path / "site.yaml"
    proc = arcjobs("plan", FANOUT, "--data-root", data_root, "--site", site)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("the local backend takes no option 'site' (its options: none)")
    )
    arcjobs("plan", FANOUT, "--data-root", data_root, env={"ARCJOBS_SITE": str(site)}, check=True)
