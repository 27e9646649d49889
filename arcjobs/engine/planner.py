"""Decide, for every step, whether it runs, is already done, or is reused — and say why.

The same decisions drive `arcjobs plan` (shown, nothing written) and `arcjobs run` (acted
on), so what `plan` promises is what `run` does. A reason is plain words without the action
("param lora_rank changed"): `plan` shows it after the action, `status` as the step's note,
where it must read right after the step has run too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from arcjobs.engine.keys import cache_key
from arcjobs.engine.store import RunStore
from arcjobs.layout import RunLayout
from arcjobs.manifest import is_complete
from arcjobs.spec.interpolate import render
from arcjobs.spec.model import Job, Step

Action = Literal["done", "reuse", "run"]


@dataclass(frozen=True)
class Decision:
    step: str
    key: str
    image_id: str
    action: Action
    reason: str
    source: tuple[str, str] | None = None  # (run id, step) to reuse
    keyed_params: dict[str, Any] | None = None  # params with upstream refs replaced by keys


def decide(
    job: Job, store: RunStore, layout: RunLayout, image_ids: dict[str, str]
) -> dict[str, Decision]:
    keys: dict[str, str] = {}
    out: dict[str, Decision] = {}
    earlier = _EarlierParams(store)
    for name, step in job.steps.items():
        image_id = image_ids[step.image]
        key = cache_key(step, keys, image_id)
        keys[name] = key
        keyed = _keyed_params(step, keys)
        if is_complete(layout.step_dir(name), key):
            out[name] = Decision(name, key, image_id, "done", "complete in this run", None, keyed)
            continue
        source = store.find(key, exclude_run=layout.run_id)
        if source:
            reason = f"same cache key as run {source[0]}" + (
                f", step {source[1]}" if source[1] != name else ""
            )
            out[name] = Decision(name, key, image_id, "reuse", reason, source, keyed)
            continue
        out[name] = Decision(
            name,
            key,
            image_id,
            "run",
            _why(job, step, keyed, image_id, out, store, earlier),
            None,
            keyed,
        )
    return out


def _keyed_params(step: Step, keys: dict[str, str]) -> dict[str, Any]:
    return render(
        step.full_params, lambda r: "${data}" if r == "data" else "${key:" + keys[r[:-4]] + "}"
    )


def _why(
    job: Job,
    step: Step,
    keyed: dict[str, Any],
    image_id: str,
    decided: dict[str, Decision],
    store: RunStore,
    earlier: _EarlierParams,
) -> str:
    """Explain a 'run' by comparing with the last published output of the same step."""
    upstream = [n for n in step.needs if decided[n].action == "run"]
    last = store.last(job.name, step.name)
    if last is None:
        return "first run: no earlier output of this step"
    changed = sorted(
        k for k in set(keyed) | set(last["params"]) if keyed.get(k) != last["params"].get(k)
    )
    plain = [k for k in changed if "${key:" not in str(keyed.get(k)) + str(last["params"].get(k))]
    if plain:
        since = _job_params_changed(job.params, earlier(last["run_id"]))
        return f"param {', '.join(plain)} changed" + (f" (job {since})" if since else "")
    if last["image"] != image_id:
        return "image changed"
    if upstream or changed:
        return "input from " + ", ".join(upstream or step.needs) + " changed"
    return f"its last output (run {last['run_id']}) is incomplete"


class _EarlierParams:
    """The job parameters of earlier runs (their job.yaml), each file read at most once per
    planning: a sweep's changed steps all point at the same few runs."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.seen: dict[str, dict[str, Any]] = {}

    def __call__(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.seen:
            import yaml

            try:
                text = (self.store.layout(run_id).run_dir / "job.yaml").read_text()
                data = yaml.safe_load(text)
            except (OSError, yaml.YAMLError):
                data = None
            self.seen[run_id] = (data.get("params") if isinstance(data, dict) else None) or {}
        return self.seen[run_id]


def _job_params_changed(now: dict[str, Any], before: dict[str, Any]) -> str:
    """The job parameters that differ from an earlier run's ("param scale 1 → 10"): a step's
    parameters hold them substituted, so this names what the user actually changed."""
    diffs = [f"{k} {before[k]!r} → {v!r}" for k, v in now.items() if before.get(k, v) != v]
    return ("params " if len(diffs) > 1 else "param ") + ", ".join(diffs) if diffs else ""
