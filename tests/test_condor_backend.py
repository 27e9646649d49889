"""The condor backend's side effects: submitting a DAG, following it, cancelling it.

No HTCondor daemons can run here, so `condor_submit_dag` and `condor_rm` are FAKE executables
put first on PATH by these tests: small scripts that record their exact command line, working
directory and environment, print what the real tools print on success ("1 job(s) submitted to
cluster N.") and, for condor_rm, append the "Job was aborted" event the schedd would write to
DAGMan's event log. Everything else is real: the DAG and submit files come from the
`htcondor2` bindings, the event logs are read with `htcondor2.JobEventLog`, and the bindings'
own submission path is exercised up to the point where it needs HTCondor installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
from helpers import register_sifs

from arcjobs.backends.condor import CondorBackend
from arcjobs.backends.site import SiteConfig
from arcjobs.engine.orchestrate import make_plan
from arcjobs.engine.store import RunStore
from arcjobs.errors import UserError
from arcjobs.spec import load_job

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "condor"
EVENTS = FIXTURES / "events"

FAKE_SUBMIT_DAG = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "cwd": os.getcwd(),
                        "collector": os.environ.get("_CONDOR_COLLECTOR_HOST")}}) + "\\n")
if os.environ.get("FAKE_FAIL"):
    print("ERROR: schedd ap.example.org is not responding", file=sys.stderr)
    sys.exit(1)
print("-----------------------------------------------------------------------")
print("File for submitting this DAG to HTCondor           : run.dag.condor.sub")
print("Submitting job(s).")
print("1 job(s) submitted to cluster 4242.")
"""

FAKE_RM = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv}}) + "\\n")
with open(os.environ["FAKE_DAGMAN_LOG"], "a") as f:
    f.write("009 (%s.000.000) 2026-11-25 10:40:00 Job was aborted.\\n"
            "\\tvia condor_rm (by user alice)\\n...\\n" % sys.argv[-1])
print("All jobs in cluster %s have been marked for removal" % sys.argv[-1])
"""


def install(bin_dir: Path, name: str, text: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(text.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A data root, converted images, fake HTCondor tools only on PATH, a calls log."""
    root = tmp_path / "data"
    cache = root / "images"
    register_sifs(cache, {name: "sha256:" + name[0] * 64 for name in ("train", "infer", "sandbox")})
    bin_dir = tmp_path / "bin"
    install(bin_dir, "condor_submit_dag", FAKE_SUBMIT_DAG)
    install(bin_dir, "condor_rm", FAKE_RM)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", str(bin_dir))  # nothing else: a missing tool must show
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    return root, bin_dir, calls


def cli_site() -> SiteConfig:
    return SiteConfig(submit="condor_submit_dag", schedd="ap.example.org", collector="cm.ex.org")


def planned(root: Path, site: SiteConfig):
    job = load_job(FIXTURES / "ttt_round.yaml")
    plan = make_plan(job, "condor", RunStore(root), "r1", backend_options={"site": site})
    return plan, plan.requests()


def calls_of(calls: Path) -> list[dict]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_submit_dag_writes_the_files_and_runs_condor_submit_dag_exactly(world):
    root, bin_dir, calls = world
    plan, requests = planned(root, cli_site())
    needs = {n: list(s.needs) for n, s in plan.job.steps.items()}
    handles = plan.backend.submit_dag(requests, needs, plan.layout)

    dag_dir = plan.layout.run_dir / "condor"
    (call,) = calls_of(calls)
    assert call["argv"] == [
        str(bin_dir / "condor_submit_dag"),
        "-force",
        "-batch-name",
        "r1",
        "-r",
        "ap.example.org",
        "run.dag",
    ]
    assert call["cwd"] == str(dag_dir)
    assert call["collector"] == "cm.ex.org"
    assert (dag_dir / "run.dag").read_text().count("\nJOB ") + 1 >= len(requests)
    assert sorted(p.name for p in dag_dir.glob("*.sub")) == sorted(f"{n}.sub" for n in requests)
    assert all(plan.layout.step_dir(n).is_dir() for n in requests)  # HTCondor won't create them
    learn = handles["learn"]
    assert learn["dagman"] == 4242 and learn["retries"] == 3
    assert learn["events"] == str(plan.layout.step_dir("learn") / "condor.log")
    assert learn["dagman_log"] == str(dag_dir / "run.dag.dagman.log")
    assert json.loads(json.dumps(handles)) == handles  # handles live in run.json


def test_a_failing_condor_submit_dag_is_one_line(world, monkeypatch):
    root, _, _ = world
    monkeypatch.setenv("FAKE_FAIL", "1")
    plan, requests = planned(root, cli_site())
    with pytest.raises(UserError) as e:
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert str(e.value) == (
        "condor_submit_dag failed (exit 1): ERROR: schedd ap.example.org is not responding"
    )


def test_missing_condor_submit_dag_is_one_clear_line(world):
    root, bin_dir, _ = world
    (bin_dir / "condor_submit_dag").unlink()
    plan, requests = planned(root, cli_site())
    with pytest.raises(UserError) as e:
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert str(e.value).startswith("condor_submit_dag not found on PATH; ")
    assert "\n" not in str(e.value)


def test_unconverted_images_are_refused_before_anything_is_written(world):
    root, _, calls = world
    shutil.rmtree(root / "images")
    plan, requests = planned(root, cli_site())
    with pytest.raises(UserError, match=r"no \.sif for image\(s\) infer, sandbox, train in "):
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert not (plan.layout.run_dir / "condor").exists() and not calls.exists()


def test_the_bindings_path_needs_condor_dagman_and_says_so(world):
    """Real `htcondor2.Submit.from_dag`: without HTCondor's condor_dagman it fails, in one line."""
    root, _, _ = world
    plan, requests = planned(root, SiteConfig(submit="bindings"))
    with pytest.raises(UserError) as e:
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert str(e.value) == (
        "DAG submission failed: Failed to locate condor_dagman executable in PATH"
    )


def test_poll_follows_each_step_log_and_dagmans_own(world):
    root, _, _ = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    for h in handles.values():
        h["dagman"] = 100  # the fixtures' DAGMan cluster
    dagman_log = Path(handles["learn"]["dagman_log"])
    shutil.copy(EVENTS / "dagman_running.log", dagman_log)
    shutil.copy(EVENTS / "success.log", handles["search"]["events"])
    shutil.copy(EVENTS / "evicted_then_running.log", handles["execute"]["events"])
    shutil.copy(EVENTS / "held_memory.log", handles["learn"]["events"])
    backend = plan.backend
    got = backend.poll(handles)
    assert (got["search"].state, got["search"].exit_code) == ("exited", 0)
    assert got["execute"].state == "running" and "gpu09" in got["execute"].detail
    assert got["learn"].state == "queued"  # held, then removed: DAGMan retries (3 retries)
    assert "raise request_memory" in got["learn"].detail and "now 131072 MB" in got["learn"].detail
    assert got["score"].state == "queued" and got["score"].detail == "queued in the DAG"
    # DAGMan gives up: what never ran is lost, what ran keeps its outcome.
    with dagman_log.open("a") as f:
        f.write((EVENTS / "dagman_failed.log").read_text().split("...\n", 2)[2])
    got = backend.poll(handles)
    assert got["score"].state == "lost" and "DAGMan exited with code 1" in got["score"].detail
    assert got["learn"].state == "exited" and got["learn"].detail.startswith("held: ")
    assert got["search"].exit_code == 0
    # A fresh backend (as `arcjobs status` makes) reads the same from the files and the
    # handles as run.json keeps them.
    assert CondorBackend(cli_site(), root).poll(json.loads(json.dumps(handles))) == got


def test_every_poll_reads_the_logs_and_the_backend_sets_the_pace(world):
    """No answer is reused: the engine (and `logs -f`) poll every `poll_interval_s`, so the
    shared filesystem sees one read per step every 2 s, never ten a second."""
    root, _, _ = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    backend = CondorBackend(cli_site(), root)
    assert backend.poll_interval_s == 2.0
    assert backend.poll(handles)["search"].state == "queued"
    shutil.copy(EVENTS / "success.log", handles["search"]["events"])
    for h in handles.values():
        h["dagman"] = 100
    assert backend.poll(handles)["search"].state == "exited"


def test_cancel_removes_the_dagman_job_once_and_waits_for_the_abort_event(world, monkeypatch):
    root, bin_dir, calls = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    dagman_log = Path(handles["learn"]["dagman_log"])
    dagman_log.write_text(
        (EVENTS / "dagman_running.log").read_text().replace("(100.000.000)", "(4242.000.000)")
    )
    monkeypatch.setenv("FAKE_DAGMAN_LOG", str(dagman_log))
    backend = CondorBackend(cli_site(), root)
    for handle in handles.values():  # the engine cancels step by step
        backend.cancel(handle)
    rm_calls = [c["argv"] for c in calls_of(calls) if c["argv"][0].endswith("condor_rm")]
    assert rm_calls == [
        [str(bin_dir / "condor_rm"), "-name", "ap.example.org", "-pool", "cm.ex.org", "4242"]
    ]
    status = backend.poll({"learn": handles["learn"]})["learn"]
    assert status.state == "lost" and "removed (via condor_rm (by user alice))" in status.detail


def test_missing_condor_rm_is_one_clear_line(world):
    root, bin_dir, _ = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    (bin_dir / "condor_rm").unlink()
    with pytest.raises(UserError, match=r"^condor_rm not found on PATH; "):
        CondorBackend(cli_site(), root).cancel(handles["learn"])


def test_site_config_errors_are_one_line(tmp_path, monkeypatch):
    from arcjobs.backends.site import load_site

    bad = tmp_path / "site.yaml"
    bad.write_text("schedd: ap\nimage_cach: /x\n")
    with pytest.raises(UserError) as e:
        load_site(bad)
    assert str(e.value).startswith(f"{bad}: image_cach: unknown setting; expected one of: ")
    bad.write_text("data_root: relative/path\n")
    with pytest.raises(UserError, match="data_root: Value error, must be an absolute path"):
        load_site(bad)
    monkeypatch.setenv("ARCJOBS_SITE", str(tmp_path / "nope.yaml"))
    with pytest.raises(UserError, match="nope.yaml does not exist"):
        load_site()
    monkeypatch.delenv("ARCJOBS_SITE")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/arcjobs/site.yaml: defaults
    assert load_site() == SiteConfig()
    ok = tmp_path / "ok.yaml"
    ok.write_text("gpus_minimum_memory: 40G\nrequest_disk: 100G\nretries: 0\n")
    site = load_site(ok)
    assert (site.gpus_minimum_memory, site.request_disk, site.retries) == (40960, 102400, 0)


def test_backend_module_does_not_import_htcondor_until_used():
    code = (
        "import sys, arcjobs.backends.condor, arcjobs.cli; "
        "print('htcondor2' in sys.modules, 'classad2' in sys.modules)"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_without_the_bindings_the_backend_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "htcondor2", None)  # as if the wheel were not installed
    with pytest.raises(UserError) as e:
        CondorBackend(SiteConfig())
    assert str(e.value) == (
        "the condor backend needs HTCondor's Python bindings: pip install 'arcjobs[cluster]'"
    )


def test_cancel_through_the_bindings_without_a_schedd_is_one_line(world):
    """Real `htcondor2.Schedd()`: with no HTCondor here it cannot locate the local schedd."""
    root, _, _ = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    handle = {**handles["learn"], "remove_with": "bindings", "schedd": None}
    Path(handle["dagman_log"]).write_text(
        (EVENTS / "dagman_running.log").read_text().replace("(100.000.000)", "(4242.000.000)")
    )
    with pytest.raises(UserError) as e:
        CondorBackend(SiteConfig(), root).cancel(handle)
    assert str(e.value) == "cannot reach the local schedd: Unable to locate local daemon."


def test_the_site_config_example_in_the_docs_is_valid(tmp_path):
    from arcjobs.backends.site import load_site

    docs = (Path(__file__).parents[1] / "docs" / "cluster.md").read_text()
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "site.yaml").write_text(example)
    site = load_site(tmp_path / "site.yaml")
    assert site.schedd == "ap40.example.edu" and site.gpus_minimum_memory == 40 * 1024
    assert site.environment == {"HF_HUB_OFFLINE": "1"}
    rows = [line.split("|")[1] for line in docs.splitlines() if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}
    assert set(SiteConfig.model_fields) <= documented  # every setting has a row


def test_the_bindings_path_builds_dagmans_job_with_force_and_the_run_as_batch_name(world):
    """Real `htcondor2.Submit.from_dag` with a FAKE `condor_dagman` on PATH (it only has to
    exist): the DAGMan job description is the bindings' own; with no schedd here, submitting
    it stops at locating the schedd, in one line."""
    root, bin_dir, _ = world
    install(bin_dir, "condor_dagman", "#!/bin/sh\nexit 0\n")
    plan, requests = planned(root, SiteConfig(submit="bindings"))
    with pytest.raises(UserError) as e:
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert str(e.value) == "cannot reach the local schedd: Unable to locate local daemon."
    import htcondor2

    dag_dir = plan.layout.run_dir / "condor"
    dagman = htcondor2.Submit((dag_dir / "run.dag.condor.sub").read_text())
    assert dagman["universe"] == "scheduler"
    assert dagman["My.JobBatchName"] == '"r1"'
    assert dagman["log"] == str(dag_dir / "run.dag.dagman.log")
    args = dagman["arguments"].strip('"')
    assert f"-Dag {dag_dir / 'run.dag'}" in args and "-force" in args.split()


def test_cancel_through_the_bindings_sends_its_reason_as_htcondor2_wants_it(world, monkeypatch):
    """Real `htcondor2.Schedd.act` down to its C call, which is FAKED here (it would talk to
    a schedd): htcondor2 25.x drops a plain-string reason and sends (text, code) through."""
    import classad2
    import htcondor2

    from arcjobs.backends import condor

    root, _, _ = world
    sent = []
    monkeypatch.setattr(
        htcondor2._schedd, "_schedd_act_on_job_constraint", lambda *args: sent.append(args)
    )
    ad = {"MyAddress": "<10.0.0.1:9618>", "Name": "ap", "CondorVersion": htcondor2.version()}
    monkeypatch.setattr(condor, "_schedd", lambda *_: htcondor2.Schedd(classad2.ClassAd(ad)))
    backend = CondorBackend(SiteConfig(), root)
    backend._remove_bindings({"dagman": 4242})
    remove = int(htcondor2.JobAction.Remove)
    assert sent == [("<10.0.0.1:9618>", "ClusterID == 4242", remove, "arcjobs cancel", "0")]
    condor._schedd().act(htcondor2.JobAction.Remove, "4242", reason="a plain string")
    assert sent[-1][3] is None  # what the old call sent: no reason at all


def test_a_node_dagman_could_not_submit_says_why_from_dagmans_files(world):
    """DAGMan fails a node it cannot submit without an event in the node's log; poll then
    reports the lines of run.dag.dagman.out and run.dag.lib.err (fixtures/condor/dagman)."""
    root, _, _ = world
    plan, requests = planned(root, cli_site())
    handles = plan.backend.submit_dag(requests, {}, plan.layout)
    for h in handles.values():
        h["dagman"] = 100
    dag = Path(handles["learn"]["dag"])
    shutil.copy(EVENTS / "dagman_failed.log", handles["learn"]["dagman_log"])
    for suffix in (".dagman.out", ".lib.err"):
        shutil.copy(FIXTURES / "dagman" / f"run.dag{suffix}", f"{dag}{suffix}")
    got = CondorBackend(cli_site(), root).poll(handles)
    assert got["learn"].state == "lost"
    assert got["learn"].detail == (
        "never started: DAGMan exited with code 1; DAGMan could not submit it: ERROR: on Line 31 "
        "of submit file: failed to create job classad / ERROR: you specified files you want "
        'Condor to transfer via "transfer_input_files", but you disabled '
        f"should_transfer_files. ({dag}.dagman.out)"
    )
    assert got["score"].detail == "never started: DAGMan exited with code 1"
