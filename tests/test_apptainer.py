"""`arcjobs images apptainer`: conversion to .sif keyed by image digest, run through the CLI.

Neither Apptainer nor a Docker daemon can run here, so `apptainer` and `docker` are FAKE
executables put first on PATH: `docker image inspect --format {{.Id}} TAG` prints a fixed
digest for known tags, and `apptainer build TARGET SOURCE` records its command line and the
APPTAINER_* variables it was given, then writes TARGET. The `docker save` archive is a real
tar in Docker's archive layout (manifest.json naming the config blob).
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from arcjobs.images.apptainer import archive_digest, lookup, sif_path

pytestmark = pytest.mark.unit

DIGEST = {"sandbox": "sha256:" + "5" * 64, "train": "sha256:" + "7" * 64}

FAKE_DOCKER = """#!{python}
import sys
digests = {digests!r}
if sys.argv[1:4] == ["image", "inspect", "--format"] and sys.argv[5] in digests:
    print(digests[sys.argv[5]])
    sys.exit(0)
print("Error: No such image: " + sys.argv[-1], file=sys.stderr)
sys.exit(1)
"""

FAKE_APPTAINER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "env": {{k: v for k, v in os.environ.items()
                                                   if k.startswith("APPTAINER_")}}}}) + "\\n")
if os.environ.get("FAKE_FAIL"):
    print("FATAL: While performing build: conveyor failed", file=sys.stderr)
    sys.exit(255)
with open(sys.argv[2], "w") as f:
    f.write("SIF " + sys.argv[3])
"""


def install(bin_dir: Path, name: str, text: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    tags = {f"arcjobs-{n}:0.1.0": d for n, d in DIGEST.items()}
    path.write_text(text.format(python=sys.executable, digests=tags))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def tools(tmp_path):
    bin_dir = tmp_path / "bin"
    install(bin_dir, "docker", FAKE_DOCKER)
    install(bin_dir, "apptainer", FAKE_APPTAINER)
    return bin_dir, tmp_path / "calls.jsonl"


def arcjobs(args: list[str], bin_dir: Path, calls: Path, **env: str):
    full = {**os.environ, "PATH": str(bin_dir), "FAKE_CALLS": str(calls), **env}
    full.pop("ARCJOBS_SITE", None)
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", "images", "apptainer", *args],
        capture_output=True,
        text=True,
        env=full,
    )


def calls_of(calls: Path) -> list[dict]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_converts_each_digest_once_with_explicit_apptainer_dirs(tools, tmp_path):
    bin_dir, calls = tools
    cache = tmp_path / "cache"
    args = ["--out", str(cache), "--image", "sandbox", "--image", "train"]
    first = arcjobs(args, bin_dir, calls)
    assert first.returncode == 0, first.stderr
    made = calls_of(calls)
    assert [c["argv"][1:2] + c["argv"][3:] for c in made] == [
        ["build", "docker-daemon:arcjobs-sandbox:0.1.0"],
        ["build", "docker-daemon:arcjobs-train:0.1.0"],
    ]
    sandbox_sif = sif_path(cache, "sandbox", DIGEST["sandbox"])
    # Built under a private name beside the target, then renamed into place.
    assert Path(made[0]["argv"][2]).parent == cache
    assert Path(made[0]["argv"][2]).name.startswith(f".{sandbox_sif.name}.")
    assert made[0]["env"]["APPTAINER_TMPDIR"] == str(cache / ".apptainer-tmp")
    assert made[0]["env"]["APPTAINER_CACHEDIR"] == str(cache / ".apptainer-cache")
    assert sandbox_sif.read_text() == "SIF docker-daemon:arcjobs-sandbox:0.1.0"
    assert lookup(cache, "train").digest == DIGEST["train"]
    assert lookup(cache, "infer") is None

    again = arcjobs(args, bin_dir, calls)
    assert again.returncode == 0, again.stderr
    assert len(calls_of(calls)) == 2  # nothing converted twice
    assert f"sandbox: up to date: {sandbox_sif}" in again.stderr


def test_tmpdir_and_cachedir_options_are_passed_to_apptainer(tools, tmp_path):
    bin_dir, calls = tools
    out = arcjobs(
        ["--out", str(tmp_path / "c"), "--image", "sandbox", "--tmpdir", str(tmp_path / "t"),
         "--cachedir", str(tmp_path / "k")],
        bin_dir, calls,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (call,) = calls_of(calls)
    assert call["env"] == {
        "APPTAINER_TMPDIR": str(tmp_path / "t"),
        "APPTAINER_CACHEDIR": str(tmp_path / "k"),
    }


def docker_save(path: Path, config_hex: str, oci: bool) -> None:
    """A minimal `docker save` archive: manifest.json naming the config blob."""
    config = f"blobs/sha256/{config_hex}" if oci else f"{config_hex}.json"
    manifest = [{"Config": config, "RepoTags": ["arcjobs-sandbox:0.1.0"], "Layers": []}]
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", json.dumps(manifest).encode()), (config, b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("oci", [False, True])
def test_archive_digest_is_the_config_blob_hash(tmp_path, oci):
    archive = tmp_path / "sandbox.tar"
    docker_save(archive, "e" * 64, oci)
    assert archive_digest(archive) == "sha256:" + "e" * 64


def test_converts_from_a_docker_save_archive_without_docker(tools, tmp_path):
    bin_dir, calls = tools
    (bin_dir / "docker").unlink()
    archive = tmp_path / "sandbox.tar"
    docker_save(archive, "e" * 64, oci=True)
    cache = tmp_path / "cache"
    out = arcjobs(["--out", str(cache), "--archive", f"sandbox={archive}"], bin_dir, calls)
    assert out.returncode == 0, out.stderr
    (call,) = calls_of(calls)
    assert call["argv"][3] == f"docker-archive:{archive}"
    assert lookup(cache, "sandbox").path == sif_path(cache, "sandbox", "sha256:" + "e" * 64)


def test_missing_apptainer_is_one_clear_line(tools, tmp_path):
    bin_dir, calls = tools
    (bin_dir / "apptainer").unlink()
    out = arcjobs(["--out", str(tmp_path / "c"), "--image", "sandbox"], bin_dir, calls)
    assert out.returncode == 2
    assert out.stderr.startswith("error: apptainer not found on PATH; install Apptainer")
    assert out.stderr.count("\n") == 1


def test_missing_docker_is_one_clear_line_pointing_at_archives(tools, tmp_path):
    bin_dir, calls = tools
    (bin_dir / "docker").unlink()
    out = arcjobs(["--out", str(tmp_path / "c"), "--image", "train"], bin_dir, calls)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "docker not found on PATH" in out.stderr and "--archive" in out.stderr


def test_an_unbuilt_image_is_refused_before_any_conversion(tools, tmp_path):
    bin_dir, calls = tools
    out = arcjobs(["--out", str(tmp_path / "c")], bin_dir, calls)  # infer is not built
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "image arcjobs-infer:0.1.0 is not in the local Docker daemon" in out.stderr
    assert calls_of(calls) == []


def test_a_failed_build_leaves_no_sif_and_no_index_entry(tools, tmp_path):
    bin_dir, calls = tools
    cache = tmp_path / "c"
    out = arcjobs(["--out", str(cache), "--image", "sandbox"], bin_dir, calls, FAKE_FAIL="1")
    assert out.returncode == 2
    assert "apptainer build of docker-daemon:arcjobs-sandbox:0.1.0 failed (exit 255)" in out.stderr
    assert not list(cache.glob("*.sif")) and not list(cache.glob(".*.part"))
    assert lookup(cache, "sandbox") is None


def test_bad_archive_option_is_one_line(tools, tmp_path):
    bin_dir, calls = tools
    out = arcjobs(["--out", str(tmp_path), "--archive", "gpu=x.tar"], bin_dir, calls)
    assert out.returncode == 2
    assert "expected NAME=VALUE with NAME one of" in out.stderr


@pytest.mark.parametrize("name", ["train", "infer", "sandbox"])
def test_definition_files_bootstrap_from_a_docker_save_archive_of_their_image(name):
    """apptainer/*.def: the header Apptainer parses, the archive default, and a %test whose
    arcjobs modules exist (a rename in the package must not silently break the self-test)."""
    import importlib.util
    import re

    text = (Path(__file__).parents[1] / "apptainer" / f"{name}.def").read_text()
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[:2] == ["Bootstrap: docker-archive", "From: {{ archive }}"]
    assert f"    archive=arcjobs-{name}.tar" in body
    sections = [line for line in body if line.startswith("%")]
    assert sections == ["%arguments", "%labels", "%environment", "%runscript", "%test"]
    test = text.rsplit("\n%test", 1)[1]
    modules = re.findall(r"\barcjobs(?:\.\w+)+", test)
    assert modules and all(importlib.util.find_spec(m) for m in modules)
