"""The job files in jobs/: every one plans on every backend, the sweep expands as intended,
and the CPU demo runs end to end with the real steps (tiny model, transformers, TRL, sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT, arcjobs, assert_demo_learned

from arcjobs.backends import backend_names
from arcjobs.spec import load_job

JOB_FILES = sorted((ROOT / "jobs").glob("*.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("backend", backend_names())
@pytest.mark.parametrize("job", JOB_FILES, ids=lambda p: p.name)
def test_every_job_plans_on_every_backend(job: Path, backend: str, tmp_path: Path) -> None:
    proc = arcjobs("plan", job, "--backend", backend, "--data-root", tmp_path / "data", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert {s["step"] for s in plan["steps"]} == set(load_job(job).steps)
    assert all(s["action"] == "run" for s in plan["steps"])
    assert not (tmp_path / "data" / "runs").exists()


@pytest.mark.unit
def test_sweep_has_one_chain_per_configuration() -> None:
    job = load_job(ROOT / "jobs/sweep_lora.yaml")
    per_base: dict[str, int] = {}
    for step in job.steps.values():
        per_base[step.base] = per_base.get(step.base, 0) + 1
    assert per_base == {
        "search": 1,
        "execute": 1,
        "select": 1,
        "learn": 12,
        "search_again": 12,
        "execute_again": 12,
        "evaluate": 12,
        "compare": 1,
    }
    branch = "lora_rank=64.learning_rate=0.0002.max_steps=500"
    assert job.steps[f"evaluate.{branch}"].needs == (f"execute_again.{branch}",)
    assert job.steps[f"learn.{branch}"].full_params["lora_rank"] == 64


@pytest.mark.unit
def test_loop_chains_adapters_across_rounds() -> None:
    job = load_job(ROOT / "jobs/ttt_loop.yaml", ["rounds=2"])
    assert [n for n in job.steps if n.startswith("learn")] == ["learn.r1", "learn.r2"]
    assert (
        "adapter" not in job.steps["search.r1"].params
        and "adapter" not in job.steps["learn.r1"].params
    )
    assert job.steps["search.r2"].params["adapter"] == "${learn.r1.out}/adapter"
    assert job.steps["learn.r2"].params["adapter"] == "${learn.r1.out}/adapter"
    assert job.steps["search_final"].params["adapter"] == "${learn.r2.out}/adapter"


@pytest.mark.integration
def test_demo_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    arcjobs(
        "run",
        ROOT / "jobs/demo.yaml",
        "--run-id",
        "demo",
        "--data-root",
        data,
        check=True,
        timeout=900,
    )
    steps = data / "runs/demo/steps"
    state = json.loads((data / "runs/demo/run.json").read_text())
    assert state["status"] == "succeeded" and {i["status"] for i in state["steps"].values()} == {
        "succeeded"
    }

    assert json.loads((steps / "model/out/config.json").read_text())["model_type"] == "llama"
    search = [
        json.loads(line)
        for line in (steps / "search/out/predictions.jsonl").read_text().splitlines()
    ]
    assert len(search) == 4 * 4 and all(p["adapter"] is None for p in search)
    again = [
        json.loads(line)
        for line in (steps / "search_again/out/predictions.jsonl").read_text().splitlines()
    ]
    assert len(again) == 16 and all(p["adapter"].endswith("learn/out/adapter") for p in again)
    assert len((steps / "execute/out/executions.jsonl").read_text().splitlines()) == 16
    assert len((steps / "execute_seed/out/executions.jsonl").read_text().splitlines()) == 4
    dataset = (steps / "select/out/dataset.jsonl").read_text().splitlines()
    assert dataset and all(json.loads(s)["completion"][0]["role"] == "assistant" for s in dataset)
    assert (steps / "learn/out/adapter/adapter_config.json").exists()
    assert list((steps / "learn/out/adapter").glob("*.safetensors"))
    for name in ("metrics.json", "metrics.md", "submission.json"):
        assert (steps / "evaluate/out" / name).exists()
    assert_demo_learned(steps)

    proc = arcjobs("report", "demo", "--data-root", data, check=True)
    index = Path(proc.stdout.strip().splitlines()[-1])
    assert index.name == "index.html" and index.exists()
    html = index.read_text()
    assert "One search-and-learn round with a tiny model on CPU." in html, "the job says what"


@pytest.mark.integration
def test_loop_runs_reduced_on_cpu_and_round_two_uses_round_one_adapter(tmp_path: Path) -> None:
    """jobs/ttt_loop.yaml itself, shrunk with --set: 2 rounds, the tiny model, 2 tasks."""
    model = tmp_path / "tiny"
    arcjobs("model", "tiny", "--out", model, check=True)
    data = tmp_path / "data"
    overrides = [
        f"model={model}",
        "engine=transformers",
        "gpus=0",
        "rounds=2",
        "predictions=2",
        "samples_per_prompt=2",
        "max_new_tokens=24",
        "train_steps=2",
        "global_batch_size=4",
        "max_length=4096",
        "dataset=arc-agi-1/training",
        "tasks=0d3d703e,25ff71a9",
    ]
    sets = [arg for o in overrides for arg in ("--set", o)]
    done = arcjobs(
        "run",
        ROOT / "jobs/ttt_loop.yaml",
        *sets,
        "--run-id",
        "loop",
        "--data-root",
        data,
        check=True,
        timeout=900,
    )
    steps = data / "runs/loop/steps"
    state = json.loads((data / "runs/loop/run.json").read_text())
    assert state["status"] == "succeeded" and len(state["steps"]) == 14
    round_one_adapter = str(steps / "learn.r1/out/adapter")
    again = [
        json.loads(line)
        for line in (steps / "search.r2/out/predictions.jsonl").read_text().splitlines()
    ]
    assert len(again) == 4 and {p["adapter"] for p in again} == {round_one_adapter}
    learn2 = json.loads((steps / "learn.r2/manifest.json").read_text())
    assert learn2["params"]["adapter"] == round_one_adapter
    # A tiny random model writes no valid program: nothing to learn, said by run and status.
    untrained = "no sample to train on (0 skipped): published the starting adapter"
    assert learn2["warnings"] == [untrained]
    for shown in (done.stderr, arcjobs("status", "loop", "--data-root", data, check=True).stdout):
        assert f"warning: step learn.r1: {untrained}" in shown
        assert f"warning: step learn.r2: {untrained}" in shown
    assert (steps / "learn.r2/out/adapter/adapter_config.json").exists()
    assert (steps / "evaluate.r2/out/metrics.json").exists() and (
        steps / "evaluate_final/out/metrics.json"
    ).exists()
    # the whole budget: both rounds' predictions and the last search's, scored as one search
    metrics = {
        name: json.loads((steps / f"{name}/out/metrics.json").read_text())["mean"]["predictions"]
        for name in ("evaluate.r1", "evaluate.r2", "evaluate_final", "evaluate_budget")
    }
    assert metrics["evaluate_budget"] == sum(
        v for k, v in metrics.items() if k != "evaluate_budget"
    )
