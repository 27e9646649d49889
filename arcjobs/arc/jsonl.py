"""Reading JSONL files line by line, with progress and errors that name the line.

Execution files reach hundreds of megabytes (hundreds of thousands of programs, each with
its output grids), so they are streamed, and a bad line stops the step with `file:line:`
instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from arcjobs.errors import UserError


def read_jsonl(path: Path, description: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; progress by bytes on stderr."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    progress = Progress(
        TextColumn(description),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with f, progress:
        bar = progress.add_task(description, total=path.stat().st_size)
        for lineno, raw in enumerate(f, start=1):
            progress.advance(bar, len(raw))
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise UserError(
                    f"{path}:{lineno}: not valid JSON: {getattr(e, 'msg', e)}"
                ) from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, obj
