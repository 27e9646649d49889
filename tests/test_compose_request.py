"""The compose backend's requests, without an engine: which service, which GPUs, which limits,
which user and name — and the one-line refusals when Compose or the engine is missing.

The docker tier (tests/docker/test_compose_backend.py) runs these commands for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from arcjobs.backends.compose import ComposeBackend, container_name, container_user
from arcjobs.engine.scheduler import render_params
from arcjobs.errors import UserError
from arcjobs.images import docker as dk
from arcjobs.layout import RunLayout
from arcjobs.spec import load_job

pytestmark = pytest.mark.unit

JOB = """
name: shapes
steps:
  learn:
    uses: train
    resources: {gpus: 2, cpus: 4, memory: 32G}
    with: {model: "${data}/models/m", dataset: "${data}/d.jsonl"}
  tiny:
    uses: tiny_model
  score:
    uses: execute
    resources: {cpus: 2, memory: 2G}
    with: {predictions: "${data}/p.jsonl", dataset: arc-agi-1/training}
  sweep:
    run: "echo ${matrix.x}"
    matrix: {x: ["a b", c]}
"""


@pytest.fixture
def planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(dk, "_engine", lambda: dk.Engine(cpus=64, memory_mb=512 * 1024))
    job_file = tmp_path / "job.yaml"
    job_file.write_text(JOB)
    job = load_job(job_file)
    backend = ComposeBackend(data_root=tmp_path / "data")
    backend._image_ids = {i: f"sha256:{i}" for i in ("train", "sandbox", "infer")}
    layout = RunLayout(tmp_path / "data", "r1")

    def request(name: str, gpu_ids: list[int] | None = None):
        step = job.steps[name]
        return backend.request(step, render_params(step, layout, "/data"), layout, "k", gpu_ids)

    request.steps = list(job.steps)  # type: ignore[attr-defined]
    return backend, request


def flags(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, a in enumerate(command) if a == flag]


def test_gpu_step_gets_its_own_gpus_and_limits(planned, monkeypatch) -> None:
    backend, request = planned
    req = request("learn", [1, 2])
    env = dict(e.split("=", 1) for e in flags(req.command, "-e"))
    assert env["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert env["ARCJOBS_IMAGE"] == "sha256:train" and env["ARCJOBS_CACHE_KEY"] == "k"
    assert req.env["ARCJOBS_CPUS"] == "4" and req.env["ARCJOBS_MEMORY"] == f"{32 * 1024}m"
    assert req.env["ARCJOBS_DATA_ROOT"] == str(backend.data_root.absolute())
    assert req.command[req.command.index("-p") + 1] == "arcjobs"  # compose.yaml has no name
    service = req.command.index("arcjobs", req.command.index("run")) - 1
    assert req.command[service] == "train"
    assert req.command[service + 1 :][:3] == ["arcjobs", "step", "train"]
    assert req.command[-2:] == ["--out", "/data/runs/r1/steps/learn/out"]
    assert "/data/models/m" in req.command


def test_limits_are_clamped_to_the_engines_machine(planned, monkeypatch) -> None:
    """Docker refuses `cpus` beyond the machine; the step is told what it was given."""
    monkeypatch.setattr(dk, "_engine", lambda: dk.Engine(cpus=2, memory_mb=16 * 1024))
    _, request = planned
    req = request("learn", [0, 1])
    assert req.env["ARCJOBS_CPUS"] == "2" and req.env["ARCJOBS_MEMORY"] == f"{16 * 1024}m"
    env = dict(e.split("=", 1) for e in flags(req.command, "-e"))
    assert env["OMP_NUM_THREADS"] == "2" and '"cpus":2' in env["ARCJOBS_RESOURCES"]


def test_gpu_ids_index_the_launchers_own_visible_devices(planned, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    backend, request = planned
    backend._gpus = None
    env = dict(e.split("=", 1) for e in flags(request("learn", [1, 2]).command, "-e"))
    assert env["CUDA_VISIBLE_DEVICES"] == "5,6"


def test_steps_without_gpus_use_the_services_without_a_reservation(planned) -> None:
    _, request = planned
    tiny = request("tiny")
    assert "train-cpu" in tiny.command and "train" not in tiny.command
    score = request("score")
    assert "sandbox" in score.command
    assert score.env["ARCJOBS_SANDBOX_MEMORY"] == "2048m"
    env = dict(e.split("=", 1) for e in flags(score.command, "-e"))
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_containers_are_named_and_labelled_for_their_run_and_step(planned, tmp_path) -> None:
    _, request = planned
    job_steps = request.steps
    names = {
        n: request(n).extra.container
        for n in ("learn", *[n for n in job_steps if n.startswith("sweep")])
    }
    assert len(set(names.values())) == 3
    for step, name in names.items():
        req = request(step)
        assert flags(req.command, "--name") == [name]
        assert f"arcjobs.step={step}" in flags(req.command, "-l")
        assert "arcjobs.run=r1" in flags(req.command, "-l")
        assert name.startswith("arcjobs.r1.") and all(c.isalnum() or c in "_.-" for c in name)
    # The same names for the same run and step, another for another data root.
    assert container_name(tmp_path / "data", "r1", "learn") == names["learn"]
    assert container_name(tmp_path / "other", "r1", "learn") != names["learn"]


def test_the_container_user_is_never_root(tmp_path: Path) -> None:
    uid, _ = container_user(tmp_path)
    assert uid != 0
    if os.getuid() != 0:
        assert (uid, _) == (os.getuid(), os.getgid())


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )


def test_plan_works_without_an_engine_and_run_refuses_in_one_line(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: nap\nsteps:\n  nap:\n    run: 'true'\n")
    no_engine = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    plan = cli("plan", str(job), "-b", "compose", "--data-root", str(tmp_path / "d"), **no_engine)
    assert plan.returncode == 0, plan.stderr
    assert "ARCJOBS_IMAGE=unknown:arcjobs-sandbox:" in plan.stdout
    run = cli("run", str(job), "-b", "compose", "--data-root", str(tmp_path / "d"), **no_engine)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1
    expected = "no Docker engine" if shutil.which("docker") else "not installed"
    assert expected in run.stderr or "Compose" in run.stderr


def test_no_compose_at_all_is_one_line(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: nap\nsteps:\n  nap:\n    run: 'true'\n")
    run = cli(
        "run", str(job), "-b", "compose", "--data-root", str(tmp_path / "d"),
        ARCJOBS_COMPOSE="/nonexistent/docker-compose",
    )  # fmt: skip
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1


def test_without_the_docker_package_the_engine_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK is the `docker` extra: a launcher installed without it plans (no digests) and
    says in one line what to install where it needs the engine. Hidden here by a None in
    sys.modules, which makes `import docker` fail as on such an installation."""
    monkeypatch.setitem(sys.modules, "docker", None)
    dk._client.cache_clear()
    dk._engine.cache_clear()
    try:
        assert dk.image_digest("arcjobs-sandbox:0") is None
        with pytest.raises(UserError, match=r"^the docker Python package is not installed "):
            dk.engine()
    finally:
        dk._client.cache_clear()
        dk._engine.cache_clear()
