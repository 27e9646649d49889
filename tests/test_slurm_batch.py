"""Batch scripts, submit.sh and status lines of the slurm backend, without a Slurm cluster.

The scripts come from the real planner on the condor fixtures' TTT round and sweep, under each
runtime, and are checked as text and by `bash -n` (the real shell parses every one). The
apptainer runtime can only be tested this way: no Apptainer can be installed here. Status lines
are built from squeue and sacct output in the exact formats the backend asks for, recorded from
Slurm 22.05; the slurm tier (tests/slurm) runs all of it against real daemons.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import register_sifs

from arcjobs.backends import outlives_launcher
from arcjobs.backends import slurm_batch as sb
from arcjobs.backends.site import SlurmSite, load_site
from arcjobs.backends.slurm import SlurmBackend, _status, parse_sacct, parse_squeue
from arcjobs.engine.orchestrate import make_plan
from arcjobs.engine.store import RunStore
from arcjobs.errors import UserError
from arcjobs.images.apptainer import sif_path
from arcjobs.spec import load_job

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "condor"
ROOT = Path(__file__).resolve().parents[1]
DIGESTS = {n: "sha256:" + c * 64 for n, c in (("train", "a"), ("infer", "b"), ("sandbox", "c"))}


@pytest.fixture
def cluster(tmp_path):
    """A data root, an image cache with the three images registered as `arcjobs images
    apptainer` registers them (empty placeholder .sif files), and a site config."""
    root = tmp_path / "data"
    cache = tmp_path / "sif"
    register_sifs(cache, DIGESTS)
    site = tmp_path / "site.yaml"
    site.write_text(
        f"data_root: {root}\n"
        "environment: {HF_HUB_OFFLINE: '1'}\n"
        "slurm:\n"
        "  partition: gpu\n"
        "  account: ml-lab\n"
        "  qos: normal\n"
        "  time: 2-00:00:00\n"
        "  gpu_type: a100\n"
        "  sbatch: [--exclusive, '--constraint=\"ib&a100\"']\n"
        "  setup: ['module load cuda/12.4']\n"
        f"  image_cache: {cache}\n"
    )
    return root, site


def plan_scripts(job_file: Path, root: Path, site: Path, runtime: str | None = None, **kw):
    """The plan's requests and files for `job_file` (a `runtime:` replaced if given)."""
    if runtime:
        site.write_text(site.read_text() + f"  runtime: {runtime}\n")
    job = load_job(job_file, kw.pop("overrides", []))
    plan = make_plan(job, "slurm", RunStore(root), "r1", {"site": site})
    requests = plan.requests()
    return plan, requests, plan.backend.artefacts(list(requests.values()), plan.layout)


def sbatch_options(script: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH ")]


def the_command(script: str) -> list[str]:
    """The runtime's command line of a script: what runs in the background, then is waited for."""
    line = re.search(r"attempt \$attempt [^\n]*\n    (.*) &\n    wait \$!\n", script, re.S).group(1)
    return shlex.split(line.replace('"$scratch"', "SCRATCH"))


def test_ttt_round_under_apptainer_asks_slurm_for_what_each_step_needs(cluster):
    root, site = cluster
    plan, requests, files = plan_scripts(FIXTURES / "ttt_round.yaml", root, site)
    scripts = {Path(p).stem: t for p, t in files.items() if p.endswith(".sbatch")}
    assert set(scripts) == set(plan.job.steps)
    learn = sbatch_options(scripts["learn"])
    cluster_dir = f"{root}/runs/r1/steps/learn"
    assert learn[:7] == [
        "--job-name=r1.learn",
        f"--output={cluster_dir}/log.txt",
        "--open-mode=append",
        f"--chdir={cluster_dir}",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=16",
    ]
    for option in ("--mem=131072M", "--gres=gpu:a100:2", "--time=2-00:00:00", "--partition=gpu",
                   "--account=ml-lab", "--qos=normal", "--export=NONE",
                   "--kill-on-invalid-dep=yes", "--exclusive", '--constraint="ib&a100"'):  # fmt: skip
        assert option in learn, option
    assert not [o for o in sbatch_options(scripts["select"]) if o.startswith(("--gres", "--mem"))]

    argv = the_command(scripts["learn"])
    sif = str(sif_path(Path(load_site(site).slurm.image_cache), "train", DIGESTS["train"]))
    assert argv[:10] == ["apptainer", "exec", "--cleanenv", "--bind",
                         f"{root}:/data", "--pwd", "/data/runs/r1/steps/learn",
                         "--nv", sif, "arcjobs"]  # fmt: skip
    assert argv[-2:] == ["--out", "/data/runs/r1/steps/learn/out"]
    assert argv[10:] == requests["learn"].command[1:]
    # --cleanenv passes only APPTAINERENV_*: every variable of the step goes through it.
    env = requests["learn"].env
    assert env["HF_HUB_OFFLINE"] == "1" and env["ARCJOBS_DATA_ROOT"] == "/data"
    for k, v in env.items():
        assert f"export APPTAINERENV_{k}={shlex.quote(v)}" in scripts["learn"]
    assert 'APPTAINERENV_CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"' in scripts["learn"]
    assert "module load cuda/12.4" in scripts["learn"].splitlines()
    # the learn step's two retries run inside its job; exit 2 is never retried
    assert "for attempt in $(seq 3); do" in scripts["learn"]
    assert '[ "$code" -eq 2 ]' in scripts["learn"]


def test_the_sandbox_keeps_its_hardening_under_apptainer_and_docker(cluster, monkeypatch):
    root, site = cluster
    _, _, files = plan_scripts(FIXTURES / "ttt_round.yaml", root, site)
    execute = files[str(root / "runs/r1/slurm/execute.sbatch")]
    argv = the_command(execute)
    i = argv.index("--containall")
    assert argv[i : i + 7] == ["--containall", "--workdir", "SCRATCH", "--no-privs", "--net",
                               "--network", "none"]  # fmt: skip
    assert "--nv" not in argv
    assert 'scratch=$(mktemp -d "${TMPDIR:-/tmp}/arcjobs-XXXXXX")' in execute
    learn = the_command(files[str(root / "runs/r1/slurm/learn.sbatch")])
    assert "--containall" not in learn and "--net" not in learn

    # docker: compose.yaml's sandbox service, flag for flag, by the image's digest
    monkeypatch.setattr("arcjobs.images.docker.image_digest", lambda tag: DIGESTS[tag[8:-6]])
    _, _, files = plan_scripts(FIXTURES / "ttt_round.yaml", root, site, runtime="docker")
    argv = the_command(files[str(root / "runs/r1/slurm/execute.sbatch")])
    words = " ".join(argv)
    for flags in ("--network none", "--read-only", "--cap-drop ALL",
                  "--security-opt no-new-privileges", "--pids-limit 512", "--init",
                  "--tmpfs /tmp:rw,noexec,nosuid,nodev,size=1g,mode=1777",
                  "--memory 32768m --memory-swap 32768m", "--cpus 16",
                  f"--volume {root}:/data"):  # fmt: skip
        assert flags in words, flags
    assert argv[argv.index(DIGESTS["sandbox"]) + 1 :][:3] == ["arcjobs", "step", "execute"]
    learn = files[str(root / "runs/r1/slurm/learn.sbatch")]
    # What bash hands docker on a node where Slurm gave the job GPUs 2 and 3 (no GPU here: a
    # shell function stands in for docker and prints its arguments). Docker reads --gpus as
    # CSV, so the device list must arrive inside double quotes.
    line = re.search(r"\n    (docker run .*) &\n", learn).group(1)
    shown = subprocess.run(
        ["bash", "-c", f'docker() {{ printf "%s\\n" "$@"; }}; CUDA_VISIBLE_DEVICES=2,3; {line}'],
        capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    assert shown[shown.index("--gpus") + 1] == '"device=2,3"'
    assert "--network" not in the_command(learn) and "--ipc" in the_command(learn)
    # the container is the daemon's child, not the job's: SIGTERM removes it
    name = the_command(learn)[the_command(learn).index("--name") + 1]
    assert f'trap \'echo "== $(date "+%F %T") stopped by SIGTERM"; docker rm -f {name}' in learn


def test_every_generated_script_is_valid_bash(cluster, tmp_path):
    """A multi-line `run:` script and shell `$` in a step stay literal; bash parses all."""
    root, site = cluster
    for runtime in ("apptainer", "docker", "none"):
        _, _, files = plan_scripts(FIXTURES / "ttt_round.yaml", root, site, runtime=runtime)
        for path, text in files.items():
            checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
            assert checked.returncode == 0, f"{runtime} {path}: {checked.stderr}"
    notes = files[str(root / "runs/r1/slurm/notes.sbatch")]
    command = the_command(notes)
    assert command[:4] == ["arcjobs", "step", "run", "--command"]
    assert command[4] == (
        'echo "round with lora_rank 32" > $OUT/notes.txt\n'
        f"cat {root}/runs/r1/steps/stamp/out/when.txt >> $OUT/notes.txt\n"
    )


def test_submit_sh_lists_the_order_and_dependencies_and_skips_complete_steps(cluster):
    root, site = cluster
    job = load_job(FIXTURES / "sweep.yaml")
    plan = make_plan(job, "slurm", RunStore(root), "r1", {"site": site})
    select = plan.layout.step_dir("select")
    (select / "out").mkdir(parents=True)
    (select / "manifest.json").write_text(
        json.dumps({"status": "ok", "key": plan.decisions["select"].key})
    )
    files = plan.backend.artefacts(list(plan.requests().values()), plan.layout)
    submit = files[str(plan.layout.run_dir / "slurm" / "submit.sh")].splitlines()
    assert "# select: complete in this run, not submitted" in submit
    records = [line for line in submit if line.startswith("record ")]
    assert len(records) == len(job.steps) - 1
    # every step after exactly the steps it needs that are submitted with it
    for line in records:
        step = line.split()[1]
        deps = re.findall(r"\$\{job\[([^]]+)\]\}", line)
        assert deps == [n for n in job.steps[step].needs if n != "select"], line
        assert line.endswith(f' {sb.script_file(step)})"')
    branches = [line.split()[1] for line in records if line.split()[1].startswith("learn.")]
    assert len(branches) == 4  # 2 x 2 branches, each waiting only on what it needs


def test_submit_argv_is_what_submit_sh_runs():
    assert sb.submit_argv("b.sbatch", []) == ["sbatch", "--parsable", "b.sbatch"]
    assert sb.submit_argv("d.sbatch", ["12", "13"]) == [
        "sbatch", "--parsable", "--dependency=afterok:12:13", "d.sbatch",
    ]  # fmt: skip
    text = sb.submit_script(
        [sb.Submission("a", ()), sb.Submission("d", ("a",), live=("77",))], "r1", ["/x/a", "/x/d"]
    )
    assert "\nmkdir -p /x/a /x/d\n" in text
    assert text.splitlines()[-1] == (
        'record d "$(sbatch --parsable "--dependency=afterok:${job[a]}:77" d.sbatch)"'
    )


def test_paths_with_spaces_and_percent_signs_survive_sbatch_directives():
    options = sb.directives(
        name="r.a", log=Path("/x y/100%/log.txt"), workdir=Path("/x y/100%"),
        resources=load_job(ROOT / "tests/fixtures/jobs/fanout.yaml").steps["a"].resources,
        site=SlurmSite(),
    )  # fmt: skip
    assert options[1] == '--output="/x y/100%%/log.txt"'
    assert options[3] == '--chdir="/x y/100%"'
    with pytest.raises(ValueError, match="cannot be written in an #SBATCH line"):
        sb.directives(
            name="r.a", log=Path('/x"y/log.txt'), workdir=Path("/x"),
            resources=load_job(ROOT / "tests/fixtures/jobs/fanout.yaml").steps["a"].resources,
            site=SlurmSite(),
        )  # fmt: skip


def test_plan_on_the_command_line_prints_and_writes_every_script(cluster):
    root, site = cluster
    env = {**os.environ, "ARCJOBS_SITE": str(site), "ARCJOBS_DATA_ROOT": str(root)}
    base = [sys.executable, "-m", "arcjobs", "plan", str(FIXTURES / "ttt_round.yaml")]
    base += ["--backend", "slurm", "--run-id", "r1"]
    shown = subprocess.run(base, capture_output=True, text=True, env=env, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    run_dir = root / "runs" / "r1"
    for name in [*load_job(FIXTURES / "ttt_round.yaml").steps, "submit"]:
        suffix = ".sh" if name == "submit" else ".sbatch"
        assert f"--- {run_dir}/slurm/{name}{suffix} ---" in shown.stdout
    review = root.parent / "review"
    written = subprocess.run([*base, "--out", str(review), "--json"], capture_output=True,
                             text=True, env=env, cwd=ROOT)  # fmt: skip
    assert written.returncode == 0, written.stderr
    data = json.loads(written.stdout)
    on_disk = {str(p.relative_to(review)): p.read_text() for p in review.rglob("*") if p.is_file()}
    assert on_disk.pop("plan.json") and on_disk == {
        str(Path(p).relative_to(run_dir)): t for p, t in data["artefacts"].items()
    }
    learn = next(s for s in data["steps"] if s["step"] == "learn")["request"]["extra"]
    assert learn["slurm"]["script"] == on_disk["slurm/learn.sbatch"]
    assert learn["runtime"] == "apptainer" and learn["slurm"]["image_ready"] is True
    assert not run_dir.exists()  # plan writes nothing under the data root


def test_unconverted_images_are_refused_in_one_line_before_anything_is_written(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(f"slurm: {{image_cache: {tmp_path / 'empty'}}}\n")
    job = load_job(ROOT / "tests/fixtures/jobs/fanout.yaml")
    plan = make_plan(job, "slurm", RunStore(tmp_path / "data"), "r1", {"site": site})
    requests = plan.requests()
    with pytest.raises(UserError, match=r"image\(s\) \w+ not ready for Slurm; convert them first"):
        plan.backend.submit_dag(requests, {}, plan.layout)
    assert not plan.layout.run_dir.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slurm: {partition: gpu, runtim: docker}", "slurm.runtim: unknown setting; expected one of: partition, account"),
        ("slurm: {runtime: podman}", "slurm.runtime: Input should be 'apptainer', 'docker' or 'none'"),
        ("slurm: {time: 2 days}", "slurm.time: Value error, expected a Slurm time limit such as 90"),
        ("slurm: {sbatch: [exclusive]}", "slurm.sbatch: Value error, expected one sbatch option per item"),
        ("slurm: {image_cache: sif}", "slurm.image_cache: Value error, must be an absolute path"),
    ],
)  # fmt: skip
def test_slurm_site_errors_are_one_line_naming_the_key(tmp_path, text, message):
    site = tmp_path / "site.yaml"
    site.write_text(text + "\n")
    with pytest.raises(UserError) as e:
        load_site(site)
    assert str(e.value).startswith(f"{site}: {message}") and "\n" not in str(e.value)


def test_an_unquoted_time_limit_is_refused_since_yaml_reads_it_in_base_60(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("slurm: {time: 4:00:00}\n")
    with pytest.raises(UserError, match=r"slurm.time: Value error, quote the time limit .*14400"):
        load_site(site)
    site.write_text("slurm: {time: '4:00:00'}\n")
    assert load_site(site).slurm.time == "4:00:00"


def test_the_slurm_site_example_in_the_docs_is_valid(tmp_path):
    text = (ROOT / "docs" / "cluster.md").read_text()
    chapter = text[text.index("# Running on a Slurm cluster") :]
    example = re.search(r"```yaml\n(.*?)```", chapter, re.S).group(1)
    site = tmp_path / "site.yaml"
    site.write_text(example)
    slurm = load_site(site).slurm
    assert slurm.runtime == "apptainer" and slurm.partition == "gpu"
    assert slurm.sbatch == ["--exclusive", "--constraint=ib"]
    rows = [line.split("|")[1] for line in chapter.splitlines() if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}
    # Every setting has a row; `slurm` itself has one in chapter 3's table.
    assert set(SlurmSite.model_fields) <= documented


# --- what squeue and sacct say -------------------------------------------------------------

HANDLE = {"job_id": "12", "key": "k", "step_dir": "/nonexistent", "needs": {"search": "11"},
          "memory_mb": 4096}  # fmt: skip


def status_of(line: str, handle: dict | None = None):
    rows = parse_squeue(line + "\n")
    return _status(rows.get("12"), handle or HANDLE)


@pytest.mark.parametrize(
    ("line", "state", "code", "detail"),
    [
        ("12|PENDING|Dependency|0|||", "queued", None, "Slurm job 12 pending: waiting for upstream steps search (Dependency)"),
        ("12|PENDING|Resources|0||1:00:00|", "queued", None, "Slurm job 12 pending: waiting for a node with the resources it asks (Resources)"),
        ("12|PENDING|Priority|0|||", "queued", None, "Slurm job 12 pending: waiting behind higher-priority jobs (Priority)"),
        ("12|PENDING|ReqNodeNotAvail, UnavailableNodes:gpu[01-02]|0|||", "queued", None, "Slurm job 12 pending: the nodes it needs are not available: UnavailableNodes:gpu[01-02] (ReqNodeNotAvail)"),
        ("12|PENDING|None|0|||", "queued", None, "Slurm job 12 pending: waiting to be scheduled"),
        ("12|RUNNING|None|0|node07|1:00:00|", "running", None, "running as Slurm job 12 on node07"),
        ("12|COMPLETING|None|0|node07|1:00:00|", "running", None, "running as Slurm job 12 on node07"),
        ("12|COMPLETED|None|0|node07||", "exited", 0, "Slurm job 12 completed on node07"),
        ("12|FAILED|NonZeroExitCode|768|node07||", "exited", 3, "exit code 3 (Slurm job 12 FAILED on node07)"),
        ("12|FAILED|NonZeroExitCode|35072|node07||", "exited", 137, "exit code 137, signal 9 (Slurm job 12 FAILED on node07)"),
        ("12|FAILED|JobLaunchFailure|9|node07||", "exited", None, "killed by signal 9 (Slurm job 12 FAILED on node07)"),
        ("12|TIMEOUT|TimeLimit|0|node07|1:00:00|", "exited", None, "TIMEOUT: Slurm job 12 reached its time limit (1:00:00) on node07; raise `slurm.time` in the site config"),
        ("12|OUT_OF_MEMORY|OutOfMemory|0|node07||", "exited", None, "OUT_OF_MEMORY: Slurm job 12 used more memory than it asked on node07; raise resources.memory of this step in the job file (now 4096 MB)"),
        ("12|NODE_FAIL|NodeDown|0|node07||", "exited", None, "NODE_FAIL: the node node07 failed under Slurm job 12"),
        ("12|CANCELLED|DependencyNeverSatisfied|0|||", "exited", None, "never started: an upstream step failed (Slurm job 12)"),
        ("12|PENDING|DependencyNeverSatisfied|0|||", "exited", None, "never started: an upstream step failed (Slurm job 12)"),
        ("12|CANCELLED|None|0|node07||", "exited", None, "Slurm job 12 was cancelled (scancel) on node07"),
    ],
)  # fmt: skip
def test_squeue_states_and_reasons_read_as_one_line(line, state, code, detail):
    status = status_of(line)
    assert (status.state, status.exit_code, status.detail) == (state, code, detail)


def test_a_job_slurm_forgot_is_judged_by_its_manifest(tmp_path):
    handle = {**HANDLE, "step_dir": str(tmp_path)}
    lost = _status(None, handle)
    assert lost.state == "lost" and "no longer listed by Slurm" in lost.detail
    (tmp_path / "out").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"status": "ok", "key": "k"}))
    assert _status(None, handle).state == "exited" and _status(None, handle).exit_code == 0


def test_sacct_rows_read_like_squeue_rows():
    rows = parse_sacct("12|CANCELLED by 0|0:15|node07|01:00:00\n13|FAILED|3:0|node08|UNLIMITED\n")
    assert rows["12"].state == "CANCELLED" and rows["12"].wait_status == 15
    assert _status(rows["13"], HANDLE).detail.startswith(
        "exit code 3 (Slurm job 12 FAILED on node08"
    )


def test_runs_on_cluster_backends_outlive_their_launcher():
    assert outlives_launcher("slurm") and outlives_launcher("condor")
    assert not outlives_launcher("local") and not outlives_launcher("gone")


def test_the_backend_is_constructed_from_the_environments_site(tmp_path, monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text("slurm: {runtime: none, partition: debug}\n")
    monkeypatch.setenv("ARCJOBS_SITE", str(site))
    backend = SlurmBackend(data_root=tmp_path)
    assert backend.slurm.partition == "debug"
    assert backend.data_mount(RunStore(tmp_path).layout("r")) == str(tmp_path.absolute())
