"""The parameters that name files: made absolute when the job loads, checked before a run.

A kind marks them in its schema (`model: ModelDir`, `adapter: InputPath | None`, ...), so the
launcher knows which values are paths without knowing the kind:
- relative paths, in the job file and in `--set` alike, are relative to the directory the
  launcher runs in (as `--data-root`'s default `./data` is), made absolute at load: the cache
  key and every backend then see one path, whatever directory a step runs in;
- a path under the data root becomes `${data}/...` once the run's data root is known, so a
  container sees it at its own mount (`anchor`) and the key does not depend on where the data
  root lies;
- before a run starts, what a step would fail on at once is found here (`problems`): a path
  that is not there, a model directory without config.json, a task id the dataset lacks
  (read as plain JSON: no numpy in the launcher), a path a container cannot see.

Light at module level (pydantic and the standard library), like every step schema.
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel

from arcjobs.arc.sources import BUILTIN, read_source, select_ids
from arcjobs.errors import UserError

DATA = "${data}"


@dataclass(frozen=True)
class Input:
    """Marks a parameter naming something a step reads (or, `place`, a file it keeps).

    what: `path` (a file or directory that must exist), `model` (a Hugging Face model
    directory), `dataset` (a built-in dataset name or a path), `place` (made absolute only:
    the step creates it, e.g. a cache).
    """

    what: Literal["path", "model", "dataset", "place"]


InputPath = Annotated[str, Input("path")]
ModelDir = Annotated[str, Input("model")]
DatasetSource = Annotated[str, Input("dataset")]
Place = Annotated[str, Input("place")]


def input_fields(params: type[BaseModel]) -> dict[str, Input]:
    """The marked fields of a kind's schema, also inside `X | None` and lists."""
    found = {}
    for name, field in params.model_fields.items():
        marker = _marker(field.metadata) or _marker_in(field.annotation)
        if marker is not None:
            found[name] = marker
    return found


def absolute(params: type[BaseModel], values: dict[str, Any], base: Path) -> dict[str, Any]:
    """`values` with every relative path of a marked field made absolute against `base`.

    Left alone: references (`${search.out}`, `${data}/...`), built-in dataset names."""

    def fix(marker: Input, text: str) -> str:
        if not text or "${" in text or os.path.isabs(text) or text.startswith("["):
            return text
        if marker.what == "dataset" and text in BUILTIN:
            return text
        return os.path.normpath(os.path.join(base, text))

    return _map(params, values, fix)


def anchor(params: type[BaseModel], values: dict[str, Any], data_root: Path) -> dict[str, Any]:
    """`values` with absolute paths under `data_root` written as `${data}/...`."""
    root = os.path.abspath(data_root)

    def fix(_marker: Input, text: str) -> str:
        if not os.path.isabs(text):
            return text
        rel = os.path.relpath(os.path.normpath(text), root)
        if rel == ".":
            return DATA
        return text if _escapes(rel) else f"{DATA}/{rel}"

    return _map(params, values, fix)


def problems(
    params: type[BaseModel], values: dict[str, Any], data_root: Path, confined: str | None
) -> list[tuple[str, str]]:
    """(key, one-line message) for each input of a step that it would refuse at once.

    values: the step's validated parameters (`${data}` and `${step.out}` references kept);
    another step's output is made by the run and not checked. confined: the backend's name
    where steps see only the data root (a container), else None."""
    found: list[tuple[str, str]] = []
    dataset: str | None = None
    for key, marker, text in _inputs(params, values):
        if marker.what == "place":
            continue
        if marker.what == "dataset" and text in BUILTIN:
            dataset = text
            continue
        path = _on_host(text, data_root)
        if path is None:
            continue
        if confined and not _under(path, data_root):
            found.append((key, _outside(path, data_root, confined)))
            continue
        why = _missing(marker, path)
        if why is not None:
            found.append((key, why))
        elif marker.what == "dataset":
            dataset = str(path)
    if dataset is not None and values.get("task_ids") is not None:
        try:
            select_ids(_task_ids(dataset), dataset, list(values["task_ids"]), None)
        except UserError as e:
            found.append(("task_ids", str(e)))
    return found


def _outside(path: Path, data_root: Path, backend: str) -> str:
    return (
        f"{path} is outside the data root {data_root}, the only host directory a step on the "
        f"{backend} backend sees; move it under the data root (it is ${{data}}/... there)"
    )


# --- walking the marked values --------------------------------------------------------------


def _marker(metadata: Any) -> Input | None:
    return next((m for m in metadata or () if isinstance(m, Input)), None)


def _marker_in(annotation: Any) -> Input | None:
    """The marker of `Annotated[..., Input]` anywhere in a type (`X | None`, `list[X]`)."""
    if typing.get_origin(annotation) is Annotated:
        return _marker(annotation.__metadata__) or _marker_in(typing.get_args(annotation)[0])
    return next((m for a in typing.get_args(annotation) if (m := _marker_in(a)) is not None), None)


def _map(
    params: type[BaseModel], values: dict[str, Any], fix: Callable[[Input, str], str]
) -> dict[str, Any]:
    fields = input_fields(params)

    def walk(marker: Input, value: Any) -> Any:
        if isinstance(value, str):
            return fix(marker, value)
        if isinstance(value, list):
            return [walk(marker, v) for v in value]
        return value

    return {k: walk(fields[k], v) if k in fields else v for k, v in values.items()}


def _inputs(params: type[BaseModel], values: dict[str, Any]) -> list[tuple[str, Input, str]]:
    out: list[tuple[str, Input, str]] = []
    for key, marker in input_fields(params).items():
        value = values.get(key)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and text:
                out.append((key, marker, text))
    return out


def _on_host(text: str, data_root: Path) -> Path | None:
    """The path as the launcher sees it; None for another step's output."""
    if text == DATA or text.startswith(DATA + "/"):
        return Path(os.path.abspath(data_root)) / text[len(DATA) + 1 :]
    return None if "${" in text else Path(text)


def _under(path: Path, root: Path) -> bool:
    return not _escapes(os.path.relpath(os.path.abspath(path), os.path.abspath(root)))


def _escapes(rel: str) -> bool:
    """Whether a relative path leads out of its start (`..`, `../x`)."""
    return rel == ".." or rel.startswith("../")


def _missing(marker: Input, path: Path) -> str | None:
    """The step's own message for an input it cannot read, or None."""
    try:
        if marker.what == "model":
            from arcjobs.models.tokenizer import require_model_dir  # light: no transformers

            require_model_dir(path)
        elif marker.what == "dataset":
            _task_ids(str(path))
        elif not path.exists():
            return f"{path}: no such file or directory"
    except UserError as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=8)
def _task_ids(source: str) -> frozenset[str]:
    """A dataset's task ids, read once per launcher (several steps share one dataset)."""
    return frozenset(read_source(source))
