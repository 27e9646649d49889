"""The train and infer services as compose.yaml defines them, run by a real engine.

The real train and infer images carry CUDA torch and vLLM (GBs) and cannot be built here (the
opt-in `images` tier builds them). So the services run a stand-in: the session's sandbox image
tagged as `arcjobs-train`/`arcjobs-infer` under a version of its own, which has Python, the
entry point and nothing of the ML stack. What is under test is the services' own settings:
- a uid without a passwd entry (the launcher's) has a name and writes the compiled-kernel
  caches on the data volume;
- no network, so parallel first `compose run`s create no project network to race over;
- the GPU ulimits NVIDIA recommends, on the GPU services only (this engine may not raise
  memlock: the GPU services' definition is checked, the CPU ones run);
- stopping a step signals its whole process group (accelerate's ranks with it);
- the compose backend reads an image's CUDA label from the engine.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import Compose, _run

from arcjobs import __version__
from arcjobs.images import docker as dk

pytestmark = pytest.mark.docker

STANDIN = f"{__version__}-standin"
MODEL_SERVICES = ("train", "infer", "train-cpu", "infer-cpu")
CACHES = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT")
UID = "12345"


@pytest.fixture(scope="module")
def standins(sandbox_image: str):
    tags = [f"arcjobs-{name}:{STANDIN}" for name in ("train", "infer")]
    for tag in tags:
        assert _run(["docker", "tag", sandbox_image, tag], timeout=60).returncode == 0
    yield
    for tag in tags:
        _run(["docker", "rmi", tag], timeout=60)


@pytest.fixture
def shared_root(tmp_path: Path) -> Path:
    """A data root any uid may write, as the compose backend prepares one for its uid."""
    root = tmp_path / "data"
    root.mkdir()
    root.chmod(0o777)
    return root


def run_model(compose: Compose, root: Path, *args: str, **env: str):
    """`docker compose run --rm -T --no-deps ARGS` with the stand-in images."""
    return compose.run(
        "run", "--rm", "-T", "--no-deps", *args,
        ARCJOBS_VERSION=STANDIN, ARCJOBS_DATA_ROOT=str(root), **env,
    )  # fmt: skip


def test_model_services_have_no_network_a_name_and_caches_on_the_data_volume(
    compose: Compose,
) -> None:
    done = compose.run("--profile", "cpu", "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    for name in MODEL_SERVICES:
        service = config["services"][name]
        env = service["environment"]
        assert service["network_mode"] == "none", name
        assert env["USER"] == env["LOGNAME"] == "arcjobs", name
        assert all(env[var].startswith("/data/cache/") for var in CACHES), name
        assert env["TINI_KILL_PROCESS_GROUP"] == "1" and service["init"] is True, name
        gpu = {"memlock": -1, "stack": 64 * 2**20} if "-cpu" not in name else {}
        assert {k: v for k, v in service["ulimits"].items() if k != "core"} == gpu, name
    assert not config.get("networks"), "a service would make Compose create a network"


def test_an_arbitrary_uid_has_a_name_and_writes_the_caches(
    compose: Compose, standins: None, shared_root: Path
) -> None:
    """Compose runs a step as the launcher's uid, unknown to the image. getpass reads USER /
    LOGNAME first; without them it raises, as torch < 2.13's inductor cache lookup and
    torch's vendored quack cache do through it."""
    code = (
        "import getpass, json, os;"
        f"[os.makedirs(os.environ[v], exist_ok=True) for v in {CACHES!r}];"
        "print(json.dumps({'user': getpass.getuser(), 'uid': os.getuid()}))"
    )
    done = run_model(
        compose, shared_root, "--user", f"{UID}:{UID}", "train-cpu", "python3", "-c", code
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"user": "arcjobs", "uid": int(UID)}
    for name in ("torchinductor", "triton", "vllm"):
        assert (shared_root / "cache" / name).stat().st_uid == int(UID), name

    nameless = run_model(
        compose, shared_root, "--user", f"{UID}:{UID}", "-e", "USER=", "-e", "LOGNAME=",
        "infer-cpu", "python3", "-c", "import getpass; getpass.getuser()",
    )  # fmt: skip
    assert nameless.returncode != 0
    assert f"uid not found: {UID}" in nameless.stderr


def test_parallel_first_runs_create_no_project_network(
    docker_engine: str, standins: None, shared_root: Path
) -> None:
    """Three `compose run`s of a project that has no network yet, at once: with a network
    they race to create it (duplicates, then "network ... is ambiguous"). The steps see only
    the loopback interface."""
    fresh = Compose(project=f"arcjobs-race-{uuid.uuid4().hex[:8]}")
    code = "import json, os; print(json.dumps(sorted(os.listdir('/sys/class/net'))))"
    argv = fresh.command("run", "--rm", "-T", "--no-deps", "train-cpu", "python3", "-c", code)
    env = fresh.env(ARCJOBS_VERSION=STANDIN, ARCJOBS_DATA_ROOT=str(shared_root))
    try:
        procs = [
            subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
        for out, err, code_ in results:
            assert code_ == 0, err[-2000:]
            assert json.loads(out.strip().splitlines()[-1]) == ["lo"]
        networks = _run(
            ["docker", "network", "ls", "-q", "--filter",
             f"label=com.docker.compose.project={fresh.project}"],
            timeout=60,
        )  # fmt: skip
        assert networks.returncode == 0 and networks.stdout.split() == []
    finally:
        fresh.run("down", "--remove-orphans", "--timeout", "5", timeout=120)


# A step that ignores SIGTERM itself (as a Python parent blocked in subprocess.run is no help)
# and a child that says when SIGTERM reaches it: accelerate's launcher and one of its ranks.
PARENT = """
import subprocess, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = '''
import signal, sys, time
def term(*_):
    open('/data/child-got-term', 'w').close()
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
open('/data/ready', 'w').close()
time.sleep(60)
'''
sys.exit(subprocess.run([sys.executable, '-c', child]).returncode)
"""


def _stop_when_ready(compose: Compose, root: Path, service: str, version: str) -> None:
    """Run PARENT in `service`, send its container SIGTERM once the child is ready, end it."""
    name = f"arcjobs-sig-{uuid.uuid4().hex[:8]}"
    argv = compose.command(
        "run", "--rm", "-T", "--no-deps", "--name", name, service, "python3", "-c", PARENT
    )
    env = compose.env(ARCJOBS_VERSION=version, ARCJOBS_DATA_ROOT=str(root))
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (root / "ready").exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.2)
    assert _run(["docker", "kill", "--signal", "TERM", name], timeout=60).returncode == 0
    time.sleep(3)
    _run(["docker", "rm", "-f", name], timeout=60)
    proc.communicate(timeout=120)


def test_stopping_a_model_step_signals_its_whole_process_group(
    compose: Compose, standins: None, tmp_path: Path
) -> None:
    """`init: true` is tini, which signals only its child unless TINI_KILL_PROCESS_GROUP is
    set: the sandbox service (without it) is the contrast."""
    roots = {}
    for service, version in (("train-cpu", STANDIN), ("sandbox", __version__)):
        root = tmp_path / service
        root.mkdir()
        root.chmod(0o777)
        _stop_when_ready(compose, root, service, version)
        roots[service] = root
    assert (roots["train-cpu"] / "child-got-term").exists()
    assert not (roots["sandbox"] / "child-got-term").exists()


def test_the_cuda_label_of_a_real_image_is_read(base_image: str) -> None:
    tag = f"arcjobs-label-test:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base_image}\nLABEL arcjobs.cuda=cu128\n"
    built = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    try:
        assert dk.image_label(tag, "arcjobs.cuda") == "cu128"
        assert dk.image_label(tag, "arcjobs.other") is None
    finally:
        _run(["docker", "rmi", tag], timeout=60)
    assert dk.image_label(tag, "arcjobs.cuda") is None
