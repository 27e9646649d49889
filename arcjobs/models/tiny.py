"""A tiny Llama-architecture model and tokenizer, built locally in seconds, for CPU runs and tests.

Why: every code path that loads the real BARC model (Llama-3.1-8B) must be exercised on a
laptop and in CI without downloading 16 GB. So the tiny model is an ordinary Hugging Face
directory with the same architecture class, the same special tokens, a Llama-3.1-style chat
template and the same tokenizer quirk (pad = eos = `<|eot_id|>`, as in BARC's tokenizer), so
the pad rules in `arcjobs.models.tokenizer` run against it exactly as against the real one.

The byte-level BPE vocabulary is trained on the spot on the text the model will see: the DSL
source, example programs when the corpus is present, and ARC grids rendered as BARC colour
names. Given the same seed and the same checkout the directory is identical byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

# Llama-3.1's special tokens (same strings; ids differ since our vocabulary is tiny).
BOS = "<|begin_of_text|>"
EOS_TEXT = "<|end_of_text|>"
PAD = "<|finetune_right_pad_id|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOM = "<|eom_id|>"
EOT = "<|eot_id|>"
PYTHON_TAG = "<|python_tag|>"
SPECIAL_TOKENS = [
    BOS,
    EOS_TEXT,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    PAD,
    "<|reserved_special_token_2|>",
    START_HEADER,
    END_HEADER,
    EOM,
    EOT,
    PYTHON_TAG,
]

# The Llama-3.1 layout of a conversation (header, blank line, trimmed content, <|eot_id|>),
# without the tool-calling and date preamble BARC never used.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

# Llama-3's pre-tokenizer pattern. It keeps a run of newlines in one piece whatever follows
# (unlike GPT-2's), so "<|end_header_id|>\n\n" tokenizes the same with or without the
# completion after it, and TRL's prompt/completion boundary falls on a token boundary.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model. Defaults give ~1M parameters (~4 MB) and fit 8k-token prompts."""

    seed: int = 0
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 8192
    corpus_tasks: int = 60
    # The output layer's initial scale, as a multiple of the others' (see `build_tiny`).
    output_scale: float = 10.0


def corpus(spec: TinySpec) -> Iterator[str]:
    """The tokenizer's training text, in a fixed order (so the vocabulary is reproducible).

    The DSL and the example programs (when this checkout has them), then the BARC messages of
    the first `corpus_tasks` ARC-AGI-1 training tasks, built by the same code as real prompts.
    """
    from arcjobs.arc.prompts import ASSISTANT_PREFIX, build_messages
    from arcjobs.arc.tasks import load_dataset
    from arcjobs.sandbox.dsl import DSL_PATH

    if DSL_PATH.is_file():
        yield DSL_PATH.read_text()
    corpus_dir = Path(__file__).resolve().parents[1] / "sandbox" / "corpus"
    for path in sorted(corpus_dir.rglob("*.py")):
        yield path.read_text()
    for task in load_dataset("arc-agi-1/training", limit=spec.corpus_tasks).values():
        for message in build_messages(task):
            yield message["content"]
    yield ASSISTANT_PREFIX + "\n```python\nfrom common import *\nimport numpy as np\n"


def build_tokenizer(spec: TinySpec):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE with Llama-3's pre-tokenizer split and its special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(spec), trainer=trainer)
    # Like Llama-3.1, plain encoding prepends BOS (hence the double-BOS trap BARC.md warns about).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=EOT,  # BARC's tokenizer ships pad = eos; training fixes it (see models.tokenizer)
        model_max_length=spec.max_positions,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny(out: Path, spec: TinySpec) -> None:
    """Write the tiny model directory into `out` (an existing, empty directory)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(spec)
    ids = tokenizer.convert_tokens_to_ids
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        rope_theta=500000.0,
        bos_token_id=ids(BOS),
        eos_token_id=[ids(EOT), ids(EOS_TEXT), ids(EOM)],
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    # With every layer at the usual 0.02 scale, a random model's logits differ by a few tenths
    # of a nat over the whole vocabulary, and a LoRA adapter (which leaves lm_head as it is)
    # can move the argmax but never make a distribution peaked: the tiny model could not
    # sample what it learned. A wider output layer lets its logits span as many nats as a
    # trained model's do.
    with torch.no_grad():
        model.lm_head.weight.mul_(spec.output_scale)
    model.generation_config = GenerationConfig(
        bos_token_id=ids(BOS), eos_token_id=[ids(EOT), ids(EOS_TEXT), ids(EOM)]
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n")
    for path in out.iterdir():  # safetensors writes 0600, unreadable to another container user
        path.chmod(0o644)
