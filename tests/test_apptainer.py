"""`arcjobs images apptainer`: conversion to .sif keyed by image digest, run through the CLI.

Neither Apptainer nor a Docker daemon can run here, so `apptainer` and `docker` are FAKE
executables put first on PATH. The fake `docker` behaves as Docker's containerd image store
does (the default of fresh Docker 29 installs): `image inspect --format {{.Id}} TAG` prints
the image's *manifest* digest, and `save -o FILE TAG` writes a real archive in the OCI layout
that store writes (index.json naming the manifest, manifest.json naming the config blob).
The fake `apptainer build TARGET SOURCE` records its command line and the APPTAINER_*
variables it was given, then writes TARGET. Both record their calls in one file.
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

# name → (config digest hex, manifest digest hex = what `docker image inspect` calls its Id)
IMAGES = {"sandbox": ("5" * 64, "a" * 64), "train": ("7" * 64, "b" * 64)}
DIGEST = {name: "sha256:" + config for name, (config, _) in IMAGES.items()}

FAKE_DOCKER = """#!{python}
import io, json, os, sys, tarfile
images = {images!r}
args = sys.argv[1:]
beside = sorted(os.listdir(os.path.dirname(args[2]))) if args[:1] == ["save"] else []
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "beside": beside}}) + "\\n")
if args[:3] == ["image", "inspect", "--format"] and args[4] in images:
    print("sha256:" + images[args[4]][1])
    sys.exit(0)
if args[:2] == ["save", "-o"] and args[3] in images:
    config, manifest = images[args[3]]
    files = {{
        "index.json": {{"manifests": [{{"digest": "sha256:" + manifest}}]}},
        "manifest.json": [{{"Config": "blobs/sha256/" + config, "RepoTags": [args[3]],
                           "Layers": []}}],
        "blobs/sha256/" + config: {{}},
    }}
    with tarfile.open(args[2], "w") as tar:
        for name, value in files.items():
            data = json.dumps(value).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
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
    tags = {f"arcjobs-{n}:0.1.0": list(ids) for n, ids in IMAGES.items()}
    path.write_text(text.format(python=sys.executable, images=tags))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def tools(tmp_path):
    bin_dir = tmp_path / "bin"
    install(bin_dir, "docker", FAKE_DOCKER)
    install(bin_dir, "apptainer", FAKE_APPTAINER)
    return bin_dir, tmp_path / "calls.jsonl"


def arcjobs(args: list[str], bin_dir: Path, calls: Path, **env: str):
    node_tmp = calls.parent / "node-tmp"  # stands for the node's own $TMPDIR
    node_tmp.mkdir(exist_ok=True)
    full = {**os.environ, "PATH": str(bin_dir), "FAKE_CALLS": str(calls), "TMPDIR": str(node_tmp)}
    full.pop("ARCJOBS_SITE", None)
    return subprocess.run(
        [sys.executable, "-m", "arcjobs", "images", "apptainer", *args],
        capture_output=True,
        text=True,
        env={**full, **env},
        preexec_fn=lambda: os.umask(0o077),  # a private umask must not make the lock private
    )


def calls_of(calls: Path, tool: str = "apptainer") -> list[dict]:
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [c for c in map(json.loads, lines) if Path(c["argv"][0]).name == tool]


def test_converts_each_digest_once_through_a_saved_archive_in_node_local_scratch(tools, tmp_path):
    bin_dir, calls = tools
    cache = tmp_path / "cache"
    args = ["--out", str(cache), "--image", "sandbox", "--image", "train"]
    first = arcjobs(args, bin_dir, calls)
    assert first.returncode == 0, first.stderr
    save_calls = [c for c in calls_of(calls, "docker") if c["argv"][1] == "save"]
    saves = [c["argv"][1:] for c in save_calls]
    assert "sandbox.tar" not in save_calls[1]["beside"]  # each archive goes once converted
    assert [(s[0], s[1], s[3]) for s in saves] == [
        ("save", "-o", "arcjobs-sandbox:0.1.0"),
        ("save", "-o", "arcjobs-train:0.1.0"),
    ]
    made = calls_of(calls)
    # Apptainer converts the saved archive, from a private scratch directory in $TMPDIR.
    assert [c["argv"][3] for c in made] == [f"docker-archive:{s[2]}" for s in saves]
    scratch = Path(saves[0][2]).parent
    assert scratch.parent == tmp_path / "node-tmp" and scratch.name.startswith("arcjobs-apptainer-")
    assert made[0]["env"]["APPTAINER_TMPDIR"] == str(scratch / "tmp")
    assert made[0]["env"]["APPTAINER_CACHEDIR"] == str(scratch / "cache")  # never shared
    assert not scratch.exists()  # removed afterwards
    assert not [p for p in cache.iterdir() if p.name.startswith(".apptainer")]
    # Built under a private name beside the target, then renamed into place.
    sandbox_sif = sif_path(cache, "sandbox", DIGEST["sandbox"])
    assert Path(made[0]["argv"][2]).parent == cache
    assert Path(made[0]["argv"][2]).name.startswith(f".{sandbox_sif.name}.")
    assert sandbox_sif.exists() and lookup(cache, "train").digest == DIGEST["train"]
    assert lookup(cache, "infer") is None
    # Other users of a group's cache can lock its index, whatever the converter's umask.
    assert (cache / ".index.lock").stat().st_mode & 0o777 == 0o664

    again = arcjobs(args, bin_dir, calls)
    assert again.returncode == 0, again.stderr
    assert len(calls_of(calls)) == 2  # nothing converted twice
    assert len([c for c in calls_of(calls, "docker") if c["argv"][1] == "save"]) == 2  # nor saved
    assert f"sandbox: up to date: {sandbox_sif}" in again.stderr


def test_the_daemon_and_an_archive_key_one_image_by_its_config_digest(tools, tmp_path):
    """Under Docker's containerd store `docker image inspect`'s Id is the manifest digest; the
    archive names the config. Both paths must give the one .sif (DIGEST is the config's)."""
    bin_dir, calls = tools
    from_daemon = tmp_path / "a"
    assert (
        arcjobs(["--out", str(from_daemon), "--image", "sandbox"], bin_dir, calls).returncode == 0
    )
    archive = tmp_path / "sandbox.tar"
    subprocess.run(
        [str(bin_dir / "docker"), "save", "-o", str(archive), "arcjobs-sandbox:0.1.0"],
        env={**os.environ, "FAKE_CALLS": str(calls)},
        check=True,
    )
    from_archive = tmp_path / "b"
    out = arcjobs(["--out", str(from_archive), "--archive", f"sandbox={archive}"], bin_dir, calls)
    assert out.returncode == 0, out.stderr
    assert lookup(from_daemon, "sandbox").digest == lookup(from_archive, "sandbox").digest
    assert lookup(from_archive, "sandbox").digest == DIGEST["sandbox"]
    assert sif_path(from_daemon, "sandbox", DIGEST["sandbox"]).exists()


def test_tmpdir_and_cachedir_options_are_passed_to_apptainer(tools, tmp_path):
    bin_dir, calls = tools
    out = arcjobs(
        ["--out", str(tmp_path / "c"), "--image", "sandbox", "--tmpdir", str(tmp_path / "t"),
         "--cachedir", str(tmp_path / "k")],
        bin_dir, calls,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (call,) = calls_of(calls)
    tmpdir = Path(call["env"]["APPTAINER_TMPDIR"])
    assert tmpdir.parent.parent == tmp_path / "t" and tmpdir.name == "tmp"
    assert call["env"]["APPTAINER_CACHEDIR"] == str(tmp_path / "k")


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
    assert calls_of(calls, "docker") == []
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
    assert calls_of(calls) == [] and calls_of(calls, "docker")[-1]["argv"][1] == "image"


def test_a_failed_build_leaves_no_sif_and_no_index_entry(tools, tmp_path):
    bin_dir, calls = tools
    cache = tmp_path / "c"
    out = arcjobs(["--out", str(cache), "--image", "sandbox"], bin_dir, calls, FAKE_FAIL="1")
    assert out.returncode == 2
    assert "apptainer build of docker-archive:" in out.stderr and "failed (exit 255)" in out.stderr
    assert not list(cache.glob("*.sif")) and not list(cache.glob(".*.part"))
    assert lookup(cache, "sandbox") is None


def test_bad_archive_option_is_one_line(tools, tmp_path):
    bin_dir, calls = tools
    out = arcjobs(["--out", str(tmp_path), "--archive", "gpu=x.tar"], bin_dir, calls)
    assert out.returncode == 2
    assert "expected NAME=VALUE with NAME one of" in out.stderr


@pytest.mark.parametrize("name", ["train", "infer", "sandbox"])
def test_definition_files_bootstrap_from_a_docker_save_archive_of_their_image(name):
    """apptainer/*.def: the header Apptainer parses, the archive default, no %test (HTCondor
    would run it before every job), and a documented one-off check whose arcjobs modules
    exist (a rename in the package must not silently break it)."""
    import importlib.util
    import re

    text = (Path(__file__).parents[1] / "apptainer" / f"{name}.def").read_text()
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[:2] == ["Bootstrap: docker-archive", "From: {{ archive }}"]
    assert f"    archive=arcjobs-{name}.tar" in body
    sections = [line for line in body if line.startswith("%")]
    assert sections == ["%arguments", "%labels", "%environment", "%runscript"]
    check = next(line for line in text.splitlines() if f"apptainer exec arcjobs-{name}.sif" in line)
    modules = re.findall(r"\barcjobs(?:\.\w+)+", check)
    assert modules and all(importlib.util.find_spec(m) for m in modules)
    assert "entry point come from the Docker image" not in text
