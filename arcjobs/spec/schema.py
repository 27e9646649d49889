"""The shape of a job file, as pydantic models, and readable messages for their errors.

These models check structure and types only; references, kinds and the graph are checked
by `arcjobs.spec.loader` once the structure is known to be sound.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNIT_MB = {"": 1 / 2**20, "B": 1 / 2**20, "K": 1 / 2**10, "M": 1, "G": 2**10, "T": 2**20}


def memory_mb(text: str | int) -> int:
    """'64G', '512M', '1.5GiB', 2048 (MB) → megabytes (binary units, as HTCondor and Docker use)."""
    if isinstance(text, int):
        return text
    m = MEMORY.match(str(text).strip())
    if not m:
        raise ValueError(f"expected a size such as 512M or 64G, got {text!r}")
    unit = (m.group(2) or "M").upper()[0]
    return max(1, int(float(m.group(1)) * _UNIT_MB[unit]))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResourcesSpec(Strict):
    gpus: int = Field(
        0, ge=0, le=16, description="GPUs the step needs; never shared with a concurrent step"
    )
    cpus: int = Field(
        1, ge=1, le=512, description="CPU cores (threads, sandbox workers); clamped to the machine"
    )
    memory: str | int | None = Field(
        None, description="memory such as 512M or 64G (binary units); an int is MB"
    )

    gpu_memory: str | int | None = Field(
        None,
        description="each GPU's nominal memory, e.g. 40G for a 40 GB card or larger (condor: "
        "require_gpus, matching GPUs that report at least 90% of it, in place of the site "
        "config's gpus_minimum_memory; other backends place on the GPUs they have)",
    )
    gpu_capability: float | None = Field(
        None,
        ge=1,
        le=20,
        description="least CUDA compute capability, e.g. 8.0 for bf16 (condor: require_gpus, "
        "in place of the site config's gpus_minimum_capability)",
    )
    requirements: str | None = Field(
        None,
        description="extra HTCondor ClassAd requirements for this step, ANDed with the site "
        "config's (condor only)",
    )

    @field_validator("memory", "gpu_memory")
    @classmethod
    def _memory(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            mb = memory_mb(v)
            if mb > 4 * 2**20:
                raise ValueError(f"{v!r} is more memory than any machine has (max 4T)")
        return v


class StepSpec(Strict):
    uses: str | None = Field(None, description="a step kind (see below); exclusive with `run`")
    run: str | None = Field(
        None, description="a bash command writing its outputs into $OUT; exclusive with `uses`"
    )
    image: Literal["train", "infer", "sandbox"] | None = Field(
        None, description="the image to run in; default: the kind's"
    )
    needs: list[str] = Field(
        default_factory=list,
        description="steps to wait for (references to `${step.out}` add themselves)",
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="gpus, cpus, memory (below)"
    )
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="the kind's parameters (below)"
    )
    matrix: dict[str, list[Any]] | None = Field(
        None, description="axis → values: one branch per combination, used as `${matrix.axis}`"
    )
    retries: int = Field(
        0, ge=0, le=10, description="attempts after a failure before the step counts as failed"
    )
    description: str = Field("", description="free text")

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, v: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for name, values in (v or {}).items():
            if not values:
                raise ValueError(f"matrix axis {name!r} has no values")
            if len({repr(x) for x in values}) != len(values):
                raise ValueError(f"matrix axis {name!r} repeats a value")
        return v


class RoundsSpec(Strict):
    count: int = Field(ge=1, le=100, description="how many rounds (may be a `${param}`)")
    steps: list[str] = Field(min_length=1, description="the steps repeated in every round")


class JobSpec(Strict):
    name: str = Field(pattern=NAME, description="the job's name (runs are named after it)")
    description: str = Field("", description="free text")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="name → default; `--set name=value` overrides (a step's key: `--set step.key=value`)",
    )
    rounds: RoundsSpec | None = Field(None, description="repeat some steps k times (below)")
    steps: dict[str, StepSpec] = Field(min_length=1, description="name → step (below)")


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` (for 'unknown key' messages), walking nested models."""
    for part in loc:
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return []
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            # a dict level such as steps.<name>: its values are the next model
            continue
        ann = field.annotation
        for arg in (ann, *typing.get_args(ann)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
            inner = [
                a for a in typing.get_args(arg) if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            if inner:
                model = inner[0]
                break
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def describe(error: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    """One readable clause for a pydantic error: what was expected and what was found."""
    kind, got, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    if kind == "extra_forbidden":
        allowed = _fields_at(model, tuple(error["loc"][:-1])) if model else []
        tail = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{tail}"
    if kind == "missing":
        return "required key is missing"
    expected = {
        "int_parsing": "an integer",
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_parsing": "a number",
        "float_type": "a number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a string",
        "list_type": "a list",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "path_type": "a path",
        "none_required": "null",
    }.get(kind)
    if expected:
        return f"expected {expected}, got {shown}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {shown}"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"expected a value {bounds[kind]} {limit}, got {shown}"
    if kind == "string_pattern_mismatch":
        return f"expected a name of letters, digits, '_' or '-', got {shown}"
    if kind in ("too_short", "too_long"):
        return f"expected {error['msg'].lower()}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind.startswith("union_") or kind == "union_tag_invalid":
        return f"unexpected value {shown}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {shown}"


def first_error(e: ValidationError) -> dict[str, Any]:
    """Pick the most useful of pydantic's errors: union branches report several at once."""
    errors = e.errors()
    plain = [x for x in errors if not any(isinstance(p, str) and "[" in p for p in x["loc"])]
    return (plain or errors)[0]
