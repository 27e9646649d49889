"""The model helpers: tiny model build, pad-token rules, loading. All real code, tiny model, CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arcjobs.errors import UserError
from arcjobs.models.tiny import EOT, PAD, TinySpec, build_tiny
from arcjobs.models.tokenizer import choose_pad, load_tokenizer

pytestmark = pytest.mark.unit
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(out, TinySpec(seed=3))
    return out


def test_tiny_model_loads_with_auto_classes_and_fits_barc_context(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    tok = AutoTokenizer.from_pretrained(tiny)
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.max_position_embeddings >= 8192
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert sum((tiny / f).stat().st_size for f in os.listdir(tiny)) < 20_000_000
    for special in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", EOT, PAD):
        assert len(tok.convert_tokens_to_ids([special])) == 1
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id


def test_chat_template_is_llama31_style(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Black Blue\n"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBlack Blue<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # Grid text is compact: the trained BPE merges colour names into single tokens.
    assert len(tok("Black Blue Red Green", add_special_tokens=False).input_ids) == 4


def test_build_is_byte_identical_for_a_seed_across_processes(tiny, tmp_path):
    """A fresh interpreter (fresh hash seeds) must produce the same bytes."""
    code = (
        "import sys; from pathlib import Path; from arcjobs.models.tiny import TinySpec, build_tiny;"
        "build_tiny(Path(sys.argv[1]), TinySpec(seed=3))"
    )
    again = tmp_path / "again"
    again.mkdir()
    subprocess.run([sys.executable, "-c", code, str(again)], check=True, capture_output=True)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    other = tmp_path / "other"
    other.mkdir()
    build_tiny(other, TinySpec(seed=4))
    assert (other / "model.safetensors").read_bytes() != (tiny / "model.safetensors").read_bytes()


def test_pad_reuses_finetune_right_pad_and_is_never_eos(tiny):
    tok = load_tokenizer(tiny)
    assert tok.pad_token == PAD
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.eos_token == EOT


def test_pad_rules_never_add_a_token(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    size = len(tok)
    # A pad that is a stop token (other than eos) is refused too.
    tok.pad_token = "<|end_of_text|>"
    stop = {tok.convert_tokens_to_ids("<|end_of_text|>")}
    assert choose_pad(tok, stop_ids=stop) == PAD
    assert len(tok) == size


def test_no_safe_pad_is_a_user_error_naming_the_tokenizer(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    tok.pad_token = EOT
    stops = {tok.convert_tokens_to_ids(PAD)}  # pretend the pad token were a stop token
    with pytest.raises(UserError, match="my-model: no safe pad token"):
        choose_pad(tok, stop_ids=stops, where="my-model")
    assert len(tok) == len(AutoTokenizer.from_pretrained(tiny))


def test_load_model_refuses_4bit_on_cpu_and_non_model_dirs(tiny, tmp_path):
    from arcjobs.models.loading import load_model

    with pytest.raises(UserError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="4-bit"):
        load_model(tiny, load_in_4bit=True)
    model = load_model(tiny)
    import torch

    assert next(model.parameters()).dtype == torch.float32


def test_model_tiny_command_publishes_a_directory(tmp_path):
    out = tmp_path / "m"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "arcjobs", "model", "tiny", "--out", str(out), "--seed", "1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
