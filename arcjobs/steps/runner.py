"""`arcjobs step KIND --name value ... --out DIR`: run one step and publish its outputs.

This is the program every backend starts, on the host or inside an image. It validates the
parameters against the kind's schema (`arcjobs.step_args`), runs the kind into a private
directory next to DIR, publishes it as DIR in one rename, and then writes `manifest.json`
beside DIR. A step is complete exactly when its manifest says `ok` and carries the expected
cache key (`arcjobs.manifest`), so a kill at any moment leaves the step either complete or
visibly unfinished.

The launcher passes the cache key and image identity through the environment
(`ARCJOBS_CACHE_KEY`, `ARCJOBS_IMAGE`) so that the command line stays what a person would
type by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from arcjobs import atomic
from arcjobs.manifest import MANIFEST
from arcjobs.step_args import parse_params
from arcjobs.steps import get_kind
from arcjobs.steps.base import StepContext


def _scratch_for(step_dir: Path, key: str) -> Path:
    """The scratch directory, wiped when the cache key changed since it was made."""
    scratch = step_dir / "scratch"
    stamp = scratch / ".key"
    if scratch.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    return scratch


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_step(kind_name: str, argv: list[str], out: Path) -> None:
    """Run and publish one step; raises UserError on bad input, re-raises step failures."""
    kind = get_kind(kind_name)
    params = parse_params(kind.params, argv)
    out = Path(out).absolute()
    step_dir = out.parent
    step_dir.mkdir(parents=True, exist_ok=True)
    key = os.environ.get("ARCJOBS_CACHE_KEY", "")
    resources = json.loads(os.environ.get("ARCJOBS_RESOURCES", "{}"))
    signal.signal(signal.SIGTERM, _terminate)
    tmp = step_dir / f".out-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    started = time.time()
    try:
        ctx = StepContext(
            out=tmp, scratch=_scratch_for(step_dir, key), step_dir=step_dir, resources=resources
        )
        kind.run(params, ctx)
        (step_dir / MANIFEST).unlink(missing_ok=True)
        atomic.publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_json(
        step_dir / MANIFEST,
        {
            "status": "ok",
            "key": key,
            "kind": kind_name,
            "params": params.model_dump(mode="json"),
            "image": os.environ.get("ARCJOBS_IMAGE", "host"),
            "command": ["arcjobs", "step", kind_name, *argv, "--out", str(out)],
            "host": socket.gethostname(),
            "started": started,
            "ended": time.time(),
            "exit_code": 0,
            "python": sys.version.split()[0],
            "warnings": ctx.warnings,
        },
    )
