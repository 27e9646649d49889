"""Step kind `programs`: hand-written BARC-style programs as a predictions.jsonl.

Why: to score known programs with the same execute/evaluate steps as the model's samples (a
ceiling or a sanity check), and to seed a search with programs known to be right — the CPU
demo mixes them into the tiny model's samples, because a model with random weights writes no
valid code and relabelling would then have nothing to learn from. Programs are files named
`<task_id>.py` in a directory (default: the DSL's acceptance corpus, which solves 50
ARC-AGI-1 training tasks); each becomes one prediction for its task, unaugmented, and with
`augmentations: k` k more, in the frames of a search's prompts 0..k-1 (the infer step's draws
for the same seed). A program written for the original frame is usually wrong in another
(a colour it names has moved); hindsight relabelling then turns it into a correct sample of
the task it does solve, so the pooled programs give training data under augmentation as a
model's samples would.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from arcjobs.errors import UserError
from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams
from arcjobs.steps.inputs import InputPath

CORPUS = Path(__file__).resolve().parent.parent / "sandbox" / "corpus"


class Params(DatasetParams):
    directory: InputPath | None = Field(
        None, description="directory of <task_id>.py programs; default the built-in corpus"
    )
    augmentations: int = Field(
        0, ge=0, description="also write each program under this many augmentations"
    )
    seed: int = Field(0, description="the augmentations are an infer step's for this seed")


def run(params: Params, ctx: StepContext) -> None:
    from arcjobs import atomic
    from arcjobs.inference.plan import draw
    from arcjobs.steps.dataset_params import load_tasks

    directory = Path(params.directory) if params.directory else CORPUS
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory of programs")
    tasks = load_tasks(params)
    lines = []
    for task_id, task in sorted(tasks.items()):
        path = directory / f"{task_id}.py"
        if not path.exists():
            continue
        code = path.read_text()
        frames = [None] + [
            draw(task, k, augment=True, shuffle_train=False, seed=params.seed).augmentation
            for k in range(params.augmentations)
        ]
        for k, frame in enumerate(frames):
            lines.append(
                {
                    "task_id": task_id,
                    "sample_id": f"{task_id}.program.{k}",
                    "test_index": 0,
                    "augmentation": None if frame is None else frame.to_dict(),
                    "model": f"programs:{directory.name}",
                    "adapter": None,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "text": None,
                    "code": code,
                }
            )
    if not lines:
        raise UserError(f"{directory}: no program for any of the {len(tasks)} selected tasks")
    atomic.write_text(
        ctx.out / "predictions.jsonl", "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)
    )


KIND = StepKind(
    name="programs",
    params=Params,
    run=run,
    image="sandbox",
    description="Hand-written <task_id>.py programs as predictions (a baseline, or seed programs).",
)
