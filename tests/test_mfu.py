"""benchmarks/train_throughput.py's MFU: model FLOPs per token checked by hand, and the GPU
names that must not share a peak."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def throughput(monkeypatch):
    """benchmarks/train_throughput.py as a module (it sets HF_HUB_OFFLINE when imported)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mfu_counts_the_model_flops_of_a_lora_step_by_hand(throughput) -> None:
    """One layer of width 8 (2 heads of 4, 1 KV head), MLP 16, vocabulary 10; one sample of
    3 prompt and 2 completion tokens. Body weights: q, o 8x8 each, k, v 8x4 each, gate, up,
    down 8x16 each = 576. Head: 80. Causal pairs: 5 x 6 / 2 = 15.
    - LoRA: 4 x 576 x 5 tokens + 4 x 80 x 2 completions + 12 x 1 layer x 8 x 15 = 13,600
    - full: 6 x 576 x 5 + 6 x 80 x 2 + 1,440 = 19,680"""
    sizes = dict(
        hidden_size=8,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=16,
        num_hidden_layers=1,
        vocab_size=10,
    )
    assert throughput.flops_per_token(sizes, [(3, 2)], lora=True) == 13_600 / 5
    assert throughput.flops_per_token(sizes, [(3, 2)], lora=False) == 19_680 / 5


def test_the_old_6n_mfu_overstated_an_8b_lora_step_by_about_half(throughput) -> None:
    """6 x all parameters (embeddings and head included, every position, weight gradients of
    a frozen base) against the model FLOPs of a LoRA step on 1,500 + 400-token samples."""
    sizes = throughput.LLAMA_8B
    d, v = sizes["hidden_size"], sizes["vocab_size"]
    body = 32 * (2 * d * d + 2 * d * 1024 + 3 * d * sizes["intermediate_size"])
    all_params = body + 2 * d * v  # untied embeddings and head; norms are negligible
    ratio = 6 * all_params / throughput.flops_per_token(sizes, [(1500, 400)], lora=True)
    assert 1.45 < ratio < 1.75, ratio


def test_h100_and_h200_names_do_not_match_their_slower_parts(throughput) -> None:
    assert throughput.peak_bf16("NVIDIA H100 80GB HBM3") == 989e12
    assert throughput.peak_bf16("NVIDIA H100 PCIe") == 756e12
    assert throughput.peak_bf16("NVIDIA H100 NVL") == 835e12
    assert throughput.peak_bf16("NVIDIA H200") == 989e12
    assert throughput.peak_bf16("NVIDIA H200 NVL") == 835e12
    assert throughput.peak_bf16("NVIDIA GeForce RTX 4090") is None
    assert throughput.peak_bf16(None) is None
