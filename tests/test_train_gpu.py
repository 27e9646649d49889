"""The GPU-only paths of the train step on the tiny model: bf16, fused AdamW, Liger, 4-bit.

Skipped without a CUDA GPU (none where this was written: these ran nowhere yet).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_train import write_dataset

from arcjobs.steps.train import Params, train

pytestmark = pytest.mark.gpu
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from arcjobs.models.tiny import TinySpec, build_tiny

    out = tmp_path_factory.mktemp("tiny")
    build_tiny(out, TinySpec(seed=0))
    return out


@pytest.mark.parametrize("four_bit", [False, True], ids=["bf16", "qlora"])
def test_gpu_defaults_train_and_save_an_adapter(tiny, tmp_path, four_bit):
    import importlib.util

    if four_bit and importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes not installed")
    data = write_dataset(tmp_path / "dataset.jsonl", n=4)
    out = tmp_path / "out"
    out.mkdir()
    params = Params(
        model=str(tiny),
        dataset=str(data),
        max_steps=2,
        lora_rank=8,
        global_batch_size=4,
        per_device_batch_size=2,
        load_in_4bit=four_bit,
        report_to=[],
    )
    train(params, out, tmp_path / "scratch")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    assert metrics["config"]["bf16"] is True
    assert metrics["config"]["optimizer"] == "adamw_torch_fused"
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    assert metrics["config"]["liger"] is has_liger
    assert metrics["peak_memory_bytes"] > 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
