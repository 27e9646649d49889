"""The train kind's rules, checked without training: its parameter validation and the
job-level rule that vLLM cannot serve a DoRA adapter. Jobs are built with the real loader,
so a rule sees exactly what the job language validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcjobs.errors import UserError
from arcjobs.spec import load_job
from arcjobs.step_args import parse_params
from arcjobs.steps.train import Params

pytestmark = pytest.mark.unit


SERVED = "'${learn.out}/adapter'"


def _job(tmp_path: Path, dora: str, merge="false", engine="vllm", adapter=SERVED) -> Path:
    """learn (train) → again (infer, serving learn's adapter)."""
    job = tmp_path / "dora.yaml"
    job.write_text(
        "name: dora\nsteps:\n"
        "  learn:\n    uses: train\n"
        f"    with: {{model: /m, dataset: /d.jsonl, use_dora: {dora}, merge: {merge}}}\n"
        "  again:\n    uses: infer\n    needs: [learn]\n"
        f"    with: {{model: /m, adapter: {adapter}, engine: {engine}, dataset: arc-agi-1/training}}\n"
    )
    return job


@pytest.mark.parametrize("dora", ["true", '"on"', '"t"', '"y"'])
def test_a_dora_adapter_served_by_vllm_is_refused_however_true_is_spelt(tmp_path, dora):
    """Every spelling the schema reads as true is refused, naming the file, line and key
    (a check that re-read the raw text let `"on"` through)."""
    job = _job(tmp_path, dora)
    with pytest.raises(UserError, match=rf"{job}:5: steps.learn.with.use_dora: step 'again'"):
        load_job(job)


@pytest.mark.parametrize(
    ("dora", "merge", "engine", "adapter"),
    [
        ("false", "false", "vllm", SERVED),  # plain LoRA
        ('"on"', "false", "transformers", SERVED),  # transformers serves DoRA
        ('"on"', '"on"', "vllm", "null"),  # merged, and the infer step serves no adapter
    ],
)
def test_dora_passes_where_vllm_does_not_serve_it(tmp_path, dora, merge, engine, adapter):
    job = load_job(_job(tmp_path, dora, merge, engine, adapter))
    assert job.steps["learn"].full_params["use_dora"] is (dora != "false")


def test_a_merged_dora_adapter_cannot_be_served_as_an_adapter(tmp_path):
    job = _job(tmp_path, "true", merge='"on"')
    with pytest.raises(UserError, match=r":5: steps.learn.with.merge: .*writes a merged model"):
        load_job(job)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--adapter", "a", "--method", "full"], "--method: .*needs method lora"),
        (["--merge", "true", "--method", "full"], "--merge: .*method full already saves"),
    ],
)
def test_contradictory_params_are_refused_at_validation(argv, message):
    with pytest.raises(UserError, match=message):
        parse_params(Params, ["--model", "m", "--dataset", "d", *argv])
