"""`arcjobs run/status/logs/cancel --backend slurm` against real Slurm daemons (22.05, one host
that is controller and only node: scripts/slurm-up.sh), through the real CLI.

Steps run in the node's own environment (runtime `none`, this interpreter's `arcjobs`), so
their outputs can be compared byte for byte with the local backend's; the docker runtime is
tested in tests/docker/test_slurm_docker_runtime.py, the apptainer runtime by its scripts
(tests/test_slurm_batch.py). Jobs are tiny: the tier takes a few minutes, mostly Slurm's own
scheduling passes between dependent jobs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import JOBS, ROOT, arcjobs, launch
from parity import COMPARED, write_inputs
from slurm_cluster import none_runtime_site, squeue

pytestmark = pytest.mark.slurm


@pytest.fixture
def site(tmp_path: Path, slurm: Path) -> Path:
    return none_runtime_site(tmp_path / "site.yaml")


def new_id(prefix: str) -> str:
    """A run id of its own: the controller remembers finished jobs (by name) for minutes."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def run_json(root: Path, run_id: str) -> dict:
    return json.loads((root / "runs" / run_id / "run.json").read_text())


def wait_for(what: str, check, launcher: subprocess.Popen | None, log: Path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if launcher is not None:
            assert launcher.poll() is None, f"launcher ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def step_status(root: Path, run_id: str, step: str) -> str | None:
    try:
        return run_json(root, run_id)["steps"][step]["status"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet, or caught mid-replace


def jobs_of(run_id: str) -> dict[str, list[str]]:
    """Step → ids of every Slurm job of the run the controller remembers (any state)."""
    out: dict[str, list[str]] = {}
    for job_id, name in squeue("--states=all", "--Format=JobID:|,Name:|"):
        if name.startswith(f"{run_id}."):
            out.setdefault(name[len(run_id) + 1 :], []).append(job_id)
    return out


def queued(run_id: str) -> list[str]:
    """Jobs of the run still in the queue (squeue's default states: pending to completing)."""
    return [name for _, name in squeue("--Format=JobID:|,Name:|") if name.startswith(f"{run_id}.")]


def test_parity_job_gives_the_local_backends_outputs_byte_for_byte(tmp_path, site):
    local, cluster = tmp_path / "local" / "data", tmp_path / "cluster" / "data"
    job = write_inputs(local)
    write_inputs(cluster)
    run_id = new_id("parity")
    arcjobs("run", job, "--data-root", local, "--run-id", run_id, check=True)
    done = arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", cluster,
                   "--run-id", run_id, check=True, timeout=600)  # fmt: skip
    assert f"run {run_id} succeeded" in done.stderr
    steps = cluster / "runs" / run_id / "steps"
    for rel in COMPARED:
        ours = (steps / rel).read_bytes()
        assert ours == (local / "runs" / run_id / "steps" / rel).read_bytes(), rel
    state = run_json(cluster, run_id)
    assert {i["status"] for i in state["steps"].values()} == {"succeeded"}
    assert "completed on " in state["steps"]["execute"]["reason"]
    # one Slurm job per step, each asking what the job file says
    assert sorted(jobs_of(run_id)) == sorted(state["steps"])
    log = (steps / "execute/log.txt").read_text()
    assert "attempt 1 of 1, Slurm job " in log.splitlines()[0]
    script = (cluster / "runs" / run_id / "slurm/execute.sbatch").read_text()
    assert "#SBATCH --cpus-per-task=2" in script and "#SBATCH --mem=1024M" in script


def test_the_demo_job_runs_end_to_end(tmp_path, site):
    root, run_id = tmp_path / "data", new_id("demo")
    done = arcjobs("run", ROOT / "jobs/demo.yaml", "-b", "slurm", "--site", site,
                   "--data-root", root, "--run-id", run_id, check=True, timeout=900)  # fmt: skip
    assert f"run {run_id} succeeded" in done.stderr
    assert f"report:  arcjobs report {run_id}" in done.stderr
    steps = root / "runs" / run_id / "steps"
    assert list((steps / "learn/out/adapter").glob("*.safetensors"))
    metrics = json.loads((steps / "evaluate/out/metrics.json").read_text())
    assert metrics and (steps / "evaluate/out/submission.json").exists()
    report = arcjobs("report", run_id, "--data-root", root, check=True)
    assert Path(report.stdout.strip().splitlines()[-1]).exists()


def test_the_plans_scripts_submitted_by_hand_are_the_run(tmp_path, site):
    """`plan --out` writes every script and submit.sh; `bash submit.sh` submits them to Slurm
    without arcjobs, and a `run` of the same run id then finds every step complete."""
    root, review, run_id = tmp_path / "data", tmp_path / "review", new_id("byhand")
    job = JOBS / "fanout.yaml"
    arcjobs("plan", job, "-b", "slurm", "--site", site, "--data-root", root, "--run-id",
            run_id, "--out", review, check=True)  # fmt: skip
    submitted = subprocess.run(["bash", str(review / "slurm/submit.sh")], capture_output=True,
                               text=True, timeout=120)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert [line.split(":")[0] for line in submitted.stdout.splitlines()] == [
        "a", "b", "c.factor=2", "c.factor=3", "d"
    ]  # fmt: skip
    log = tmp_path / "wait.log"
    log.write_text(submitted.stdout)
    wait_for("the jobs to finish", lambda: queued(run_id) == [], None, log)
    done = arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", root, "--run-id",
                   run_id, check=True)  # fmt: skip
    assert "0 ran" in done.stderr and "(5 already complete in this run)" in done.stderr
    assert len(jobs_of(run_id)["d"]) == 1


FAILING = """
name: failing
steps:
  fine:
    run: echo fine > $OUT/fine.txt
  bad:
    retries: 1
    run: echo "attempt at $(date +%s.%N)"; echo the reason >&2; exit 3
  after:
    needs: [bad]
    run: echo should never run > $OUT/after.txt
  refused:
    run: echo bad input >&2; exit 2
    retries: 3
"""


def test_a_failing_step_reports_its_exit_code_and_its_dependants_never_start(tmp_path, site):
    job = tmp_path / "failing.yaml"
    job.write_text(FAILING)
    root, run_id = tmp_path / "data", new_id("failing")
    done = arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", root,
                   "--run-id", run_id)  # fmt: skip
    assert done.returncode == 1, done.stderr
    steps = run_json(root, run_id)["steps"]
    assert steps["fine"]["status"] == "succeeded"
    assert steps["bad"]["status"] == "failed" and steps["bad"]["exit_code"] == 3
    assert steps["bad"]["reason"].startswith("exit code 3 (Slurm job ")
    assert "FAILED on " in steps["bad"]["reason"]
    assert "the reason" in steps["bad"]["error_tail"]
    assert steps["after"]["status"] == "skipped"
    assert "step bad failed (exit code 3 (Slurm job" in done.stderr
    # retried inside its job once; exit 2 (bad input) is never retried
    step_dir = root / "runs" / run_id / "steps"
    bad_log = (step_dir / "bad/log.txt").read_text()
    assert bad_log.count("attempt at ") == 2 and "attempt 2 of 2" in bad_log
    refused_log = (step_dir / "refused/log.txt").read_text()
    assert refused_log.count("bad input") == 1 and steps["refused"]["exit_code"] == 2

    # the dependant never started: Slurm cancels it (--kill-on-invalid-dep, at its next
    # dependency check, which may come after the launcher has ended), it wrote no log, and
    # then nothing is queued
    def after() -> list[list[str]]:
        rows = squeue("--states=all", "--Format=Name:|,State:|,Reason:|")
        return [r for r in rows if r[0] == f"{run_id}.after" and r[1] != "PENDING"]

    cancelled = wait_for("Slurm to cancel the dependant", after, None, step_dir / "bad/log.txt")
    assert cancelled == [[f"{run_id}.after", "CANCELLED", "DependencyNeverSatisfied"]]
    assert not (step_dir / "after/log.txt").exists()
    assert queued(run_id) == []
    shown = arcjobs("status", run_id, "--data-root", root, check=True).stdout
    assert "exit code 3" in " ".join(shown.split())


def test_a_job_slurm_refuses_stops_the_submission_in_one_line_and_leaves_nothing(tmp_path, site):
    job = tmp_path / "refused.yaml"
    job.write_text(
        "name: refused\nsteps:\n  small:\n    run: sleep 60\n"
        "  huge:\n    needs: [small]\n    resources: {memory: 3T}\n    run: 'true'\n"
    )
    root, run_id = tmp_path / "data", new_id("refused")
    done = arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", root,
                   "--run-id", run_id)  # fmt: skip
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: sbatch of step huge failed (exit 1): sbatch: error: ")
    assert error.endswith("; cancelled the 1 job(s) submitted before it")
    assert queued(run_id) == []
    assert run_json(root, run_id)["status"] == "failed"


SLEEPER = """
name: sleeper
params: {cpus: 1}
steps:
  nap:
    resources: {cpus: "${cpus}"}
    run: sleep 300
  blocked:
    resources: {cpus: "${cpus}"}
    run: sleep 300
  later:
    needs: [nap]
    run: echo later > $OUT/later.txt
"""


@pytest.mark.parametrize("how", ["live launcher", "killed launcher"])
def test_cancel_leaves_no_job_in_squeue(tmp_path, site, slurm_config, how):
    """Two steps ask for every CPU of the node: one runs, the other waits for resources, and
    `status` says so; `cancel` (through the launcher, or directly when it was killed) then
    leaves nothing in the queue."""
    cpus = subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True,
                          text=True).stdout.split()[0]  # fmt: skip
    job = tmp_path / "sleeper.yaml"
    job.write_text(SLEEPER)
    root, log = tmp_path / "data", tmp_path / "launcher.log"
    run_id = new_id("cancel")
    launcher = launch("run", str(job), "-b", "slurm", "--site", str(site), "--data-root",
                      str(root), "--run-id", run_id, "--set", f"cpus={cpus.rstrip('+')}", log=log)  # fmt: skip
    try:
        first = wait_for("one sleeper to run", lambda: [
            s for s in ("nap", "blocked") if step_status(root, run_id, s) == "running"
        ], launcher, log)  # fmt: skip
        other = "blocked" if first == ["nap"] else "nap"
        wait_for("the other to wait for resources", lambda: "(Resources)" in (
            run_json(root, run_id)["steps"][other].get("reason") or ""
        ) or "(Priority)" in (run_json(root, run_id)["steps"][other].get("reason") or ""),
            launcher, log)  # fmt: skip
        shown = arcjobs("status", run_id, "--data-root", root, check=True).stdout
        assert "pending: waiting" in " ".join(shown.split())
        if how == "killed launcher":
            launcher.send_signal(signal.SIGKILL)
            launcher.wait()
            assert len(queued(run_id)) == 3  # the cluster carries on without it
        cancelled = arcjobs("cancel", run_id, "--data-root", root, check=True)
        assert run_id in cancelled.stdout
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.wait(timeout=60) in (130, -signal.SIGKILL)
    assert queued(run_id) == []
    state = run_json(root, run_id)
    assert state["status"] == "cancelled"
    assert not (root / "runs" / run_id / "steps/later/out").exists()


RESUMABLE = """
name: resumable
params: {nap: 8}
steps:
  first:
    run: date +%s.%N > $OUT/t.txt
  slow:
    needs: [first]
    run: date +%s.%N > $OUT/t.txt; sleep ${nap}
  gone:
    needs: [first]
    run: sleep ${nap}; echo gone > $OUT/t.txt
  last:
    needs: [slow, gone]
    run: cat ${slow.out}/t.txt ${gone.out}/t.txt > $OUT/t.txt
"""


def test_a_killed_launcher_resumes_by_reattaching_to_its_live_jobs(tmp_path, site):
    """SIGKILL while `slow` runs and `last` waits on it; then `gone` is lost to an scancel of
    its own (and Slurm cancels `last`, which waited on it). The resumed launcher follows
    `slow` by its job id, submits `gone` and `last` again (`last` after the live `slow`), and
    never submits `first` (finished) or `slow` (running) twice."""
    job = tmp_path / "resumable.yaml"
    job.write_text(RESUMABLE)
    root, log = tmp_path / "data", tmp_path / "launcher.log"
    run_id = new_id("resume")
    launcher = launch("run", str(job), "-b", "slurm", "--site", str(site), "--data-root",
                      str(root), "--run-id", run_id, log=log)  # fmt: skip
    try:
        wait_for("slow to run", lambda: step_status(root, run_id, "slow") == "running",
                 launcher, log)  # fmt: skip
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    before = run_json(root, run_id)["steps"]
    run_dir = root / "runs" / run_id
    first_out = (run_dir / "steps/first/out/t.txt").read_text()
    slow_job = before["slow"]["handle"]["job_id"]
    subprocess.run(["scancel", before["gone"]["handle"]["job_id"]], check=True)
    wait_for("Slurm to drop gone and last", lambda: queued(run_id) == [f"{run_id}.slow"],
             None, log)  # fmt: skip

    resumed = arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", root,
                      "--run-id", run_id, check=True)  # fmt: skip
    assert "succeeded" in resumed.stderr
    after = run_json(root, run_id)["steps"]
    assert {i["status"] for i in after.values()} == {"succeeded"}
    assert f"Slurm job {slow_job} completed" in after["slow"]["reason"]
    assert (run_dir / "steps/first/out/t.txt").read_text() == first_out
    jobs = jobs_of(run_id)
    assert len(jobs["first"]) == 1 and jobs["slow"] == [slow_job]
    assert len(jobs["gone"]) == 2 and len(jobs["last"]) == 2
    assert (run_dir / "steps/slow/log.txt").read_text().count("attempt 1 of 1") == 1
    # what the resumed launcher submitted: `last` after the new `gone` and the live `slow`
    submitted = (run_dir / "slurm/submit.sh").read_text()
    assert "record slow" not in submitted and "record first" not in submitted
    assert f'"--dependency=afterok:${{job[gone]}}:{slow_job}" last.sbatch' in submitted


SWEEP = """
name: sweep
params: {nap: 4}
steps:
  branch:
    matrix: {k: [1, 2]}
    run: date +%s.%N > $OUT/start; sleep ${nap}; date +%s.%N > $OUT/end; echo ${matrix.k} > $OUT/k
  gather:
    run: for d in ${branch.outs}; do cat $d/k; done > $OUT/ks
"""


def test_a_sweeps_branches_run_in_parallel_when_resources_allow(tmp_path, site):
    job = tmp_path / "sweep.yaml"
    job.write_text(SWEEP)
    root, run_id = tmp_path / "data", new_id("sweep")
    arcjobs("run", job, "-b", "slurm", "--site", site, "--data-root", root, "--run-id", run_id,
            check=True)  # fmt: skip
    steps = root / "runs" / run_id / "steps"
    spans = [
        tuple(float((steps / f"branch.k={k}/out" / e).read_text()) for e in ("start", "end"))
        for k in (1, 2)
    ]
    (s1, e1), (s2, e2) = spans
    assert max(s1, s2) < min(e1, e2), f"branches did not overlap: {spans}"
    assert (steps / "gather/out/ks").read_text().split() == ["1", "2"]


def test_logs_follow_a_step_of_a_run_whose_launcher_is_gone(tmp_path, site):
    job = tmp_path / "talk.yaml"
    job.write_text(
        "name: talk\nsteps:\n  talk:\n    run: for i in 1 2 3; do echo line $i; sleep 1; done\n"
    )
    root, log, run_id = tmp_path / "data", tmp_path / "launcher.log", new_id("talk")
    launcher = launch("run", str(job), "-b", "slurm", "--site", str(site), "--data-root",
                      str(root), "--run-id", run_id, log=log)  # fmt: skip
    try:
        wait_for("talk to be submitted", lambda: step_status(root, run_id, "talk") in (
            "queued", "running"), launcher, log)  # fmt: skip
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    followed = arcjobs("logs", run_id, "talk", "-f", "--data-root", root, check=True, timeout=120)
    assert [x for x in followed.stdout.splitlines() if x.startswith("line")] == [
        "line 1", "line 2", "line 3"
    ]  # fmt: skip
