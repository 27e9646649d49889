"""Tokenizer loading and the pad-token rules every model step follows.

Why the rules matter: Llama-3.1 tokenizers (BARC's included) ship with pad = eos = `<|eot_id|>`.
A collator that masks padding by token id would then also mask the end-of-turn token, and the
model never learns to stop. Adding a fresh pad token is no fix either: it resizes the embedding
matrix, and every adapter saved afterwards must carry the full embeddings (hundreds of MB, and
vLLM refuses such adapters). So we pick an existing, never-generated token instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arcjobs.errors import UserError

# Llama-3.1 reserves this token exactly for right-padding during fine-tuning.
LLAMA_PAD = "<|finetune_right_pad_id|>"


def choose_pad(tokenizer: Any, stop_ids: set[int] | None = None, where: str = "tokenizer") -> str:
    """Set and return a pad token that no stop token shares, never adding a token.

    Order of preference: the tokenizer's own pad when it is not a stop token; Llama-3.1's
    `<|finetune_right_pad_id|>`; the unknown token (Llama-2 style). `stop_ids` are extra token
    ids the model stops on (e.g. generation_config.eos_token_id) besides the tokenizer's eos.
    Raises UserError naming `where` when none is safe.
    """
    stops = set(stop_ids or ()) | {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    candidates = [tokenizer.pad_token, LLAMA_PAD, tokenizer.unk_token]
    for token in candidates:
        if token is not None and token in vocab and vocab[token] not in stops:
            tokenizer.pad_token = token
            return token
    raise UserError(
        f"{where}: no safe pad token: pad {tokenizer.pad_token!r} is a stop token or missing, "
        f"and neither {LLAMA_PAD} nor an unk token is in the vocabulary; adding one would resize "
        "the embeddings, so set a pad token that is not eos in tokenizer_config.json"
    )


def require_model_dir(path: str | Path) -> Path:
    """A local Hugging Face model directory (config.json inside), or a UserError naming it."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: not a model directory (no config.json); give a local HF model path")
    return p


def load_tokenizer(path: str | Path, stop_ids: set[int] | None = None) -> Any:
    """The tokenizer of a local model directory, with a safe pad token chosen (see `choose_pad`)."""
    from transformers import AutoTokenizer

    p = require_model_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
    if tokenizer.eos_token is None:
        raise UserError(f"{p}: tokenizer has no eos token")
    choose_pad(tokenizer, stop_ids, where=str(p))
    return tokenizer
