"""The infer image as built from Dockerfile.infer: what it carries, who it runs as, that it samples.

Opt-in (marker `images`, ARCJOBS_TEST_IMAGES=1): the build downloads vLLM, torch and the CUDA
libraries (about 10 GB) and takes many minutes, so neither a developer run nor the default CI
run does it. It builds through Compose (its pip cache mounts need BuildKit) from the local
Debian base `arcjobs-base:bookworm` (made by scripts/make-base-image.sh when missing) or from
$ARCJOBS_BASE_IMAGE. The last test needs a GPU as well (marker `gpu`) and runs the real vLLM
engine on the tiny model, with and without an adapter, with the image's default sampling
(temperature 1, top_p 0.95: the sampler FlashInfer would have compiled). Not run where these
tests were written (no registry to build from, no GPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import CACHE_LOOKUP, compose_command

pytestmark = [
    pytest.mark.images,
    pytest.mark.skipif(
        os.environ.get("ARCJOBS_TEST_IMAGES") != "1", reason="set ARCJOBS_TEST_IMAGES=1"
    ),
]

REPO = Path(__file__).resolve().parent.parent
VERSION = "test"  # compose.yaml tags the image arcjobs-infer:$ARCJOBS_VERSION
TAG = f"arcjobs-infer:{VERSION}"
PROJECT = "arcjobs-images-test"
VLLM_VERSION = "0.33.0"


def _run(*cmd: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None or _run("docker", "info", timeout=30).returncode != 0:
        pytest.fail("ARCJOBS_TEST_IMAGES=1 but no Docker engine is reachable", pytrace=False)
    base = os.environ.get("ARCJOBS_BASE_IMAGE")
    if not base:
        made = _run(str(REPO / "scripts" / "make-base-image.sh"), timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]
        base = "arcjobs-base:bookworm"
    build = subprocess.run(
        compose_command(PROJECT, "build", "--build-arg", f"BASE_IMAGE={base}", "infer"),
        env={**os.environ, "ARCJOBS_VERSION": VERSION},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    return TAG


def _in_image(image: str, *cmd: str, gpus: bool = False, volume: Path | None = None):
    args = ["docker", "run", "--rm"]
    if gpus:
        args += ["--gpus", "all"]
    if volume is not None:
        args += ["-v", f"{volume}:/data"]
    return _run(*args, image, *cmd, timeout=1200)


def test_image_imports_vllm_and_the_project_as_non_root(image):
    config = json.loads(_run("docker", "image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["arcjobs-entrypoint"]
    code = (
        "import json, vllm, torch, transformers, peft, arcjobs.steps.infer, arcjobs.inference."
        "engine_vllm; print(json.dumps([vllm.__version__, torch.__version__, transformers."
        "__version__]))"
    )
    done = _in_image(image, "python3", "-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    vllm_v, torch_v, transformers_v = json.loads(done.stdout.strip().splitlines()[-1])
    assert vllm_v == VLLM_VERSION and torch_v.startswith("2.14.0"), (vllm_v, torch_v)
    assert transformers_v.startswith("5."), transformers_v
    usage = _in_image(image, "step", "infer", "--help")
    assert usage.returncode == 0 and "--samples-per-prompt" in usage.stdout, usage.stderr


def test_the_infer_service_runs_as_a_uid_without_a_name(image, tmp_path):
    """Compose runs the image as the launcher's uid, unknown to it: the service's USER /
    LOGNAME give it a name, and vLLM and torch put their caches on the data volume."""
    tmp_path.chmod(0o777)
    env = {**os.environ, "ARCJOBS_VERSION": VERSION, "ARCJOBS_DATA_ROOT": str(tmp_path)}
    code = CACHE_LOOKUP + "import vllm.envs; print(vllm.envs.VLLM_CACHE_ROOT)\n"
    run = ["run", "--rm", "-T", "--no-deps", "--user", "12345:12345", "infer-cpu"]
    done = subprocess.run(
        compose_command(PROJECT, *run, "python3", "-c", code),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    *_, lookup, vllm_cache = done.stdout.strip().splitlines()
    assert json.loads(lookup) == ["arcjobs", "/data/cache/torchinductor", "/data/cache/triton"]
    assert vllm_cache == "/data/cache/vllm"


def test_transformers_engine_samples_on_cpu_inside_the_image(image, tmp_path):
    tmp_path.chmod(0o777)
    script = (
        "set -e; arcjobs step tiny_model --out /data/tiny/out; "
        "ARCJOBS_RESOURCES='{\"gpus\": 0}' arcjobs step infer --model /data/tiny/out "
        "--dataset arc-agi-1/training --limit 1 --n 2 --engine transformers "
        "--max-new-tokens 4 --out /data/infer/out"
    )
    done = _in_image(image, "sh", "-c", script, volume=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len((tmp_path / "infer" / "out" / "predictions.jsonl").read_text().splitlines()) == 2


def test_vllm_engine_samples_on_a_gpu_with_and_without_an_adapter(image, tmp_path):
    """The images tier (one tier per test), on a machine with a GPU only."""
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU on this machine")
    tmp_path.chmod(0o777)
    adapter = (
        "from peft import LoraConfig, get_peft_model; "
        "from transformers import AutoModelForCausalLM; "
        "m = AutoModelForCausalLM.from_pretrained('/data/tiny/out'); "
        "get_peft_model(m, LoraConfig(r=8, target_modules=['q_proj', 'v_proj'])).save_pretrained('/data/lora')"
    )
    infer = (
        "arcjobs step infer --model /data/tiny/out --dataset arc-agi-1/training --limit 2 "
        "--n 4 --samples-per-prompt 2 --engine vllm --max-new-tokens 16 "
        "--gpu-memory-utilization 0.3"
    )
    script = (
        f'set -e; arcjobs step tiny_model --out /data/tiny/out; python3 -c "{adapter}"; '
        f"{infer} --out /data/plain/out; {infer} --adapter /data/lora --out /data/lora-run/out"
    )
    done = _in_image(image, "sh", "-c", script, gpus=True, volume=tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    for run, adapter_path in (("plain", None), ("lora-run", "/data/lora")):
        lines = (tmp_path / run / "out" / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 8
        assert {json.loads(x)["adapter"] for x in lines} == {adapter_path}
        summary = json.loads((tmp_path / run / "out" / "summary.json").read_text())
        assert summary["engine"] == "vllm" and summary["completions"] == 8
