"""A relabel step's training samples (`dataset.jsonl`), read and checked line by line.

The train step fine-tunes on them; the infer step can also sample on their prompts (its
`prompts` option) to show what training taught. Both read them here, so a malformed line is
refused alike, naming the file and line, before a model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError

DATASET_FILE = "dataset.jsonl"


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Every sample of the file (or of `dataset.jsonl` in a step's out/), whole.

    `prompt` and `completion` must be lists of {role, content} messages; the other keys
    (task_id, sample_id, source) are kept as they are.
    """
    p = Path(path)
    if p.is_dir():
        p = p / DATASET_FILE
    if not p.is_file():
        raise UserError(f"{p}: dataset not found")
    rows = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise UserError(f"{p}:{lineno}: not JSON: {e}") from None
        for key in ("prompt", "completion"):
            msgs = row.get(key) if isinstance(row, dict) else None
            if (
                not isinstance(msgs, list)
                or not msgs
                or not all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m
                    for m in msgs
                )
            ):
                raise UserError(
                    f"{p}:{lineno}: {key}: expected a list of {{role, content}} messages"
                )
        rows.append(row)
    return rows
