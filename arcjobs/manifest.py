"""The completion record of a step, `steps/<step>/manifest.json`: the one source of truth
for what is complete.

- `arcjobs step` writes it last, after `out/` was published by rename (`steps/runner`);
- a step is complete exactly when it says `ok` with the expected cache key and `out/` exists;
- the engine, the backends and the report read it through this module only, so it imports
  nothing of arcjobs: whoever needs to know what is done need not know how steps run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def read_manifest(step_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((step_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def warnings(step_dir: Path) -> list[str]:
    """What the step said with `StepContext.warn` while it ran (none in older manifests)."""
    return list((read_manifest(step_dir) or {}).get("warnings", []))


def is_complete(step_dir: Path, key: str) -> bool:
    """A step is complete when its manifest says ok with this key and its out/ exists."""
    m = read_manifest(step_dir)
    return bool(
        m and m.get("status") == "ok" and m.get("key") == key and (step_dir / "out").is_dir()
    )
