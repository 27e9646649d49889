"""Cache keys: a step's identity is what it computes, not what it is called.

key = sha256 of (kind, every parameter including defaults, the keys of the steps it reads
or waits for, the image's identity). References to other steps are replaced by those
steps' keys, so renaming a step or running the same job under another run id keeps the
key, while changing anything upstream changes every key downstream.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from arcjobs.spec.interpolate import render
from arcjobs.spec.model import Step

KEY_VERSION = 1


def cache_key(step: Step, upstream: dict[str, str], image_id: str) -> str:
    def resolve(ref: str) -> Any:
        if ref == "data":
            return "${data}"
        return "${key:" + upstream[ref[: -len(".out")]] + "}"

    payload = {
        "v": KEY_VERSION,
        "kind": step.kind,
        "params": render(step.full_params, resolve),
        "needs": sorted(upstream[n] for n in step.needs),
        "image": image_id,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
