"""`plan` shows what `run` would refuse here, with the same lines, and both see a relative path
as the same file: relative to the directory the launcher runs in, on every backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import ROOT, arcjobs

from arcjobs.engine.orchestrate import make_plan, readiness
from arcjobs.engine.store import RunStore
from arcjobs.spec import load_job

CORPUS = ROOT / "arcjobs" / "sandbox" / "corpus"
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}

# One step that would fail at once on a machine without GPUs or the model, and with a
# training task id against the evaluation set.
SEARCH = """\
name: search
params: {gpus: 1, model: models/none, tasks: "007bbfb7"}
steps:
  search:
    uses: infer
    resources: {gpus: "${gpus}"}
    with:
      model: ${model}
      dataset: arc-agi-1/evaluation
      task_ids: ${tasks}
      engine: transformers
"""

PROGRAMS = """\
name: progs
steps:
  progs:
    uses: programs
    with: {directory: progs, dataset: arc-agi-1/training, task_ids: [0d3d703e]}
"""


def refused(proc: subprocess.CompletedProcess[str]) -> list[str]:
    prefix = "run would refuse here: "
    return [line[len(prefix) :] for line in proc.stderr.splitlines() if line.startswith(prefix)]


@pytest.mark.unit
def test_plan_lists_what_run_refuses_in_the_same_words(tmp_path: Path) -> None:
    """Every refusal in one `plan` (which still exits 0: a job is often planned elsewhere);
    `run` stops at the first with exactly that line, before anything is written."""
    job = tmp_path / "search.yaml"
    job.write_text(SEARCH)
    data = tmp_path / "data"
    plan = arcjobs("plan", job, "--data-root", data, env=NO_GPU)
    assert plan.returncode == 0, plan.stderr
    missing = ROOT / "models" / "none"
    assert refused(plan) == [
        f"{job}:6: steps.search.resources.gpus: step search asks for 1 GPU(s) and the local "
        "backend has 0 here; lower it (e.g. --set gpus=0 where the job has that parameter) "
        "or use a backend with GPUs",
        f"{job}:8: steps.search.with.model: {missing}: not a model directory (no config.json); "
        "give a local HF model path",
        f"{job}:10: steps.search.with.task_ids: arc-agi-1/evaluation: unknown task id "
        "'007bbfb7' (400 tasks in it)",
    ]
    as_json = json.loads(arcjobs("plan", job, "--data-root", data, "--json", env=NO_GPU).stdout)
    assert as_json["refusals"] == refused(plan)

    run = arcjobs("run", job, "--data-root", data, env=NO_GPU)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"error: {refused(plan)[0]}"]
    without_gpus = arcjobs("run", job, "--data-root", data, "--set", "gpus=0", env=NO_GPU)
    assert without_gpus.stderr.strip().splitlines() == [f"error: {refused(plan)[1]}"]
    assert not data.exists()


@pytest.mark.unit
def test_task_ids_are_checked_without_the_ml_stack(tmp_path: Path) -> None:
    """The dataset's ids are read as JSON: planning imports neither numpy nor torch."""
    job = tmp_path / "search.yaml"
    job.write_text(SEARCH)
    code = (
        "import sys; from arcjobs.cli import cli\n"
        "try:\n"
        "    cli.main(['plan', sys.argv[1], '--data-root', sys.argv[2]], standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('numpy', 'torch', 'transformers') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(job), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert "unknown task id '007bbfb7'" in done.stderr, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


@pytest.mark.unit
def test_steps_that_will_not_run_are_not_checked(tmp_path: Path) -> None:
    """An input of a step that is done or reused is never read again: its absence is no
    reason to refuse a resume."""
    job = tmp_path / "search.yaml"
    job.write_text(SEARCH)
    store = RunStore(tmp_path / "data")
    plan = make_plan(load_job(job, ["gpus=0"]), "local", store, None)
    decision = plan.decisions["search"]
    assert len(readiness(plan).refusals) == 2
    plan.decisions["search"] = replace(decision, action="reuse")
    assert readiness(plan).refusals == []


@pytest.mark.unit
def test_relative_paths_are_relative_to_the_launchers_directory(tmp_path: Path) -> None:
    """The job file lies elsewhere; its relative `directory` and a relative `--set` both name
    files under the directory arcjobs runs in, shown absolute by plan, with one cache key
    whichever way the same file is named."""
    work, jobs = tmp_path / "work", tmp_path / "jobs"
    (work / "progs").mkdir(parents=True)
    jobs.mkdir()
    job = jobs / "progs.yaml"
    job.write_text(PROGRAMS)
    keys = {}
    for name, how in {
        "file": [],
        "set": ["--set", "progs.directory=./progs/"],
        "absolute": ["--set", f"progs.directory={work / 'progs'}"],
    }.items():
        plan = arcjobs("plan", job, "--data-root", "data", "--json", *how, cwd=work, check=True)
        step = json.loads(plan.stdout)["steps"][0]
        command = step["request"]["command"]
        assert command[command.index("--directory") + 1] == str(work / "progs")
        keys[name] = step["key"]
    assert len(set(keys.values())) == 1, keys
    assert refused(arcjobs("plan", job, "--data-root", "data", cwd=jobs)) == [
        f"{job}:5: steps.progs.with.directory: {jobs / 'progs'}: no such file or directory"
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("backend", "seen"), [("local", "{root}/progs"), ("compose", "/data/progs")]
)
def test_a_path_under_the_data_root_is_where_each_backend_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, seen: str
) -> None:
    """Under the data root, a path is `${data}/...`: the local step gets the host path, a
    container `/data/...`, and the key does not depend on where the data root lies. Outside
    the data root, a container backend refuses it in one line."""
    root = tmp_path / "data"
    (root / "progs").mkdir(parents=True)
    job = tmp_path / "progs.yaml"
    job.write_text(PROGRAMS)
    no_engine = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    monkeypatch.chdir(tmp_path)
    keys = set()
    for where in (root, tmp_path / "moved" / "data"):
        loaded = load_job(job, [f"progs.directory={where}/progs"])
        plan = make_plan(loaded, backend, RunStore(where), None)
        assert plan.job.steps["progs"].params["directory"] == "${data}/progs"
        keys.add(plan.decisions["progs"].key)
    assert len(keys) == 1

    plan = arcjobs(
        "plan",
        job,
        "--data-root",
        "data",
        "-b",
        backend,
        "--json",
        "--set",
        "progs.directory=data/progs",
        cwd=tmp_path,
        env=no_engine,
    )
    command = json.loads(plan.stdout)["steps"][0]["request"]["command"]
    assert command[command.index("--directory") + 1] == seen.format(root=root)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    plan = arcjobs(
        "plan",
        job,
        "--data-root",
        "data",
        "-b",
        backend,
        "--set",
        f"progs.directory={outside}",
        cwd=tmp_path,
        env=no_engine,
    )
    inputs = [r for r in refused(plan) if "steps.progs" in r]
    if backend == "local":
        assert inputs == []
    else:
        assert inputs == [
            f"{job}:5: steps.progs.with.directory: {outside} is outside the data root {root}, "
            "the only host directory a step on the compose backend sees; move it under the "
            "data root (it is ${data}/... there)"
        ]


@pytest.mark.integration
def test_a_relative_set_path_reaches_the_step(tmp_path: Path) -> None:
    """The issue's case: a relative `--set` path worked in plan but the step, run in its own
    directory, looked elsewhere. Now the local step reads the file the user named."""
    work = tmp_path / "work"
    (work / "progs").mkdir(parents=True)
    shutil.copy(CORPUS / "0d3d703e.py", work / "progs")
    job = tmp_path / "progs.yaml"
    job.write_text(PROGRAMS.replace("directory: progs", "directory: nowhere"))
    done = arcjobs("run", job, "--data-root", "data", "--set", "progs.directory=progs", cwd=work)
    assert done.returncode == 0, done.stderr
    out = work / "data" / "runs"
    (predictions,) = out.glob("*/steps/progs/out/predictions.jsonl")
    assert json.loads(predictions.read_text().splitlines()[0])["task_id"] == "0d3d703e"
