"""Model and tokenizer helpers for the steps that run models (train, infer).

- `tokenizer`: loading a tokenizer and choosing a safe pad token without adding one.
- `loading`: loading a causal LM from a local Hugging Face directory (dtype, 4-bit, attention).
- `tiny`: building a tiny random Llama + byte-level BPE tokenizer locally, for CPU runs and tests.

Importing this package is light; torch/transformers are imported by the submodules that need them.
"""
