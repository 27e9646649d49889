"""Step kind `programs`: hand-written BARC-style programs as a predictions.jsonl.

Why: to score known programs with the same execute/evaluate steps as the model's samples (a
ceiling or a sanity check), and to seed a search with programs known to be right — the CPU
demo mixes them into the tiny model's samples, because a model with random weights writes no
valid code and relabelling would then have nothing to learn from. Programs are files named
`<task_id>.py` in a directory (default: the DSL's acceptance corpus, which solves 50
ARC-AGI-1 training tasks); each becomes one prediction for its task, unaugmented.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from arcjobs.errors import UserError
from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams

CORPUS = Path(__file__).resolve().parent.parent / "sandbox" / "corpus"


class Params(DatasetParams):
    directory: str | None = Field(
        None, description="directory of <task_id>.py programs; default the built-in corpus"
    )


def run(params: Params, ctx: StepContext) -> None:
    from arcjobs.steps.dataset_params import load_tasks

    directory = Path(params.directory) if params.directory else CORPUS
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory of programs")
    tasks = load_tasks(params)
    lines = []
    for task_id in sorted(tasks):
        path = directory / f"{task_id}.py"
        if path.exists():
            lines.append(
                {
                    "task_id": task_id,
                    "sample_id": f"{task_id}.program.0",
                    "test_index": 0,
                    "augmentation": None,
                    "model": f"programs:{directory.name}",
                    "adapter": None,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "text": None,
                    "code": path.read_text(),
                }
            )
    if not lines:
        raise UserError(f"{directory}: no program for any of the {len(tasks)} selected tasks")
    with open(ctx.out / "predictions.jsonl", "w") as f:
        f.writelines(json.dumps(line, sort_keys=True) + "\n" for line in lines)


KIND = StepKind(
    name="programs",
    params=Params,
    run=run,
    image="sandbox",
    description="Hand-written <task_id>.py programs as predictions (a baseline, or seed programs).",
)
