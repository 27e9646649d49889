"""Submit descriptions and the DAGMan DAG for a TTT round and a LoRA sweep, built by the condor
backend through the real engine planner and the real `htcondor2` bindings (Submit, dags), and
parsed back with those bindings (`htcondor2.Submit` for .sub files, `classad2` for
expressions, `htcondor2.dags.rescue` for node names). No HTCondor daemon is involved: nothing
here submits. The image cache holds empty placeholder .sif files under the names a conversion
would give them, registered in its index.json as `arcjobs images apptainer` registers them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import classad2
import htcondor2
import pytest
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
    cache = tmp_path / "sif"
    cache.mkdir(parents=True)
    images = {}
    for name, digest in DIGESTS.items():
        path = sif_path(cache, name, digest)
        path.write_bytes(b"")
        images[name] = {"digest": digest, "sif": path.name, "source": "test", "recorded": 0}
    (cache / "index.json").write_text(json.dumps({"images": images}))
    site = tmp_path / "site.yaml"
    site.write_text(
        f"image_cache: {cache}\n"
        "data_root: /staging/alice/arcjobs\n"
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
    plan = make_plan(
        job, "condor", RunStore(root), "r1", backend_options={"site": site, "data_root": root}
    )
    requests = plan.requests()
    files = plan.backend.artefacts(list(requests.values()), plan.layout)
    return plan, requests, files


def parse_dag(text: str) -> tuple[dict[str, str], dict[str, set[str]], dict[str, str]]:
    """JOB, PARENT/CHILD and RETRY lines of a DAG file: node → file, node → parents, retries."""
    jobs, parents, retries = {}, {}, {}
    for line in text.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "JOB":
            jobs[w[1]] = w[2]
            parents.setdefault(w[1], set())
        elif w[0] == "PARENT":
            i = w.index("CHILD")
            for child in w[i + 1 :]:
                parents.setdefault(child, set()).update(w[1:i])
        elif w[0] == "RETRY":
            retries[w[1]] = " ".join(w[2:])
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
    assert learn["gpus_minimum_memory"] == "40960MB"
    assert learn["gpus_minimum_capability"] == "8.0"
    assert "gpus_minimum_memory" not in execute
    assert learn["should_transfer_files"] == "NO" and learn["getenv"] == "false"
    assert learn["accounting_group"] == "group_ml" and learn["accounting_group_user"] == "alice"
    assert learn["requirements"] == "(OpSysMajorVer >= 9)"

    # Paths: the execute node writes the step's log.txt on the cluster's data root; the
    # schedd writes the event log where the launcher reads it; /data is the cluster root.
    step_dir = "/staging/alice/arcjobs/runs/r1/steps/learn"
    assert learn["initialdir"] == step_dir
    assert learn["output"] == learn["error"] == f"{step_dir}/log.txt"
    assert learn["log"] == str(plan.layout.step_dir("learn") / "condor.log")
    assert classad2.ExprTree(learn["My.SingularityBind"]).eval() == ("/staging/alice/arcjobs:/data")
    assert classad2.ExprTree(learn["My.DontAppend"]).eval() is False
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
    assert (big["gpus_minimum_memory"], big["gpus_minimum_capability"]) == ("81920MB", "9.0")
    assert (plain["gpus_minimum_memory"], plain["gpus_minimum_capability"]) == ("40960MB", "8.0")
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
    # Node names are the step names, so DAGMan's rescue files read back through the bindings.
    rescue = Path(plan.layout.run_dir) / "run.dag.rescue001"
    rescue.parent.mkdir(parents=True, exist_ok=True)
    rescue.write_text(f"# Rescue DAG\nDONE select\nDONE {branches[0]}\n")
    dag = cs.build_dag([cs.Node(n, {}, (), 0) for n in jobs], "r1")
    dags.rescue(dag, rescue, formatter=cs._formatter())
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
    node = cs.Node("a", {"request_cpus": "2"}, (), 0)
    cs.validate({"/x/a.sub": "request_cpus = 2\nqueue\n"}, [node])
    with pytest.raises(ValueError, match="does not read back"):
        cs.validate({"/x/a.sub": "request_cpus = 2\nrequest_cpus = 3\nqueue\n"}, [node])


def test_node_names_refuse_what_dagman_cannot_parse():
    assert cs.node_name("learn.lora_rank=16") == "learn.lora_rank=16"
    with pytest.raises(UserError, match="DAGMan node name"):
        cs.node_name("learn.lr=1e+4")


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
    _, cache, site = cluster
    monkeypatch.setenv("ARCJOBS_SITE", str(site))
    backend = CondorBackend()
    assert backend.site.image_cache == cache
    assert backend.image_id("train") == DIGESTS["train"]
