"""Read runs into plain data: steps and their timings, evaluate metrics, training curves.

Everything the report shows is computed here from files the steps published (`run.json`,
each step's `manifest.json` and `out/`), so the numbers can be unit-tested without drawing
anything. Only finished evaluate/train steps are read (manifest `ok`, outputs present): a
step that failed or is still running has nothing trustworthy to show, but its duration and
status still appear in the timing table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcjobs.engine.store import RunStore
from arcjobs.errors import UserError
from arcjobs.layout import runs_dir
from arcjobs.manifest import read_manifest
from arcjobs.spec.names import StepName, parse_step_name, step_order

# Where containers see the data root (DESIGN.md §3): paths recorded by steps that ran in an
# image start with it and are re-rooted at the host's data root to be read here.
CONTAINER_DATA = "/data"


@dataclass
class StepInfo:
    name: str
    kind: str
    status: str
    started: float | None
    ended: float | None
    throughput: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass
class EvalInfo:
    """One finished evaluate step: its metrics, its submission and where its inputs were."""

    run_id: str
    step: str
    dataset: str
    solutions: str | None
    executions: list[Path]  # the executions it scored (several: one search over their budget)
    mean: dict[str, Any]
    per_task: dict[str, dict[str, Any]]
    submission: dict[str, list[dict[str, Any]]]
    study: dict[str, Any] = field(default_factory=dict)  # the seed study's table, its mean
    legitimacy: dict[str, Any] | None = None  # newly solved tasks and the base model's odds
    # a relabel step before it ranked with the test outputs (rank_with_test): its scores
    # used the test answers
    uses_test_answers: bool = False

    @property
    def name(self) -> StepName:
        return parse_step_name(self.step)

    @property
    def answers_known(self) -> bool:
        """False when the dataset's test answers are unknown (pass@n is then None)."""
        return any(m.get("pass_at_n") is not None for m in self.per_task.values())

    def solved(self) -> set[str]:
        """Tasks with a program right on every train pair and test output (pass@n = 1).

        Without test answers, the best available evidence is a program right on every train
        pair (train pass@n); `answers_known` tells the reader which one was used.
        """
        key = "pass_at_n" if self.answers_known else "train_pass_at_n"
        return {tid for tid, m in self.per_task.items() if m.get(key) == 1.0}


@dataclass
class TrainInfo:
    """One finished train step; `metrics` is whatever its metrics.json holds (maybe partial)."""

    run_id: str
    step: str
    loss: list[tuple[float, float]]
    metrics: dict[str, Any]


@dataclass
class RunInfo:
    run_id: str
    job: str
    description: str
    status: str
    backend: str
    created: float | None
    steps: list[StepInfo]
    evals: list[EvalInfo]
    trains: list[TrainInfo]


@dataclass(frozen=True)
class Comparison:
    """What an evaluate step solves relative to the reference (the first evaluate step)."""

    solved: int
    newly_solved: list[str]
    lost: list[str]


@dataclass
class ReportData:
    data_root: Path
    runs: list[RunInfo]

    @property
    def evals(self) -> list[EvalInfo]:
        return [ev for run in self.runs for ev in run.evals]

    @property
    def reference(self) -> EvalInfo:
        """The first evaluate step of the first run: "before learning" for every comparison."""
        return self.runs[0].evals[0]

    def compare(self, ev: EvalInfo) -> Comparison:
        ref = self.reference
        common = ref.per_task.keys() & ev.per_task.keys()
        before, after = ref.solved() & common, ev.solved() & common
        return Comparison(
            solved=len(ev.solved()),
            newly_solved=sorted(after - before),
            lost=sorted(before - after),
        )


def host_path(data_root: Path, path: str) -> Path:
    """A path recorded by a step, as this machine sees it (re-rooted from `/data` if needed)."""
    p = Path(path)
    if not p.exists() and p.is_relative_to(CONTAINER_DATA):
        return data_root / p.relative_to(CONTAINER_DATA)
    return p


def _description(job_file: Path) -> str:
    """The job's own account of itself (its `description:`), as the run saved the job."""
    import yaml

    try:
        job = yaml.safe_load(job_file.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    text = job.get("description") if isinstance(job, dict) else None
    return text.strip() if isinstance(text, str) else ""


def _read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _throughput(out: Path) -> dict[str, float]:
    """Rates a step reported about itself (`*_per_s` in summary.json or metrics.json)."""
    rates: dict[str, float] = {}
    for name in ("summary.json", "metrics.json"):
        data = _read_json(out / name)
        if isinstance(data, dict):
            rates.update(
                {
                    k: float(v)
                    for k, v in data.items()
                    if k.endswith("_per_s") and isinstance(v, int | float)
                }
            )
    return rates


def _finished(step_dir: Path) -> dict[str, Any] | None:
    """The manifest of a step whose outputs are published, else None."""
    m = read_manifest(step_dir)
    return m if m and m.get("status") == "ok" and (step_dir / "out").is_dir() else None


def _read_eval(data_root: Path, run_id: str, step: str, step_dir: Path) -> EvalInfo | None:
    manifest = _finished(step_dir)
    metrics = _read_json(step_dir / "out" / "metrics.json")
    if manifest is None or not isinstance(metrics, dict) or "per_task" not in metrics:
        return None
    params = manifest.get("params", {})
    executions = params.get("executions") or []
    return EvalInfo(
        run_id=run_id,
        step=step,
        dataset=params.get("dataset") or metrics.get("dataset", ""),
        solutions=params.get("solutions"),
        executions=[
            host_path(data_root, p)
            for p in ([executions] if isinstance(executions, str) else executions)
        ],
        mean=metrics.get("mean", {}),
        per_task=metrics["per_task"],
        submission=_read_json(step_dir / "out" / "submission.json") or {},
        study=(metrics.get("study") or {}).get("mean", {}),
        legitimacy=metrics.get("legitimacy"),
    )


def _read_train(run_id: str, step: str, step_dir: Path) -> TrainInfo | None:
    metrics = _read_json(step_dir / "out" / "metrics.json")
    if _finished(step_dir) is None or not isinstance(metrics, dict):
        return None
    curve = metrics.get("loss_curve") or []
    loss = [
        (float(p["step"]), float(p["loss"]))
        for p in curve
        if isinstance(p, dict) and isinstance(p.get("loss"), int | float) and "step" in p
    ]
    return TrainInfo(run_id=run_id, step=step, loss=loss, metrics=metrics)


def read_run(store: RunStore, run_id: str) -> RunInfo:
    state = store.read(run_id)  # UserError naming the runs directory when unknown
    layout = store.layout(run_id)
    steps, evals, trains = [], [], []
    all_steps = state.get("steps", {})
    leaked = False  # a relabel step so far ranked with the test answers
    for name in step_order(all_steps):
        info = all_steps[name]
        step_dir = layout.step_dir(name)
        kind = info.get("kind", "")
        if kind == "relabel":
            # the manifest holds the validated params (runner: model_dump), so a real bool
            params = (read_manifest(step_dir) or {}).get("params", {})
            leaked = leaked or params.get("rank_with_test") is True
        steps.append(
            StepInfo(
                name=name,
                kind=kind,
                status=info.get("status", "?"),
                started=info.get("started"),
                ended=info.get("ended"),
                throughput=_throughput(step_dir / "out"),
            )
        )
        if kind == "evaluate" and (ev := _read_eval(store.data_root, run_id, name, step_dir)):
            ev.uses_test_answers = leaked
            evals.append(ev)
        elif kind == "train" and (tr := _read_train(run_id, name, step_dir)):
            trains.append(tr)
    if not evals:
        kinds = sorted({s.kind for s in steps if s.kind})
        raise UserError(
            f"run {run_id} has no finished evaluate step to report on "
            f"(its step kinds: {', '.join(kinds) or 'none'})"
        )
    return RunInfo(
        run_id=run_id,
        job=state.get("job", ""),
        description=_description(layout.run_dir / "job.yaml"),
        status=state.get("status", "?"),
        backend=state.get("backend", ""),
        created=state.get("created"),
        steps=steps,
        evals=evals,
        trains=trains,
    )


def collect(data_root: Path, run_ids: list[str]) -> ReportData:
    """Every named run, in the order given (the first one's first evaluate is the reference)."""
    store = RunStore(data_root)
    if not runs_dir(store.data_root).is_dir():
        raise UserError(f"no runs under {runs_dir(store.data_root)} (wrong --data-root?)")
    return ReportData(store.data_root, [read_run(store, rid) for rid in dict.fromkeys(run_ids)])


@dataclass(frozen=True)
class RoundPoint:
    """pass@n and ARC score of one evaluate step, placed on its run/branch's line."""

    series: str  # the run (and matrix branch) the step belongs to
    stage: str  # the step name without its branch (evaluate.r2): the x position
    step: str
    pass_at_n: float | None
    arc_score: float | None


def round_points(data: ReportData) -> list[RoundPoint]:
    """One point per evaluate step; a line per run and branch follows its rounds in order."""
    several = len(data.runs) > 1
    points = []
    for run in data.runs:
        for ev in run.evals:
            name = ev.name
            parts = [run.run_id if several else "", name.branch_label]
            points.append(
                RoundPoint(
                    series=" · ".join(p for p in parts if p) or run.run_id,
                    stage=name.stage,
                    step=ev.step,
                    pass_at_n=ev.mean.get("pass_at_n"),
                    arc_score=ev.mean.get("arc_score"),
                )
            )
    return points


def eval_label(data: ReportData, ev: EvalInfo) -> str:
    """How an evaluate step is named on the page: with its run only when there are several,
    and marked when a relabel step before it used the test answers."""
    label = f"{ev.run_id} · {ev.step}" if len(data.runs) > 1 else ev.step
    return f"{label} (uses test answers)" if ev.uses_test_answers else label
