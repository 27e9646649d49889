"""Submit descriptions and the DAGMan DAG for a TTT round and a LoRA sweep, built by the condor
backend through the real engine planner and the real `htcondor2` bindings (Submit, dags), and
parsed back with those bindings (`htcondor2.Submit` for .sub files, `classad2` for
expressions, `htcondor2.dags.rescue` for node names). No HTCondor daemon is involved: nothing
here submits. What condor_submit and the starter would make of the files is checked against
HTCondor's own rules, restated from its source in condor_rules.py (a stand-in: the bindings
build no job ad). The image cache holds empty placeholder .sif files under the names a
conversion would give them, registered in its index.json as `arcjobs images apptainer` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import classad2
import condor_rules
import htcondor2
import pytest
from helpers import register_sifs
from htcondor2 import dags

from arcjobs.backends import condor_submit as cs
from arcjobs.backends.condor import CondorBackend
from arcjobs.engine.orchestrate import make_plan
from arcjobs.engine.store import RunStore
from arcjobs.errors import UserError
from arcjobs.images.apptainer import sif_path
from arcjobs.spec import load_job

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "condor"
JOBS = Path(__file__).resolve().parents[1] / "jobs"
DIGESTS = {
    "train": "sha256:" + "a" * 64,
    "infer": "sha256:" + "b" * 64,
    "sandbox": "sha256:" + "c" * 64,
}


@pytest.fixture
def cluster(tmp_path):
    """A data root, an image cache with the three images registered, and a site config."""
    root = tmp_path / "data"
    root.mkdir()
    cache = tmp_path / "sif"
    register_sifs(cache, DIGESTS)
    site = tmp_path / "site.yaml"
    site.write_text(
        f"image_cache: {cache}\n"
        f"data_root: {root}\n"
        "requirements: (OpSysMajorVer >= 9)\n"
        "accounting_group: group_ml\n"
        "accounting_group_user: alice\n"
        "gpus_minimum_memory: 40G\n"
        "gpus_minimum_capability: 8.0\n"
        "retries: 1\n"
        "environment: {HF_HUB_OFFLINE: '1'}\n"
    )
    return root, cache, site


def plan_files(job_file: Path, root: Path, site: Path):
    job = load_job(job_file)
    plan = make_plan(job, "condor", RunStore(root), "r1", backend_options={"site": site})
    requests = plan.requests()
    files = plan.backend.artefacts(list(requests.values()), plan.layout)
    return plan, requests, files


def parse_dag(text: str) -> tuple[dict[str, str], dict[str, set[str]], dict[str, str]]:
    """JOB, PARENT/CHILD and RETRY lines of a DAG file, by step: step → file, parents, retries.

    A node's step is its submit file's name; node names themselves must be what DAGMan
    accepts: no `.` or `+` (reserved, DAGMan manual), not PARENT or CHILD.
    """
    lines = [line.split() for line in text.splitlines()]
    step_of, jobs, parents, retries = {}, {}, {}, {}
    for w in lines:
        if w[:1] == ["JOB"]:
            assert not set(w[1]) & {".", "+"} and w[1].upper() not in ("PARENT", "CHILD"), w[1]
            step_of[w[1]] = w[2].removesuffix(".sub")
            jobs[step_of[w[1]]] = w[2]
            parents[step_of[w[1]]] = set()
    for w in lines:
        if w[:1] == ["PARENT"]:
            i = w.index("CHILD")
            for child in w[i + 1 :]:
                parents[step_of[child]].update(step_of[n] for n in w[1:i])
        elif w[:1] == ["RETRY"]:
            retries[step_of[w[1]]] = " ".join(w[2:])
    return jobs, parents, retries


def submits(files: dict[str, str]) -> dict[str, htcondor2.Submit]:
    return {Path(p).stem: htcondor2.Submit(t) for p, t in files.items() if p.endswith(".sub")}


def test_ttt_round_submit_descriptions_parse_back_with_the_requested_values(cluster):
    root, cache, site = cluster
    plan, requests, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    subs = submits(files)
    assert set(subs) == set(plan.job.steps)
    learn, execute, search = subs["learn"], subs["execute"], subs["search"]

    assert learn["universe"] == "container"
    assert learn["container_image"] == str(sif_path(cache, "train", DIGESTS["train"]))
    assert search["container_image"] == str(sif_path(cache, "infer", DIGESTS["infer"]))
    assert execute["container_image"] == str(sif_path(cache, "sandbox", DIGESTS["sandbox"]))
    assert (learn["request_gpus"], learn["request_cpus"]) == ("2", "16")
    assert learn["request_memory"] == "131072MB"  # 128G, units explicit
    assert execute["request_memory"] == "32768MB"
    assert "request_gpus" not in execute  # CPU steps ask for no GPU at all
    # 40G from the site, at 90% (a GPU reports less than its nominal size); CUDA 13.0.
    assert learn["require_gpus"] == (
        "Capability >= 8.0 && GlobalMemoryMb >= 36864 && MaxSupportedVersion >= 13000"
    )
    assert "require_gpus" not in execute
    assert not [k for k in learn if k.startswith("gpus_minimum")]  # 23.0 ignores these
    assert learn["should_transfer_files"] == "NO" and learn["getenv"] == "false"
    assert learn["accounting_group"] == "group_ml" and learn["accounting_group_user"] == "alice"
    assert learn["requirements"] == "(OpSysMajorVer >= 9)"

    # One path for the access point (initialdir is checked there, the schedd writes `log`
    # there) and the execute node (`output`, the bind source of /data).
    step_dir = plan.layout.step_dir("learn")
    assert learn["initialdir"] == str(step_dir)
    assert learn["output"] == learn["error"] == f"{step_dir}/log.txt"
    assert learn["log"] == f"{step_dir}/condor.log"
    assert classad2.ExprTree(learn["My.SingularityBind"]).eval() == f"{root}:/data"
    assert classad2.ExprTree(learn["My.ArcjobsStep"]).eval() == "learn"


def test_a_steps_gpu_selectors_override_the_site_and_its_requirements_add_up(cluster, tmp_path):
    root, _, site = cluster
    job = tmp_path / "big.yaml"
    job.write_text(
        "name: big\nsteps:\n"
        "  big:\n    image: train\n    run: 'true'\n"
        "    resources: {gpus: 1, gpu_memory: 80G, gpu_capability: 9.0,"
        " requirements: 'Machine =!= \"bad.example.org\"'}\n"
        "  plain:\n    image: train\n    run: 'true'\n    resources: {gpus: 1}\n"
    )
    subs = submits(plan_files(job, root, site)[2])
    big, plain = subs["big"], subs["plain"]
    assert big["require_gpus"].startswith("Capability >= 9.0 && GlobalMemoryMb >= 73728 && ")
    assert plain["require_gpus"].startswith("Capability >= 8.0 && GlobalMemoryMb >= 36864 && ")
    assert big["requirements"] == '((OpSysMajorVer >= 9)) && (Machine =!= "bad.example.org")'
    assert plain["requirements"] == "(OpSysMajorVer >= 9)"
    want = classad2.ExprTree(big["requirements"])
    assert want.eval(classad2.ClassAd({"OpSysMajorVer": 9, "Machine": "ok"})) is True
    assert want.eval(classad2.ClassAd({"OpSysMajorVer": 9, "Machine": "bad.example.org"})) is False


def test_arguments_and_environment_survive_the_submit_language(cluster):
    root, _, site = cluster
    plan, requests, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    learn = submits(files)["learn"]
    argv = split_new_syntax(learn.expand("arguments"))
    assert argv == requests["learn"].command
    assert argv[:3] == ["arcjobs", "step", "train"]
    assert argv[-2:] == ["--out", "/data/runs/r1/steps/learn/out"]
    assert "--lora-rank" in argv and argv[argv.index("--lora-rank") + 1] == "32"

    env = dict(w.split("=", 1) for w in split_new_syntax(learn.expand("environment")))
    assert env["PYTHONNOUSERSITE"] == "1"
    assert env["HF_HOME"] == "/data/cache/huggingface"
    assert env["HF_HUB_OFFLINE"] == "1"  # from the site config
    assert env["ARCJOBS_CACHE_KEY"] == plan.decisions["learn"].key
    assert env["ARCJOBS_IMAGE"] == DIGESTS["train"]
    assert json.loads(env["ARCJOBS_RESOURCES"]) == {"gpus": 2, "cpus": 16, "memory_mb": 131072}
    assert "CUDA_VISIBLE_DEVICES" not in env  # HTCondor sets it to the GPUs it assigned


def test_shell_dollars_survive_condor_submit_macro_expansion(cluster):
    root, _, site = cluster
    _, requests, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    stamp = submits(files)["stamp"]
    # condor_submit would expand a bare $(...) as its own macro: `$(date -u +%F)` must survive.
    assert "$(DOLLAR)(date -u +%F)" in stamp["arguments"]
    argv = split_new_syntax(stamp.expand("arguments"))
    assert argv == requests["stamp"].command
    assert '"$OUT/"' in argv[argv.index("--command") + 1]


def test_a_multi_line_run_command_is_packed_since_no_submit_value_holds_a_newline(cluster):
    root, _, site = cluster
    _, requests, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    sub = submits(files)["notes"]
    argv = split_new_syntax(sub.expand("arguments"))
    assert argv[:2] == ["python3", "-c"]
    # Run the unpacking one-liner with `echo` in place of the real program.
    packed = json.loads(__import__("base64").b64decode(argv[3]))
    assert packed == requests["notes"].command
    assert "\n" in packed[packed.index("--command") + 1]
    code = argv[2]
    echo = [sys.executable, "-c", code, __import__("base64").b64encode(
        json.dumps(["printf", "%s|", "a\nb", "c d"]).encode()).decode()]  # fmt: skip
    assert subprocess.run(echo, capture_output=True, text=True).stdout == "a\nb|c d|"
    header = files[next(p for p in files if p.endswith("notes.sub"))]
    assert header.startswith("# arcjobs step notes\n# command: arcjobs step run")


def test_sandbox_steps_ask_for_no_network_and_others_do_not(cluster):
    root, _, site = cluster
    _, _, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    subs = submits(files)
    assert subs["execute"]["My.ArcjobsNoNetwork"] == "true"
    assert "My.ArcjobsNoNetwork" not in subs["learn"]
    assert "My.ArcjobsNoNetwork" not in subs["search"]
    assert subs["stamp"]["My.ArcjobsNoNetwork"] == "true"  # `run:` steps default to sandbox


def test_system_holds_are_removed_so_the_dag_cannot_wait_forever(cluster):
    root, _, site = cluster
    _, _, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    expr = classad2.ExprTree(submits(files)["learn"]["periodic_remove"])
    held_for_memory = classad2.ClassAd({"JobStatus": 5, "HoldReasonCode": 34})
    held_by_user = classad2.ClassAd({"JobStatus": 5, "HoldReasonCode": 1})
    running = classad2.ClassAd({"JobStatus": 2})
    assert expr.eval(held_for_memory) is True
    assert expr.eval(held_by_user) is False
    assert expr.eval(running) is False


def test_ttt_round_dag_has_the_dependencies_and_retries(cluster):
    root, _, site = cluster
    plan, _, files = plan_files(FIXTURES / "ttt_round.yaml", root, site)
    dag_path = str(plan.layout.run_dir / "condor" / "run.dag")
    jobs, parents, retries = parse_dag(files[dag_path])
    assert jobs == {name: f"{name}.sub" for name in plan.job.steps}
    assert parents == {name: set(step.needs) for name, step in plan.job.steps.items()}
    assert retries["learn"] == "3 UNLESS-EXIT 2"  # retries: 2 in the job + 1 from the site
    assert retries["execute"] == "1 UNLESS-EXIT 2"
    assert 'SET_JOB_ATTR ArcjobsRun = "r1"' in files[dag_path]


def test_sweep_dag_fans_out_into_independent_branches(cluster):
    root, _, site = cluster
    plan, _, files = plan_files(FIXTURES / "sweep.yaml", root, site)
    dag_path = str(plan.layout.run_dir / "condor" / "run.dag")
    jobs, parents, _ = parse_dag(files[dag_path])
    branches = sorted(n for n in jobs if n.startswith("learn."))
    assert len(branches) == 4
    assert all(parents[b] == {"select"} for b in branches)
    subs = submits(files)
    ranks = {}
    for b in branches:
        argv = split_new_syntax(subs[b].expand("arguments"))
        ranks[b] = (argv[argv.index("--lora-rank") + 1], argv[argv.index("--learning-rate") + 1])
        assert subs[b]["request_gpus"] == "1" and subs[b]["request_memory"] == "98304MB"
    assert sorted(ranks.values()) == [
        ("16", "0.0001"),
        ("16", "0.0003"),
        ("64", "0.0001"),
        ("64", "0.0003"),
    ]
    # Node names are the step names with '.' as '_': DAGMan's rescue files name those, and
    # read back through the bindings as the steps.
    assert f"JOB {branches[0].replace('.', '_')} {branches[0]}.sub" in files[dag_path]
    rescue = Path(plan.layout.run_dir) / "run.dag.rescue001"
    rescue.parent.mkdir(parents=True, exist_ok=True)
    rescue.write_text(f"# Rescue DAG\nDONE select\nDONE {branches[0].replace('.', '_')}\n")
    dag = cs.build_dag([cs.Node(n, {}, (), 0) for n in jobs], "r1")
    dags.rescue(dag, rescue, formatter=cs.formatter(jobs))
    done = {n.name for n in dag.nodes if n.done.get(0)}
    assert done == {"select", branches[0]}


@pytest.mark.parametrize("name", ["ttt_round.yaml", "sweep_lora.yaml"])
def test_the_shipped_jobs_become_submits_and_a_dag_with_their_resources(cluster, name):
    """The real job files, not the fixtures: every step's submit description asks for the
    job's resources in its image, and the DAG's edges are the steps' needs."""
    root, cache, site = cluster
    plan, _, files = plan_files(JOBS / name, root, site)
    subs = submits(files)
    assert set(subs) == set(plan.job.steps)
    for step_name, step in plan.job.steps.items():
        sub, res = subs[step_name], step.resources
        assert sub["container_image"] == str(sif_path(cache, step.image, DIGESTS[step.image]))
        assert sub["request_cpus"] == str(res.cpus)
        assert sub.get("request_gpus") == (str(res.gpus) if res.gpus else None)
        if res.memory_mb:
            assert sub["request_memory"] == f"{res.memory_mb}MB"
    learn = next(s for n, s in subs.items() if n.startswith("learn"))
    assert (learn["request_gpus"], learn["request_cpus"], learn["request_memory"]) == (
        "1",
        "8",
        "65536MB",
    )
    jobs, parents, retries = parse_dag(files[str(plan.layout.run_dir / "condor" / "run.dag")])
    assert parents == {n: set(step.needs) for n, step in plan.job.steps.items()}
    assert all(retries[n] == "1 UNLESS-EXIT 2" for n in jobs)  # the site's one retry
    if name == "sweep_lora.yaml":
        learns = [n for n in jobs if n.startswith("learn.")]
        assert len(learns) == 12 and all(parents[n] == {"select"} for n in learns)
        for n in learns:
            assert parents[n.replace("learn.", "search_again.", 1)] == {n}


def test_complete_steps_are_marked_done_in_the_dag(cluster):
    root, _, site = cluster
    plan, requests, _ = plan_files(FIXTURES / "sweep.yaml", root, site)
    step_dir = plan.layout.step_dir("select")
    (step_dir / "out").mkdir(parents=True)
    (step_dir / "manifest.json").write_text(
        json.dumps({"status": "ok", "key": plan.decisions["select"].key})
    )
    files = plan.backend.artefacts(list(requests.values()), plan.layout)
    dag = files[str(plan.layout.run_dir / "condor" / "run.dag")]
    assert "JOB select select.sub DONE" in dag.splitlines()


def test_plan_on_the_command_line_prints_every_generated_file(cluster):
    root, _, site = cluster
    env = {**os.environ, "ARCJOBS_SITE": str(site), "ARCJOBS_DATA_ROOT": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "arcjobs", "plan", str(FIXTURES / "ttt_round.yaml"),
         "--backend", "condor", "--run-id", "r1", "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    names = {Path(p).name for p in data["artefacts"]}
    assert names == {"run.dag"} | {f"{s['step']}.sub" for s in data["steps"]}
    learn = next(s for s in data["steps"] if s["step"] == "learn")
    assert learn["request"]["extra"]["submit"]["request_gpus"] == "2"
    assert not (root / "runs" / "r1").exists()  # plan writes nothing

    # --out: the same files on disk for review, the plan beside them, still nothing under root
    review = root.parent / "review"
    cmd = [sys.executable, "-m", "arcjobs", "plan", str(FIXTURES / "ttt_round.yaml")]
    cmd += ["--backend", "condor", "--run-id", "r1", "--out", str(review)]
    written = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert written.returncode == 0, written.stderr
    run_dir = root / "runs" / "r1"
    on_disk = {str(p.relative_to(review)): p.read_text() for p in review.rglob("*") if p.is_file()}
    assert on_disk.pop("plan.json") and on_disk == {
        str(Path(p).relative_to(run_dir)): text for p, text in data["artefacts"].items()
    }
    assert htcondor2.Submit((review / "condor" / "learn.sub").read_text())["request_gpus"] == "2"
    assert not run_dir.exists()
    assert not [p for p in review.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_validate_rejects_broken_files():
    with pytest.raises(classad2.ClassAdException):
        cs.validate({"/x/a.sub": "requirements = (a >= \nqueue\n"})
    with pytest.raises(ValueError, match="no queue"):
        cs.validate({"/x/a.sub": "universe = container\n"})
    with pytest.raises(ValueError, match="missing submit files"):
        cs.validate({"/x/run.dag": "JOB a a.sub\n"})
    with pytest.raises(ValueError, match="unknown nodes"):
        cs.validate({"/x/a.sub": "queue\n", "/x/run.dag": "JOB a a.sub\nPARENT a CHILD b\n"})
    with pytest.raises(ValueError, match="unknown nodes"):
        cs.validate({"/x/a.sub": "queue\n", "/x/run.dag": "JOB a a.sub\nRETRY b 1\n"})
    with pytest.raises(ValueError, match=r"node names DAGMan reserves.*\['a\.b', 'Parent'\]"):
        cs.validate({"/x/a.sub": "queue\n", "/x/run.dag": "JOB a.b a.sub\nJOB Parent a.sub\n"})
    with pytest.raises(classad2.ClassAdException):
        cs.validate({"/x/a.sub": "require_gpus = Capability >=\nqueue\n"})
    node = cs.Node("a", {"request_cpus": "2"}, (), 0)
    cs.validate({"/x/a.sub": "request_cpus = 2\nqueue\n"}, [node])
    with pytest.raises(ValueError, match="does not read back"):
        cs.validate({"/x/a.sub": "request_cpus = 2\nrequest_cpus = 3\nqueue\n"}, [node])


def test_node_names_map_dots_and_refuse_what_dagman_cannot_parse():
    """DAGMan manual ("DAG input file"): node names may not contain `.` or `+`, nor be the
    words PARENT or CHILD in any case; dag.cpp compares ALL_NODES without case too."""
    assert cs.node_names(["learn.lora_rank=16", "learn.r2"]) == {
        "learn.lora_rank=16": "learn_lora_rank=16",
        "learn.r2": "learn_r2",
    }
    with pytest.raises(UserError, match="DAGMan node name"):
        cs.node_names(["learn.lr=1e+4"])
    for word in ("parent", "Child", "all_nodes"):
        with pytest.raises(UserError, match="are DAG keywords in any case; rename the step"):
            cs.node_names([word])
    with pytest.raises(UserError) as e:
        cs.node_names(["learn_r2", "learn.r2"])
    assert str(e.value) == (
        "steps 'learn_r2' and 'learn.r2' would both be DAGMan node 'learn_r2' "
        "('.' becomes '_' in node names); rename one"
    )


def test_a_step_named_like_a_dag_keyword_is_refused_by_plan(cluster, tmp_path):
    root, _, site = cluster
    job = tmp_path / "kw.yaml"
    job.write_text("name: kw\nsteps:\n  parent:\n    run: 'true'\n")
    env = {**os.environ, "ARCJOBS_SITE": str(site), "ARCJOBS_DATA_ROOT": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "arcjobs", "plan", str(job), "--backend", "condor"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr == (
        "error: step 'parent' cannot be a DAGMan node name: PARENT, CHILD, ALL_NODES are DAG "
        "keywords in any case; rename the step\n"
    )


# --- the files as HTCondor would read them (condor_rules: HTCondor's rules from its source) ---


def all_submits(cluster) -> dict[str, htcondor2.Submit]:
    root, _, site = cluster
    subs = {}
    for job in (FIXTURES / "ttt_round.yaml", FIXTURES / "sweep.yaml", JOBS / "sweep_lora.yaml"):
        subs.update(
            {f"{job.stem}/{k}": v for k, v in submits(plan_files(job, root, site)[2]).items()}
        )
    return subs


def test_every_node_passes_condor_submits_transfer_rule(cluster):
    """A container job's image joins the input files unless `transfer_container = false`
    (process_container_input_files), and input files with should_transfer_files = NO abort
    the submission (SetTransferFiles); DAGMan then fails the node without a retry."""
    subs = all_submits(cluster)
    assert len(subs) > 20
    for name, sub in subs.items():
        assert (sub["universe"], sub["transfer_container"]) == ("container", "false"), name
        assert sub["should_transfer_files"] == "NO" and "transfer_input_files" not in sub
        assert condor_rules.container_input_files(sub) == []
        condor_rules.check_transfer(sub)  # would raise SubmitRefused
    # The rule itself, on the same file without the command: refused, as before this fix.
    first = dict(next(iter(subs.values())))
    learn = htcondor2.Submit({k: v for k, v in first.items() if k != "transfer_container"})
    assert condor_rules.container_input_files(learn) == [learn["container_image"]]
    with pytest.raises(condor_rules.SubmitRefused, match="you disabled should_transfer_files"):
        condor_rules.check_transfer(learn)


def test_log_txt_is_appended_across_retries_and_evictions(cluster):
    """`erase_output_and_error_on_restart = false` sets EraseOutputAndErrorOnRestart, which
    the starter reads to open output and error with O_APPEND and without O_TRUNC."""
    for sub in all_submits(cluster).values():
        assert sub["erase_output_and_error_on_restart"] == "false"
        assert condor_rules.JOB_ATTRIBUTE["erase_output_and_error_on_restart"] == (
            "EraseOutputAndErrorOnRestart"
        )
        assert not [k for k in sub if "dontappend" in k.lower()]
        flags = condor_rules.output_open_flags(sub)
        assert flags & os.O_APPEND and not flags & os.O_TRUNC
        assert sub["output"] == sub["error"]


def test_jobs_match_only_execute_nodes_of_the_access_points_filesystem_domain(cluster):
    """should_transfer_files = NO makes condor_submit AND `(TARGET.FileSystemDomain ==
    MY.FileSystemDomain)` into the requirements (SetRequirements), with the job's
    FileSystemDomain from the access point's FILESYSTEM_DOMAIN, which defaults to its full
    hostname: execute nodes match only where the admin gave both sides one domain."""
    sub = all_submits(cluster)["ttt_round/learn"]
    assert sub["should_transfer_files"] == "NO"
    assert "filesystemdomain" not in sub["requirements"].lower()  # HTCondor adds the clause
    assert condor_rules.job_requirements(sub) == (
        "((OpSysMajorVer >= 9)) && (TARGET.FileSystemDomain == MY.FileSystemDomain)"
    )
    node = {"OpSysMajorVer": 9, "FileSystemDomain": "pool.example.edu"}
    assert condor_rules.matches(sub, {"FileSystemDomain": "pool.example.edu"}, node)
    # The default: each machine's domain is its own hostname, so nothing ever matches.
    assert not condor_rules.matches(sub, {"FileSystemDomain": "ap40.example.edu"}, node)


A100_40 = {"Capability": 8.0, "GlobalMemoryMb": 40536, "MaxSupportedVersion": 13000}


@pytest.mark.parametrize(
    ("gpu", "fits"),
    [
        (A100_40, True),  # a "40G" card reports 40536 MiB, below 40G = 40960 MiB
        ({**A100_40, "GlobalMemoryMb": 81050}, True),  # A100-80GB
        ({**A100_40, "Capability": 7.0, "GlobalMemoryMb": 32510}, False),  # V100-32GB
        ({**A100_40, "Capability": 8.6, "GlobalMemoryMb": 24564}, False),  # RTX 4090
        ({**A100_40, "MaxSupportedVersion": 12040}, False),  # driver of CUDA 12.4: too old
    ],
)
def test_gpu_constraints_admit_the_gpus_they_name(cluster, gpu, fits):
    sub = all_submits(cluster)["ttt_round/learn"]  # site: gpus_minimum_memory 40G, 8.0
    assert condor_rules.gpu_matches(sub, gpu) is fits


def test_gpu_runtime_follows_the_site(cluster, tmp_path):
    root, _, site = cluster
    site.write_text(site.read_text() + "gpus_minimum_runtime: 12.8\n")
    learn = submits(plan_files(FIXTURES / "ttt_round.yaml", root, site)[2])["learn"]
    assert learn["require_gpus"].endswith(" && MaxSupportedVersion >= 12080")
    assert condor_rules.gpu_matches(learn, {**A100_40, "MaxSupportedVersion": 12080})
    site.write_text(site.read_text().replace("12.8", "null"))
    learn = submits(plan_files(FIXTURES / "ttt_round.yaml", root, site)[2])["learn"]
    assert "MaxSupportedVersion" not in learn["require_gpus"]


def test_the_data_root_must_be_the_sites_and_exist(cluster, tmp_path):
    """Every path of a submit file is read on the access point and on the execute node alike,
    and HTCondor silently skips a bind source that does not exist: a launcher data root other
    than the site's, and a site data root that does not exist, are refused by plan."""
    root, _, site = cluster
    env = {**os.environ, "ARCJOBS_SITE": str(site)}
    cmd = [sys.executable, "-m", "arcjobs", "plan", str(FIXTURES / "ttt_round.yaml")]
    cmd += ["--backend", "condor"]
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = subprocess.run(cmd + ["--data-root", str(other)], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(
        f"error: {site}: data_root is {root}, but the launcher's data root is {other}; "
    )
    assert f"run with --data-root {root}" in out.stderr
    missing = tmp_path / "missing"
    site.write_text(site.read_text().replace(f"data_root: {root}", f"data_root: {missing}"))
    out = subprocess.run(
        cmd + ["--data-root", str(missing)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"error: {site}: data_root {missing} does not exist here; ")
    assert f"mkdir -p {missing}" in out.stderr and not missing.exists()


def test_quoting_matches_the_condor_submit_manual():
    # The manual's example: arguments = "3 simple arguments" and
    # arguments = "one ""two"" 'spacey ''quoted'' argument'"
    assert cs.condor_arguments(["3", "simple", "arguments"]) == '"3 simple arguments"'
    assert split_new_syntax("\"one \"\"two\"\" 'spacey ''quoted'' argument'\"") == [
        "one",
        '"two"',
        "spacey 'quoted' argument",
    ]
    argv = ["one", '"two"', "spacey 'quoted' argument", "", "$(x)"]
    assert split_new_syntax(htcondor2.Submit({"arguments": cs.condor_arguments(argv)}).expand(
        "arguments")) == argv  # fmt: skip


def split_new_syntax(value: str) -> list[str]:
    """The new argument syntax as the condor_submit manual defines it: the value is in double
    quotes, `""` is a literal double quote, words are separated by whitespace, and a word in
    single quotes keeps its whitespace, with `''` for a literal single quote."""
    assert value.startswith('"') and value.endswith('"'), value
    body = value[1:-1].replace('""', '"')
    words, word, quoted, i, started = [], "", False, 0, False
    while i < len(body):
        c = body[i]
        if quoted:
            if c == "'" and body[i + 1 : i + 2] == "'":
                word += "'"
                i += 1
            elif c == "'":
                quoted = False
            else:
                word += c
        elif c == "'":
            quoted, started = True, True
        elif c.isspace():
            if started:
                words.append(word)
            word, started = "", False
        else:
            word += c
            started = True
        i += 1
    if started:
        words.append(word)
    return words


def test_the_backend_constructor_reads_the_site_from_the_environment(cluster, monkeypatch):
    root, cache, site = cluster
    monkeypatch.setenv("ARCJOBS_SITE", str(site))
    monkeypatch.setenv("ARCJOBS_DATA_ROOT", str(root))
    backend = CondorBackend()
    assert backend.site.image_cache == cache
    assert backend.image_id("train") == DIGESTS["train"]
