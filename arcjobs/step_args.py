"""The `arcjobs step KIND --name value ...` command line, both ways.

- `format_params`: how every backend writes a step's parameters (launcher side);
- `parse_params`: how `arcjobs step` reads them back into the kind's model (step side).

They are inverses, kept together so that neither side changes alone; this module imports
nothing of arcjobs but its errors, so backends need not import the steps package.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from arcjobs.errors import UserError

ParamsT = TypeVar("ParamsT", bound=BaseModel)


def _is_text_field(annotation: Any) -> bool:
    """True when a field takes text as is (str/Path, possibly optional), so "007" stays "007"."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_text_field(a) for a in args if a is not type(None))
    return annotation in (str, Path)


def parse_params(params_cls: type[ParamsT], argv: list[str]) -> ParamsT:
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
