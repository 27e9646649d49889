"""`arcjobs step KIND --name value ... --out DIR`: run one step and publish its outputs.

This is the program every backend starts, on the host or inside an image. It validates the
parameters against the kind's schema, runs the kind into a private directory next to DIR,
publishes it as DIR in one rename, and then writes `manifest.json` beside DIR. A step is
complete exactly when its manifest says `ok` and carries the expected cache key, so a kill
at any moment leaves the step either complete or visibly unfinished.

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
import types
import typing
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from arcjobs import atomic
from arcjobs.errors import UserError
from arcjobs.steps import get_kind
from arcjobs.steps.base import StepContext, StepParams

MANIFEST = "manifest.json"


def _is_text_field(annotation: Any) -> bool:
    """True when a field takes text as is (str/Path, possibly optional), so "007" stays "007"."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_text_field(a) for a in args if a is not type(None))
    return annotation in (str, Path)


def parse_params(params_cls: type[StepParams], argv: list[str]) -> StepParams:
    """Turn `--some-name value` pairs into the kind's validated parameter model.

    Values of text fields are taken literally; others are parsed as YAML scalars or flow
    collections (`8`, `1e-4`, `true`, `[q_proj, v_proj]`, `null`), which is also how the
    launcher writes them.
    """
    raw: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if not flag.startswith("--") or i + 1 >= len(argv):
            raise UserError(f"step parameters must come as '--name value' pairs, got {flag!r}")
        name = flag[2:].replace("-", "_")
        field = params_cls.model_fields.get(name)
        if field is None:
            known = ", ".join("--" + f.replace("_", "-") for f in params_cls.model_fields)
            raise UserError(f"unknown parameter {flag}; expected one of: {known}")
        value = argv[i + 1]
        if not _is_text_field(field.annotation) or value == "null":
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise UserError(f"{flag}: cannot parse {value!r}: {e.problem}") from None
        raw[name] = value
        i += 2
    try:
        return params_cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise UserError(f"--{loc.replace('_', '-')}: {err['msg']}") from None


def format_params(params: dict[str, Any]) -> list[str]:
    """The inverse of `parse_params`: `{lora_rank: 32}` → `['--lora-rank', '32']`."""
    argv: list[str] = []
    for name, value in params.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        argv += ["--" + name.replace("_", "-"), text]
    return argv


def read_manifest(step_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((step_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(step_dir: Path, key: str) -> bool:
    """A step is complete when its manifest says ok with this key and its out/ exists."""
    m = read_manifest(step_dir)
    return bool(
        m and m.get("status") == "ok" and m.get("key") == key and (step_dir / "out").is_dir()
    )


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
        },
    )
