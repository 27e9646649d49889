"""Train→sample parity on both engines, with the real steps end to end (job: recite.yaml).

The tiny model is trained with the train step (in the trainer's environment) on a relabel
step's output until it has memorised it: four tasks' corpus programs, three of them also in
two augmented frames, ten samples. The infer step then samples those training prompts
greedily on each engine. Reciting the trained completions exactly means that prompt
rendering, chat template, BOS, the loss mask's boundary, EOS and adapter loading (vLLM's LoRA
with rsLoRA scaling, rank 16) all agree between training and that sampler.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import JOBS, arcjobs

pytestmark = pytest.mark.vllm

ENGINES = ("transformers", "vllm")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def steps(tmp_path_factory, train_python) -> Path:
    data = tmp_path_factory.mktemp("recite")
    env = {"ARCJOBS_PYTHON_TRAIN": train_python}
    proc = arcjobs(
        "run", JOBS / "recite.yaml", "--data-root", data, "--run-id", "r", env=env, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return data / "runs" / "r" / "steps"


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_recites_the_trained_completions(steps, engine) -> None:
    trained = {s["sample_id"]: s for s in _lines(steps / "select/out/dataset.jsonl")}
    lines = _lines(steps / f"recite.sampler={engine}/out/predictions.jsonl")
    assert sorted(x["trained_sample_id"] for x in lines) == sorted(trained)
    augmented = [s for s in trained.values() if s["source"] == "relabelled"]
    assert len(trained) >= 8 and augmented, "several tasks, some in augmented frames"
    exact = [
        x["text"] == trained[x["trained_sample_id"]]["completion"][0]["content"] for x in lines
    ]
    assert sum(exact) >= 0.9 * len(exact), f"{engine}: {sum(exact)}/{len(exact)} recited"
    assert all(x["finish_reason"] == "stop" for x, ok in zip(lines, exact, strict=True) if ok)


def test_the_engines_write_the_same_greedy_text(steps) -> None:
    """Both engines run float32 here; they differ only in kernels (vLLM's CPU attention and
    LoRA, against PyTorch's SDPA and PEFT), whose results differ in the last bits. A greedy
    path can then fork only where two logits tie that closely. A memorised model has no such
    ties: every recitation must be the same. The untrained model's logits are random, so a
    near tie somewhere in 64 tokens is possible: 12 of its 16 completions must agree (all of
    them did when this was written)."""
    for step, need in (("recite.sampler", 1.0), ("base.engine", 0.75)):
        t, v = (_lines(steps / f"{step}={e}/out/predictions.jsonl") for e in ENGINES)
        assert [x["sample_id"] for x in t] == [x["sample_id"] for x in v]
        same = sum(a["text"] == b["text"] for a, b in zip(t, v, strict=True))
        assert same >= need * len(t), f"{step}: {same}/{len(t)} the same"


def test_vllm_writes_the_transformers_engines_schema(steps) -> None:
    t, v = (_lines(steps / f"base.engine={e}/out/predictions.jsonl") for e in ENGINES)
    assert len(t) == len(v) == 16
    for a, b in zip(t, v, strict=True):
        assert a.keys() == b.keys()
        assert {k: type(x) for k, x in a.items()} == {k: type(x) for k, x in b.items()}
        same = ("task_id", "sample_id", "test_index", "augmentation", "prompt_tokens", "model")
        assert {k: a[k] for k in same} == {k: b[k] for k in same}
    summaries = [
        json.loads((steps / f"base.engine={e}/out/summary.json").read_text()) for e in ENGINES
    ]
    assert summaries[0].keys() == summaries[1].keys()
    assert [s["engine"] for s in summaries] == list(ENGINES)
