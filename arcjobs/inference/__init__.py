"""Sampling programs from a model: the machinery behind the `infer` step.

One concern per module:
- `requests`: the prompt plan (which test input, augmentation and shuffle each prompt gets,
  all seeded) and its token ids, with the BARC assistant prefix pre-filled.
- `engine_transformers`: batched `generate` with transformers (+ PEFT), for CPUs, the tiny
  model, tests and machines without vLLM.
- `engine_vllm`: one vLLM engine per GPU group, every prompt in one `generate` call, LoRA
  through `LoRARequest`; only importable where vLLM is installed (the infer image).
- `records`: turning completions into predictions.jsonl lines and summary.json.

Importing this package is light: torch, transformers and vLLM are imported by the engines.
"""
