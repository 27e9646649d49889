"""`arcjobs run` and `arcjobs plan`: the same decisions, acted on or shown."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from arcjobs import atomic
from arcjobs.commands import options
from arcjobs.engine.orchestrate import Cancelled, make_plan, readiness, run_plan
from arcjobs.engine.progress import Progress, warning_lines
from arcjobs.engine.states import StepState
from arcjobs.engine.store import RunStore
from arcjobs.spec import load_job
from arcjobs.spec.model import Job

DECISION_STYLE = {"run": ("yellow", "runs"), "reuse": ("cyan", "reused"), "done": ("green", "done")}


@click.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@options.backend
@options.overrides
@options.run_id
@options.data_root
@options.site
def run(
    job_file: Path,
    backend: str,
    overrides: tuple[str, ...],
    run_id: str | None,
    data_root: Path,
    site: Path | None,
) -> None:
    """Run JOB_FILE (or resume --run-id) and wait for it, showing progress."""
    started = time.time()
    job = load_job(job_file, overrides)
    plan = make_plan(job, backend, RunStore(data_root), run_id, {"site": site})
    for warning in answer_leaks(job):
        click.echo(f"warning: {warning}", err=True)
    with Progress() as progress:
        try:
            state = run_plan(plan, list(overrides), progress)
        except Cancelled as e:
            click.echo(
                f"run {plan.layout.run_id} cancelled ({e}); resume with --run-id {plan.layout.run_id}",
                err=True,
            )
            sys.exit(130)
    # A resumed run's steps that were complete before it started are not "ran" this time.
    before = {n for n, d in plan.decisions.items() if d.action == "done"}
    this_time = [i for n, i in state["steps"].items() if n not in before]
    shown: tuple[StepState, ...] = ("succeeded", "reused", "failed", "skipped")
    counts = {s: sum(1 for i in this_time if i["status"] == s) for s in shown}
    took = time.time() - started
    click.echo(
        f"run {plan.layout.run_id} {state['status']} in {took:.1f}s: {counts['succeeded']} ran, "
        f"{counts['reused']} reused, {counts['failed']} failed, {counts['skipped']} skipped"
        + (f" ({len(before)} already complete in this run)" if before else ""),
        err=True,
    )
    click.echo(f"outputs: {plan.layout.run_dir}/steps/<step>/out", err=True)
    for line in warning_lines(state, plan.layout):
        click.echo(line, err=True)
    if any(s.kind == "evaluate" for s in job.steps.values()) and state["status"] == "succeeded":
        click.echo(f"report:  arcjobs report {plan.layout.run_id}", err=True)
    if state["status"] != "succeeded":
        for name, info in state["steps"].items():
            if info["status"] == "failed":
                click.echo(
                    f"\nstep {name} failed ({info.get('reason')}); last lines of its log "
                    f"({plan.layout.log(name)}):\n{info.get('error_tail', '')}",
                    err=True,
                )
        sys.exit(1)


@click.command()
@click.argument("job_file", type=click.Path(path_type=Path))
@options.backend
@options.overrides
@options.run_id
@options.data_root
@options.site
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (requests as data).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write plan.json and every generated file (condor: the DAG and its submit "
    "files, under condor/; slurm: the batch scripts and submit.sh, under slurm/) into this "
    "directory, for review.",
)
def plan(
    job_file: Path,
    backend: str,
    overrides: tuple[str, ...],
    run_id: str | None,
    data_root: Path,
    site: Path | None,
    as_json: bool,
    out: Path | None,
) -> None:
    """Show what `run` would do for each step, and why, and what it would refuse here (on this
    machine, with this backend). Writes nothing under the data root."""
    p = make_plan(
        load_job(job_file, overrides), backend, RunStore(data_root), run_id, {"site": site}
    )
    job = p.job
    leaks = answer_leaks(job)
    refusals = [str(e) for e in readiness(p).refusals]
    requests = p.requests()
    artefacts = p.backend.artefacts(list(requests.values()), p.layout)
    data = {
        "run_id": p.layout.run_id,
        "backend": p.backend.name,
        "steps": [
            {
                "step": n,
                "key": d.key,
                "action": d.action,
                "reason": d.reason,
                "request": requests[n].to_dict(),
            }
            for n, d in p.decisions.items()
        ],
        "artefacts": artefacts,
        "uses_test_answers": leaks,
        "refusals": refusals,
    }
    if out is not None:
        _write_plan(
            out, data, {str(Path(f).relative_to(p.layout.run_dir)): t for f, t in artefacts.items()}
        )
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console()
    table = Table(
        title=f"{job.name}: {len(job.steps)} steps on {p.backend.name} "
        f"({'resuming' if p.resuming else 'new'} run {p.layout.run_id})",
        title_justify="left",
    )
    for col in ("step", "kind", "image", "resources", "needs", "decision"):
        table.add_column(col, overflow="fold")
    for name, d in p.decisions.items():
        s = job.steps[name]
        res = f"gpus={s.resources.gpus} cpus={s.resources.cpus}" + (
            f" mem={s.resources.memory_mb}M" if s.resources.memory_mb else ""
        )
        color, verb = DECISION_STYLE[d.action]
        table.add_row(
            name, s.kind, s.image, res, ", ".join(s.needs), f"[{color}]{verb}: {d.reason}[/]"
        )
    console.print(table)
    mount = p.backend.data_mount(p.layout)
    seen = "" if mount == str(p.layout.data_root) else f", seen by steps at {mount}"
    # plain text for the long part: rich's layout engine costs ~5 ms a line here
    lines = [f"data root {p.layout.data_root}{seen}; relative paths are relative to {Path.cwd()}"]
    for name, req in requests.items():
        env = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in req.env.items() if k != "ARCJOBS_RESOURCES"
        )
        lines += [f"{name}: {shlex.join(req.command)}", f"  env: {env}"]
    click.echo("\n".join(lines))
    for path, text in artefacts.items():
        click.echo(f"\n--- {path} ---\n{text}")
    for warning in leaks:
        click.echo(f"warning: {warning}", err=True)
    for refusal in refusals:
        click.echo(f"run would refuse here: {refusal}", err=True)


def answer_leaks(job: Job) -> list[str]:
    """A line for each step that uses the test answers (the seed study's `rank_with_test`):
    what follows it is no test-time result, and `plan`, `run` and the report say so."""
    return [
        f"step {name} ranks programs with the test outputs (rank_with_test): every score "
        "after it uses the test answers"
        for name, step in job.steps.items()
        if step.full_params.get("rank_with_test")
    ]


def _write_plan(out: Path, data: dict, files: dict[str, str]) -> None:
    """`out` published whole: plan.json plus each generated file at its path relative to the
    run directory (condor/run.dag beside its .sub files, as `run` writes them)."""
    with atomic.staged_dir(out) as tmp:
        (tmp / "plan.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
