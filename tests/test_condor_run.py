"""`arcjobs run/status/logs/cancel --backend condor` end to end through the real engine and CLI.

No HTCondor can run here, so `condor_submit_dag` and `condor_rm` are FAKE executables on
PATH. The fake condor_submit_dag prints what the real one prints and starts a stand-in for
DAGMan in the background: it reads the generated run.dag and .sub files with the real
`htcondor2.Submit`, walks the nodes in dependency order like DAGMan, and for each node
writes the events a schedd would write to the node's `log` (submitted, executing,
terminated) in HTCondor's user-log format. Instead of running the container it publishes the
step the way `arcjobs step` does (out/ + manifest.json with the cache key from the node's
environment), or fails the nodes named in FAKE_FAIL_NODES with exit code 3, skipping their
dependants as DAGMan does. The fake condor_rm writes the DAGMan job's abort event.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import register_sifs

pytestmark = pytest.mark.integration

FAKE_DAGMAN = r"""#!{python}
import json, os, re, sys, time, subprocess
if sys.argv[1:2] != ["--dagman"]:  # condor_submit_dag: start DAGMan, report the cluster
    with open(os.environ["FAKE_CALLS"] + ".submits", "a+") as f:  # cluster ids only grow
        f.seek(0)
        DAGMAN = 1000 * (len(f.read().split()) + 1)
        f.write(f"{{DAGMAN}}\n")
    subprocess.Popen([sys.argv[0], "--dagman", os.getcwd(), str(DAGMAN)],
                     start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitting job(s).\n1 job(s) submitted to cluster {{DAGMAN}}.")
    sys.exit(0)
import htcondor2
os.chdir(sys.argv[2])
DAGMAN = int(sys.argv[3])
AP = "<10.0.0.1:9618?addrs=10.0.0.1-9618&alias=ap.example.org>"
EP = "<10.0.0.7:9618?addrs=10.0.0.7-9618&alias=gpu07.example.org>"
def event(path, n, cluster, text):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "a") as f:
        f.write(f"{{n:03d}} ({{cluster}}.000.000) {{stamp}} {{text}}\n...\n")
USAGE = "".join("\n\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  " + w + " Usage"
                for w in ("Run Remote", "Run Local", "Total Remote", "Total Local"))
USAGE += "".join("\n\t0  -  " + w + " By Job" for w in
                 ("Run Bytes Sent", "Run Bytes Received", "Total Bytes Sent", "Total Bytes Received"))
def terminated(code):
    return f"Job terminated.\n\t(1) Normal termination (return value {{code}})" + USAGE
def aborted():  # this DAGMan job's abort (the log also holds earlier submissions')
    return f"{{DAGMAN}}.000.000) " in "".join(
        line for line in open("run.dag.dagman.log") if "Job was aborted" in line)
event("run.dag.dagman.log", 0, DAGMAN, "Job submitted from host: " + AP)
event("run.dag.dagman.log", 1, DAGMAN, "Job executing on host: " + AP)
jobs, parents = {{}}, {{}}
for line in open("run.dag"):
    w = line.split()
    if w[:1] == ["JOB"]:
        jobs[w[1]] = w[2]; parents.setdefault(w[1], [])
    elif w[:1] == ["PARENT"]:
        i = w.index("CHILD")
        for c in w[i + 1:]:
            parents.setdefault(c, []).extend(w[1:i])
fail = set(os.environ.get("FAKE_FAIL_NODES", "").split(","))
delay = float(os.environ.get("FAKE_NODE_SECONDS", "0.05"))
done, bad, cluster = set(), set(), DAGMAN + 1
while len(done) + len(bad) < len(jobs) and not aborted():
    ready = [n for n in jobs if n not in done | bad and all(p in done for p in parents[n])]
    blocked = [n for n in jobs if n not in done | bad and any(p in bad for p in parents[n])]
    bad.update(blocked)
    if not ready:
        break
    for node in ready:
        sub = htcondor2.Submit(open(jobs[node]).read())
        log, key = sub["log"], re.search(r"ARCJOBS_CACHE_KEY=(\w+)", sub["environment"]).group(1)
        event(log, 0, cluster, "Job submitted from host: " + AP + "\n    DAG Node: " + node)
        time.sleep(delay)
        event(log, 1, cluster, "Job executing on host: " + EP)
        time.sleep(delay)
        with open(sub["output"], "a") as out:
            out.write(f"fake DAGMan ran {{node}} in {{sub['container_image']}}\n")
        if node in fail:
            event(log, 5, cluster, terminated(3))
            bad.add(node)
        else:
            step = sub["initialdir"]
            os.makedirs(step + "/out", exist_ok=True)
            json.dump({{"status": "ok", "key": key}}, open(step + "/manifest.json", "w"))
            event(log, 5, cluster, terminated(0))
            done.add(node)
        cluster += 1
if not aborted():
    code = 1 if bad else 0
    event("run.dag.dagman.log", 5, DAGMAN, terminated(code))
"""

FAKE_RM = r"""#!{python}
import json, os, sys, glob, time
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv) + "\n")
for log in glob.glob(os.environ["ARCJOBS_DATA_ROOT"] + "/runs/*/condor/run.dag.dagman.log"):
    with open(log, "a") as f:
        f.write("009 (%s.000.000) %s Job was aborted.\n\tvia condor_rm (by user alice)\n...\n"
                % (sys.argv[-1], time.strftime("%Y-%m-%d %H:%M:%S")))
"""

JOB = """\
name: cluster-demo
steps:
  prepare:
    run: echo prepared > $OUT/ready.txt
  branch:
    run: echo "branch ${matrix.k}" > $OUT/k.txt
    needs: [prepare]
    matrix: {k: [1, 2]}
  gather:
    run: cat ${branch.outs} > $OUT/all.txt
    needs: [branch]
"""


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "data"
    cache = root / "images"
    register_sifs(cache, {"sandbox": "sha256:" + "c" * 64})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("condor_submit_dag", FAKE_DAGMAN), ("condor_rm", FAKE_RM)):
        (bin_dir / name).write_text(text.format(python=sys.executable))
        (bin_dir / name).chmod(0o755 | stat.S_IEXEC)
    site = tmp_path / "site.yaml"
    site.write_text("submit: condor_submit_dag\nretries: 0\n")
    job = tmp_path / "job.yaml"
    job.write_text(JOB)
    environ = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ARCJOBS_SITE": str(site),
        "ARCJOBS_DATA_ROOT": str(root),
        "FAKE_CALLS": str(tmp_path / "calls.jsonl"),
    }
    return root, job, environ


def arcjobs(*args: str, environ: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
    )


def test_a_run_goes_through_dagman_and_status_and_logs_read_it(env):
    root, job, environ = env
    out = arcjobs("run", str(job), "--backend", "condor", "--run-id", "c1", environ=environ)
    assert out.returncode == 0, out.stderr
    state = json.loads((root / "runs" / "c1" / "run.json").read_text())
    assert state["backend"] == "condor" and state["status"] == "succeeded"
    assert {s["status"] for s in state["steps"].values()} == {"succeeded"}
    assert state["steps"]["gather"]["handle"] is None
    dag = (root / "runs" / "c1" / "condor" / "run.dag").read_text()
    assert "PARENT prepare CHILD" in dag
    logs = arcjobs("logs", "c1", "gather", environ=environ)
    assert logs.returncode == 0
    assert "fake DAGMan ran gather in " in logs.stdout and "arcjobs-sandbox-" in logs.stdout
    status = arcjobs("status", "c1", environ=environ)
    assert status.returncode == 0 and "succeeded" in status.stdout

    # Resuming a complete run submits nothing.
    again = arcjobs("run", str(job), "--backend", "condor", "--run-id", "c1", environ=environ)
    assert again.returncode == 0, again.stderr
    assert (root / "runs" / "c1" / "condor" / "run.dag.dagman.log").read_text().count(
        "Job submitted"
    ) == 1


def test_a_failed_node_fails_its_step_and_skips_what_depends_on_it(env):
    root, job, environ = env
    environ = {**environ, "FAKE_FAIL_NODES": "branch_k=2"}  # a node name
    out = arcjobs("run", str(job), "--backend", "condor", "--run-id", "c2", environ=environ)
    assert out.returncode == 1
    steps = json.loads((root / "runs" / "c2" / "run.json").read_text())["steps"]
    assert steps["branch.k=2"]["status"] == "failed"
    assert steps["branch.k=2"]["reason"].startswith("exit code 3 on gpu07.example.org")
    assert steps["branch.k=1"]["status"] == "succeeded"
    assert steps["gather"]["status"] == "skipped"
    assert steps["gather"]["reason"] == "upstream branch.k=2 did not succeed"
    assert "step branch.k=2 failed (exit code 3" in out.stderr

    # Resume: only the failed branch and what follows it are submitted again.
    environ.pop("FAKE_FAIL_NODES")
    again = arcjobs("run", str(job), "--backend", "condor", "--run-id", "c2", environ=environ)
    assert again.returncode == 0, again.stderr
    jobs = [
        line.split()[1]
        for line in (root / "runs" / "c2" / "condor" / "run.dag").read_text().splitlines()
        if line.startswith("JOB ")
    ]
    assert sorted(jobs) == ["branch_k=2", "gather"]  # node names: "." is "_"


def test_cancel_removes_the_dag_of_a_live_run(env):
    root, job, environ = env
    environ = {**environ, "FAKE_NODE_SECONDS": "2"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "arcjobs", "run", str(job), "-b", "condor", "--run-id", "c3"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_json = root / "runs" / "c3" / "run.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if run_json.exists() and "queued" in run_json.read_text():
                break
            time.sleep(0.1)
        out = arcjobs("cancel", "c3", environ=environ)
        assert out.returncode == 0, out.stderr
        assert launcher.wait(timeout=90) == 130
    finally:
        if launcher.poll() is None:
            launcher.kill()
    calls = [json.loads(line) for line in Path(environ["FAKE_CALLS"]).read_text().splitlines()]
    assert [c[1:] for c in calls] == [["1000"]]  # one condor_rm of the DAGMan job
    state = json.loads(run_json.read_text())
    assert state["status"] == "cancelled"
    assert "cancelled" in {s["status"] for s in state["steps"].values()}


def test_a_killed_launcher_resumes_by_removing_its_dag_and_submitting_the_rest(env):
    """SIGKILL the launcher while its DAG runs; `run --run-id` removes that DAG (condor_rm of
    its DAGMan job), then submits a new DAG of what is not complete, and finishes."""
    root, job, environ = env
    slow = {**environ, "FAKE_NODE_SECONDS": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "arcjobs", "run", str(job), "-b", "condor", "--run-id", "c4"],
        env=slow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_json = root / "runs" / "c4" / "run.json"
    prepared = root / "runs" / "c4" / "steps" / "prepare" / "manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not prepared.exists():
        time.sleep(0.1)
    launcher.kill()
    launcher.wait()
    assert json.loads(run_json.read_text())["status"] == "running"

    out = arcjobs("run", str(job), "--backend", "condor", "--run-id", "c4", environ=environ)
    assert out.returncode == 0, out.stderr
    calls = [json.loads(line) for line in Path(environ["FAKE_CALLS"]).read_text().splitlines()]
    assert [c[1:] for c in calls] == [["1000"]]  # the first DAG, removed once
    state = json.loads(run_json.read_text())
    assert state["status"] == "succeeded"
    assert state["steps"]["prepare"]["reason"].startswith("complete in this run")
    jobs = [
        line.split()[1]
        for line in (root / "runs" / "c4" / "condor" / "run.dag").read_text().splitlines()
        if line.startswith("JOB ")
    ]
    assert "prepare" not in jobs and "gather" in jobs
