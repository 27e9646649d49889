"""Step kind `relabel`: executions → dataset.jsonl (BARC prompt–completion samples), stats.json.

Hindsight relabelling and top-k selection per task (see `arcjobs.arc.relabel`); the output
is what the train step fine-tunes on. It also writes selected.jsonl, the executions the
samples came from, so that a later round's relabel can take them as `previous`: their
programs then compete with that round's, and the data accumulates across rounds (the
follow-up study's way). A previous round's sample ids get the prefix `prev:` (the rounds
number their samples alike).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from arcjobs.steps.base import StepContext, StepKind
from arcjobs.steps.dataset_params import DatasetParams, Paths, load_tasks

SELECTED = "selected.jsonl"


class Params(DatasetParams):
    executions: Paths = Field(
        description="executions.jsonl or an execute step's out/ (a list: several searches)"
    )
    per_task: int = Field(8, ge=1, description="samples kept per task after deduplication")
    rank_by: Literal["correct_grids", "pixel"] = Field(
        "correct_grids", description="first ranking criterion against the real train outputs"
    )
    keep_solved: bool = Field(True, description="keep tasks a program already solves on train")
    augment: bool = Field(
        True, description="also relabel predictions made on augmented tasks (in their frame)"
    )
    rank_with_test: bool = Field(
        False,
        description="rank with the test outputs too, as the seed study did: USES THE TEST "
        "ANSWERS, so what follows is no test-time result (plan and the report say so)",
    )
    shuffle_train: bool = Field(
        False, description="shuffle each training prompt's train pairs, as the search did"
    )
    completion: Literal["code", "text"] = Field(
        "code",
        description="train on the program re-fenced in BARC's answer format, or on the "
        "model's own answer text (needs `predictions`)",
    )
    predictions: Paths | None = Field(
        None, description="the infer outputs the executions came from (for completion: text)"
    )
    previous: Paths | None = Field(
        None,
        description="earlier relabel outputs (`${prev.select.out}`): their selected programs "
        "compete with these, so the data accumulates across rounds",
    )


def run(params: Params, ctx: StepContext) -> None:
    import itertools

    from arcjobs import atomic
    from arcjobs.arc.executions import read_all
    from arcjobs.arc.relabel import Options, relabel
    from arcjobs.errors import UserError

    if params.completion == "text" and params.predictions is None:
        raise UserError("relabel: completion: text needs `predictions` (the infer step's out/)")
    tasks = load_tasks(params)
    texts = _texts(params.predictions or [])
    earlier = _previous(params.previous or [], tasks, params.dataset, texts)
    options = Options(
        per_task=params.per_task,
        rank_by=params.rank_by,
        keep_solved=params.keep_solved,
        augment=params.augment,
        rank_with_test=params.rank_with_test,
        shuffle_train=params.shuffle_train,
        texts=texts if params.completion == "text" else None,
    )
    executions = itertools.chain(read_all(params.executions, tasks, params.dataset), earlier)
    samples, stats, selected = relabel(tasks, executions, options)
    atomic.write_text(ctx.out / "dataset.jsonl", "".join(_line(s) for s in samples))
    atomic.write_json(ctx.out / "stats.json", stats)
    records = []
    for ex in selected:
        record = ex.record()
        text = texts.get((ex.task_id, str(ex.sample_id)))
        records.append(_line({**record, "text": text} if text else record))
    atomic.write_text(ctx.out / SELECTED, "".join(records))


def _line(obj: dict) -> str:
    import json

    return json.dumps(obj, separators=(",", ":")) + "\n"


def _texts(paths: list[str]) -> dict[tuple[str, str], str]:
    """(task id, sample id) → the model's whole answer, from infer outputs."""
    from pathlib import Path

    from arcjobs.arc.jsonl import read_jsonl
    from arcjobs.sandbox.files import resolve_predictions

    found = {}
    for path in paths:
        for _, obj in read_jsonl(resolve_predictions(Path(path)), "reading predictions"):
            if isinstance(obj.get("text"), str):
                found[(str(obj.get("task_id")), str(obj.get("sample_id")))] = obj["text"]
    return found


def _previous(paths: list[str], tasks: dict, dataset: str, texts: dict) -> list:
    """The executions earlier relabels selected, their ids marked `prev:`; their texts go
    into `texts` under those ids."""
    import dataclasses

    from arcjobs.arc.executions import read_with_lines

    found = []
    for path in paths:
        for ex, obj in read_with_lines(path, tasks, dataset, SELECTED):
            ex = dataclasses.replace(ex, sample_id=f"prev:{ex.sample_id}")
            if isinstance(obj.get("text"), str):
                texts[(ex.task_id, ex.sample_id)] = obj["text"]
            found.append(ex)
    return found


KIND = StepKind(
    name="relabel",
    params=Params,
    run=run,
    image="sandbox",
    description="Hindsight-relabel executions into a BARC prompt-completion dataset.jsonl.",
)
