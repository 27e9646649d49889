"""Loading a causal LM from a local Hugging Face directory, with the dtype the device wants.

bf16 on GPU (what Llama-3.1 was trained in, and what the tensor cores run fastest), fp32 on
CPU (CPU bf16 matmuls are slow and lose precision in the tiny-model tests). 4-bit nf4 with
double quantisation (QLoRA) is GPU only: bitsandbytes has no CPU training kernels, so we refuse
it up front instead of failing deep inside a forward pass.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError
from arcjobs.models.tokenizer import require_model_dir

FLASH_ATTENTION = "flash_attention_2"


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def require_cuda(gpus: int) -> None:
    """Refuse, in one line, a step granted GPUs where CUDA is unusable: it would otherwise run
    on the CPU without a word (an 8B model trains there for days), e.g. when the driver is
    too old for the image's CUDA (13.0 needs NVIDIA driver >= 580)."""
    if gpus > 0 and not has_cuda():
        raise UserError(
            f"resources.gpus: {gpus} GPU(s) granted but CUDA is unusable here "
            f"({_cuda_problem()}); check `nvidia-smi`, or run the step with gpus: 0"
        )


def _cuda_problem() -> str:
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build"
    try:
        torch.cuda.init()  # raises with the driver's own reason, e.g. "driver too old"
    except Exception as e:  # whatever it is, its first line says why
        return str(e).strip().splitlines()[0][:300]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "no CUDA device" + (
        f" in CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    )


def varlen_attention(attn: str) -> bool:
    """Whether `attn` runs a flattened (padding-free or packed) batch as separate sequences.

    The flash-attention kernels do, from the position ids. Any other implementation sees one
    long row and gets a causal mask over all of it: quadratic in the batch's total tokens
    (32k tokens: 1G mask elements), rebuilt at every step."""
    return "flash" in attn


def pick_attention(requested: str | None) -> str:
    """The attention implementation: the requested one, else flash-attention 2 when usable, else SDPA.

    Flash-attention matters beyond speed: it is the one implementation whose kernels run
    padding-free (flattened) batches without building a quadratic block mask.
    """
    if requested:
        return requested
    if has_cuda() and importlib.util.find_spec("flash_attn") is not None:
        return FLASH_ATTENTION
    return "sdpa"


def load_model(
    path: str | Path,
    *,
    load_in_4bit: bool = False,
    attn_implementation: str | None = None,
    dtype: str | None = None,
    device_map: Any = None,
) -> Any:
    """AutoModelForCausalLM from a local directory; `dtype` None means bf16 on GPU, fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    p = require_model_dir(path)
    gpu = has_cuda()
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if gpu else torch.float32)
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "attn_implementation": pick_attention(attn_implementation),
        "local_files_only": True,
    }
    if load_in_4bit:
        if not gpu:
            raise UserError("load_in_4bit: 4-bit (bitsandbytes) needs a CUDA GPU; none is visible")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("load_in_4bit: bitsandbytes is not installed (the train-gpu extra)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_storage=torch_dtype,
        )
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForCausalLM.from_pretrained(p, **kwargs)
    except (OSError, ValueError) as e:
        raise UserError(f"{p}: cannot load model: {str(e).splitlines()[0]}") from None
