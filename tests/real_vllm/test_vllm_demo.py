"""jobs/demo.yaml with vLLM sampling, run as the README says: the launcher and the trainer
in .venv, the infer steps in this environment (ARCJOBS_PYTHON_INFER), fixed seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, arcjobs, assert_demo_learned

from arcjobs.step_args import format_params

pytestmark = pytest.mark.vllm


def test_the_demo_learns_with_vllm_sampling_and_a_seed_samples_the_same_again(
    tmp_path: Path, train_python: str
) -> None:
    data = tmp_path / "data"
    sets = ["--set", "search.engine=vllm", "--set", "search_again.engine=vllm"]
    proc = subprocess.run(
        [train_python, "-m", "arcjobs", "run", ROOT / "jobs/demo.yaml", *sets]
        + ["--run-id", "demo", "--data-root", data],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "ARCJOBS_PYTHON_INFER": sys.executable},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = data / "runs/demo/steps"
    for step in ("search", "search_again"):
        assert json.loads((steps / step / "out/summary.json").read_text())["engine"] == "vllm"
    assert_demo_learned(steps)

    # The first search again, by hand, with the parameters its manifest recorded.
    params = json.loads((steps / "search/manifest.json").read_text())["params"]
    again = tmp_path / "again" / "out"
    proc = arcjobs(
        "step", "infer", *format_params(params), "--out", again,
        env={"ARCJOBS_RESOURCES": json.dumps({"gpus": 0, "cpus": 2})}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = (steps / "search/out/predictions.jsonl").read_bytes()
    assert (again / "predictions.jsonl").read_bytes() == first, "same seed, same samples"
