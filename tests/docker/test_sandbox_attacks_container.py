"""The attacks of `sandbox_attacks` inside the sandbox image, as users run it: the README's
`docker run` with its hardening and the compose service, each as uid 1000 (a user's own
uid, the normal case) and as root; every run judged from outside the container.

Inside the image the worker cannot switch uids or make a network namespace, so the kernel
layers are what stands between programs and /data, where the answers, the cache and its
secret lie; these runs show that they stand. The README's command must also work for root.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import sandbox_attacks as attacks

pytestmark = pytest.mark.docker

# the README's `docker run` hardening, word for word but the user
README_HARDENING = [
    "--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--pids-limit", "512", "--memory", "8g",
]  # fmt: skip
PLACE = attacks.Place("/data")
SETTINGS = [("docker run", 1000), ("docker run", 0), ("compose", 1000), ("compose", 0)]


def prepare(path: Path, uid: int) -> None:
    """The data root, owned by the uid the container runs as."""
    attacks.write_inputs(path, PLACE)
    for p in (path, *path.rglob("*")):
        os.chown(p, uid, uid)


def in_container(how: str, uid: int, path: Path, image: str, compose, cmd: list[str]):
    env = {attacks.ATTACK_ENV: "hunter2"}
    if how == "docker run":
        secret = ["-e", f"{attacks.ATTACK_ENV}=hunter2"]
        return subprocess.run(
            ["docker", "run", "--rm", *README_HARDENING, "--user", f"{uid}:{uid}", *secret,
             "-v", f"{path}:/data", image, *cmd],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    return compose.run(
        "run", "--rm", "-T", "-e", attacks.ATTACK_ENV, "sandbox", *cmd,
        timeout=600, ARCJOBS_DATA_ROOT=str(path), ARCJOBS_UID=str(uid), ARCJOBS_GID=str(uid),
        **env,
    )  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the data root to uid 0/1000")
@pytest.mark.parametrize(("how", "uid"), SETTINGS, ids=[f"{h}-uid{u}" for h, u in SETTINGS])
def test_attacks_are_contained_in_the_image(how, uid, sandbox_image, compose, tmp_path) -> None:
    path = tmp_path / "data"
    path.mkdir()
    prepare(path, uid)
    problems = []
    for out in ("first", "second"):
        started = time.monotonic()
        done = in_container(how, uid, path, sandbox_image, compose, attacks.command(PLACE, out))
        assert done.returncode == 0, done.stderr[-3000:]
        problems += attacks.judge(path, PLACE, out, time.monotonic() - started)
    assert problems == []
    assert attacks.records(path, "first") == attacks.records(path, "second")
    assert attacks.summary(path, "second")["executed"] == 0
    isolation = attacks.summary(path, "first")["isolation"]
    assert isolation["container"] is True and isolation["missing"] == []
    assert isolation["uid"] == uid  # the worker cannot switch uids here: no CAP_SETUID


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the data root to uid 0/1000")
@pytest.mark.parametrize(("how", "uid"), SETTINGS, ids=[f"{h}-uid{u}" for h, u in SETTINGS])
def test_sandbox_check_finds_every_kernel_layer_in_the_image(
    how, uid, sandbox_image, compose, tmp_path
) -> None:
    path = tmp_path / "data"
    path.mkdir()
    os.chown(path, uid, uid)
    done = in_container(
        how, uid, path, sandbox_image, compose, ["arcjobs", "sandbox", "check", "--json"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["missing"] == [] and report["container"] is True
    assert report["landlock"] is report["seccomp"] is report["no_capabilities"] is True
