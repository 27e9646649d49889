"""The file side of execution: predictions.jsonl in, executions.jsonl + summary.json out.

Shared by `arcjobs sandbox run` and the `execute` step so both read and write exactly the
same formats. Predictions are checked line by line before anything runs (a bad line stops
with `file:line: problem`, nothing written). executions.jsonl has one line per prediction,
in the predictions' order, with deterministic bytes; timings live in summary.json only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arcjobs.errors import UserError
from arcjobs.sandbox.executor import Program, ProgramResult, SandboxRun, execute
from arcjobs.sandbox.limits import Limits

PREDICTIONS = "predictions.jsonl"
EXECUTIONS = "executions.jsonl"
SUMMARY = "summary.json"


def resolve_predictions(path: str | Path) -> Path:
    """The predictions file itself, or `predictions.jsonl` inside a step's output directory."""
    p = Path(path)
    if p.is_dir():
        p = p / PREDICTIONS
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    return p


def read_predictions(path: Path, tasks: Mapping[str, Any]) -> list[Program]:
    """Every prediction as a Program; UserError naming the line for anything malformed."""
    from arcjobs.arc.augment import Augmentation
    from arcjobs.arc.jsonl import read_jsonl
    from arcjobs.arc.prompts import extract_code

    programs = []
    for lineno, obj in read_jsonl(path, "reading predictions"):
        where = f"{path}:{lineno}"
        tid = obj.get("task_id")
        if not isinstance(tid, str):
            raise UserError(f"{where}: task_id must be a string")
        if tid not in tasks:
            raise UserError(f"{where}: unknown task id {tid!r} (not in the tasks given)")
        if "sample_id" not in obj:
            raise UserError(f"{where}: missing key 'sample_id'")
        code = obj.get("code")
        if code is None:
            text = obj.get("text")
            if not isinstance(text, str):
                raise UserError(f"{where}: needs 'code' or 'text' (a string)")
            code = extract_code(text)
        elif not isinstance(code, str):
            raise UserError(f"{where}: code must be a string")
        aug = obj.get("augmentation")
        if aug is not None:
            try:
                aug = Augmentation.from_dict(aug).to_dict()
            except (ValueError, TypeError, AttributeError) as e:
                raise UserError(f"{where}: bad augmentation: {e}") from None
        test_index = obj.get("test_index")
        if test_index is not None and not (
            type(test_index) is int and 0 <= test_index < len(tasks[tid].test_inputs)
        ):
            raise UserError(f"{where}: test_index {test_index!r} out of range for task {tid}")
        programs.append(Program(tid, obj["sample_id"], code, aug, test_index))
    return programs


def run_batch(
    programs: list[Program],
    tasks: Mapping[str, Any],
    out: Path,
    limits: Limits,
    workers: int | None,
    cache_path: Path | None,
    unprotected: bool = False,
    reject: str = "none",
) -> dict[str, Any]:
    """Execute with a progress bar on stderr and write both files into the directory `out`.

    `out` must be private to the caller (it is published by rename afterwards), so files
    are written directly into it.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from arcjobs.sandbox.cache import ResultCache

    cache = None
    if cache_path is not None:
        try:
            cache = ResultCache(cache_path)
        except OSError as e:
            print(f"warning: {cache_path}: {e}; running without the cache", file=sys.stderr)
    results: list[ProgramResult | None] = [None] * len(programs)
    try:
        run: SandboxRun = execute(
            programs, tasks, limits, workers, cache, unprotected=unprotected, reject=reject
        )
        progress = Progress(
            TextColumn("executing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        with progress:
            bar = progress.add_task("executing", total=len(programs), counts="")
            for result in run:
                results[result.index] = result
                counts = " ".join(f"{s}={n}" for s, n in sorted(run.counts.items()))
                progress.update(bar, advance=1, counts=counts)
    finally:
        if cache is not None:
            cache.close()
    summary = run.summary()
    summary["reject"] = reject
    done = [r for r in results if r is not None]
    summary["train_all_correct"] = sum(all(r.train_correct) for r in done)
    scored = [r for r in done if r.test_correct is not None]
    summary["test_all_correct"] = sum(all(r.test_correct) for r in scored) if scored else None
    summary["cache"] = (
        None if cache is None else {"path": str(cache_path), "rebuilt": cache.rebuilt}
    )
    with (out / EXECUTIONS).open("w") as f:  # streamed: it reaches hundreds of MB
        for r in done:
            f.write(json.dumps(r.record(), separators=(",", ":")) + "\n")
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
