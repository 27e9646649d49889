"""Load, expand and validate a job file into a `Job`, or fail with one located error.

The order matters for the messages: YAML syntax, then the file's structure (schema), then
names and references (before expansion, so errors point at what the user wrote), then the
expansion of rounds and matrix branches, then each step's parameters against its kind's
schema, then rules spanning several steps. Nothing here touches the disk except reading
the job file.
"""

from __future__ import annotations

import graphlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from arcjobs.errors import SpecError, UserError
from arcjobs.spec import yamlpos
from arcjobs.spec.interpolate import UnknownRef, refs_in, render
from arcjobs.spec.model import Job, Resources, Step
from arcjobs.spec.schema import JobSpec, StepSpec, describe, first_error, memory_mb
from arcjobs.steps import get_kind, kind_names
from arcjobs.steps.inputs import absolute

RESERVED = {"data", "matrix", "round", "prev", "run", "out", "outs"}
_SAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def load_job(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Job:
    """Read `path`, apply `--set` overrides, and return the resolved job.

    `--set name=value` sets a job parameter; `--set step.key=value` sets one key of a step's
    `with:` (in every round and branch of that step), as if the file said so. Values are
    YAML. An override names a parameter, step or key that exists, else one line names it."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserError(f"{file}: cannot read job file: {e.strerror}") from None
    located = yamlpos.load(text, file)
    if located.data is None:
        raise SpecError(
            file,
            1,
            "",
            "the job file is empty; expected a mapping with keys name, params and steps",
        )
    if not isinstance(located.data, dict):
        raise located.error((), "expected a mapping with keys name, params and steps")
    data = dict(located.data)
    param_overrides = [o for o in overrides if "." not in o.partition("=")[0]]
    step_overrides = _StepOverrides.parse([o for o in overrides if o not in param_overrides])
    if isinstance(data.get("params"), dict):
        data["params"] = _apply_overrides(data["params"], param_overrides, file)
    elif param_overrides:
        _apply_overrides({}, param_overrides, file)
    step_overrides.apply(data, file)
    _render_structure(located, data)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        err = first_error(e)
        raise _error_at(located, ("",), tuple(err["loc"]), describe(err, JobSpec)) from None
    return _Resolver(located, spec, spec.params, step_overrides).job()


@dataclass
class _StepOverrides:
    """`--set step.key=value`: (step, key) → (the argument as given, the value)."""

    given: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: list[str]) -> _StepOverrides:
        found = cls()
        for item in items:
            target, equals, raw = item.partition("=")
            step, _, key = target.partition(".")
            if not equals or not step or not key:
                raise UserError(f"--set {item}: expected step.key=value")
            found.given[(step, key)] = (item, _yaml_value(raw))
        return found

    def apply(self, data: dict[str, Any], file: str) -> None:
        """Write each value into its step's `with:`, after checking that the step exists,
        takes parameters and that its kind has the key."""
        steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
        changed: dict[str, dict[str, Any]] = {}
        for (step, key), (item, value) in self.given.items():
            spec = steps.get(step)
            if not isinstance(spec, dict):
                known = ", ".join(steps) or "none"
                raise UserError(f"--set {item}: {file} has no step {step!r}; its steps: {known}")
            kind = spec.get("uses")
            if kind not in kind_names():
                raise UserError(f"--set {item}: step {step!r} has no kind's parameters to set")
            fields = get_kind(kind).params.model_fields
            if key not in fields:
                raise UserError(
                    f"--set {item}: a {kind} step has no parameter {key!r}; its parameters: "
                    f"{', '.join(fields)}"
                )
            base = changed.setdefault(step, dict(spec.get("with") or {}))
            base[key] = value
        for step, values in changed.items():
            steps[step] = {**steps[step], "with": values}

    def argument(self, step: str, key: str) -> str | None:
        """The `--set` argument that gave `step`'s `key`, if one did."""
        found = self.given.get((step, key))
        return found[0] if found else None


def _yaml_value(raw: str) -> Any:
    """A `--set` value: YAML, or the text itself where it is not valid YAML."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _render_structure(located: yamlpos.Located, data: dict[str, Any]) -> None:
    """Substitute parameters where the DAG's shape is decided: `rounds.count` and steps'
    `resources`, so `--set rounds=2 --set gpus=0` can shrink a job for a CPU machine.
    Only parameters may be referenced there; the values are then checked by the schema."""
    params = data.get("params") if isinstance(data.get("params"), dict) else {}

    def at(path: tuple[Any, ...]) -> Any:
        def resolve(ref: str) -> Any:
            if ref not in params:
                raise located.error(
                    path,
                    f"${{{ref}}}: only job parameters can be used here "
                    f"(parameters: {', '.join(params) or 'none'})",
                )
            return params[ref]

        return resolve

    rounds = data.get("rounds")
    if isinstance(rounds, dict) and isinstance(rounds.get("count"), str):
        data["rounds"] = {**rounds, "count": render(rounds["count"], at(("rounds", "count")))}
    steps = data.get("steps")
    if not isinstance(steps, dict):
        return
    rendered_steps = {}
    for name, step in steps.items():
        if isinstance(step, dict) and isinstance(step.get("resources"), dict):
            res = {
                k: render(v, at(("steps", name, "resources", k))) if isinstance(v, str) else v
                for k, v in step["resources"].items()
            }
            step = {**step, "resources": res}
        rendered_steps[name] = step
    data["steps"] = rendered_steps


def _apply_overrides(
    params: dict[str, Any], overrides: list[str] | tuple[str, ...], file: str
) -> dict[str, Any]:
    params = dict(params)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: expected key=value")
        if key not in params:
            known = ", ".join(params) or "none"
            raise UserError(
                f"--set {key}: {file} has no parameter {key!r}; its parameters: {known} "
                "(a step's parameter: --set step.key=value)"
            )
        params[key] = _yaml_value(raw)
    return params


def _error_at(
    located: yamlpos.Located, prefix: tuple[Any, ...], loc: tuple[Any, ...], message: str
) -> SpecError:
    """Locate a pydantic error: the longest prefix of its loc that exists in the file."""
    path = tuple(p for p in (*prefix, *loc) if p != "")
    known = path
    while known and known not in located.lines:
        known = known[:-1]
    # keep union-branch noise ('str', 'int', 'function-after[...]') out of the key path
    shown = known + tuple(
        p
        for p in path[len(known) :]
        if isinstance(p, str)
        and p.isidentifier()
        and p not in ("str", "int", "float", "bool", "list", "dict")
    )
    return SpecError(located.file, located.line(known), yamlpos.format_path(shown), message)


@dataclass
class _Instance:
    """A step of the expanded DAG before its parameters are validated."""

    name: str
    base: str
    round: int | None
    assignment: dict[str, Any]
    deps: dict[str, _Instance] = field(default_factory=dict)  # base name → chosen instance
    prev: dict[str, _Instance | None] = field(default_factory=dict)
    gathered: dict[str, list[_Instance]] = field(default_factory=dict)


class _Resolver:
    def __init__(
        self,
        located: yamlpos.Located,
        spec: JobSpec,
        params: dict[str, Any],
        overrides: _StepOverrides | None = None,
    ):
        self.located, self.spec, self.params = located, spec, params
        self.overrides = overrides or _StepOverrides()
        self.round_steps = list(spec.rounds.steps) if spec.rounds else []
        self.axes_order: list[str] = []
        self.refs: dict[str, list[str]] = {}
        self.memo: dict[tuple[str, int | None], list[_Instance]] = {}

    def err(self, path: tuple[Any, ...], message: str) -> SpecError:
        return self.located.error(path, message)

    # --- names, references and the graph, checked on what the user wrote --------------

    def check_names(self) -> None:
        steps = self.spec.steps
        for name in self.params:
            if name in RESERVED or name in steps:
                what = "a reserved word" if name in RESERVED else "also a step name"
                raise self.err(("params", name), f"parameter name {name!r} is {what}")
        for name, step in steps.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", name) or name in RESERVED:
                raise self.err(
                    ("steps", name),
                    "expected a step name of letters, digits, '_' or '-', not a reserved word",
                )
            if (step.uses is None) == (step.run is None):
                raise self.err(
                    ("steps", name),
                    "expected exactly one of `uses:` (a step kind) or `run:` (a shell command)",
                )
            if step.run is not None and step.with_:
                raise self.err(
                    ("steps", name, "with"),
                    "a `run:` step takes no `with:`; put values into the command",
                )
            if step.uses is not None and step.uses not in kind_names():
                raise self.err(
                    ("steps", name, "uses"),
                    f"unknown step kind {step.uses!r}; expected one of: {', '.join(kind_names())}",
                )
            for i, need in enumerate(step.needs):
                if need not in steps:
                    raise self.err(
                        ("steps", name, "needs", i),
                        f"unknown step {need!r}; steps are: {', '.join(steps)}",
                    )
            for axis in step.matrix or {}:
                if axis in self.axes_order:
                    raise self.err(
                        ("steps", name, "matrix", axis),
                        f"matrix axis {axis!r} is already declared by another step",
                    )
                self.axes_order.append(axis)
        if self.spec.rounds:
            for i, name in enumerate(self.spec.rounds.steps):
                if name not in steps:
                    raise self.err(
                        ("rounds", "steps", i),
                        f"unknown step {name!r}; steps are: {', '.join(steps)}",
                    )

    def _values(self, step: StepSpec) -> tuple[str, Any]:
        return ("run", step.run) if step.run is not None else ("with", step.with_)

    def check_refs(self) -> dict[str, set[str]]:
        """Check every reference; return each step's dependencies (prev-round refs excluded)."""
        steps, deps = self.spec.steps, {}
        for name, step in steps.items():
            key, values = self._values(step)
            deps[name] = set(step.needs)
            self.refs[name] = refs_in(values)
            for ref in self.refs[name]:
                problem = self._check_ref(name, ref)
                if problem:
                    raise self.err(("steps", name, key), f"${{{ref}}}: {problem}")
                target = _step_of(ref)
                if target and not ref.startswith("prev."):
                    deps[name].add(target)
            for axis in step.matrix or {}:
                if f"matrix.{axis}" not in self.refs[name]:
                    raise self.err(
                        ("steps", name, "matrix", axis),
                        f"axis {axis!r} is not used by this step's {key} (as ${{matrix.{axis}}}); "
                        "its branches would all compute the same thing",
                    )
        try:
            order = list(graphlib.TopologicalSorter(deps).static_order())
        except graphlib.CycleError as e:
            cycle = e.args[1]
            raise self.err(
                ("steps", cycle[0], "needs"), "dependency cycle: " + " → ".join(cycle)
            ) from None
        self.order = order
        return deps

    def _check_ref(self, step: str, ref: str) -> str | None:
        in_rounds = step in self.round_steps
        if ref == "data" or (ref.startswith("matrix.") and len(ref) > 7):
            return None
        if ref == "round":
            return None if in_rounds else "only steps listed under rounds.steps have a round"
        target = _step_of(ref)
        if target is not None:
            if target not in self.spec.steps:
                return f"unknown step {target!r}; steps are: {', '.join(self.spec.steps)}"
            if target == step and not ref.startswith("prev."):
                return "a step cannot refer to its own output; write into $OUT (run:) or its out/"
            if ref.startswith("prev.") and not (in_rounds and target in self.round_steps):
                return "prev. refers to the previous round: both steps must be listed under rounds.steps"
            return None
        if "." in ref and ref.split(".")[0] in self.spec.steps:
            return "a step offers .out (its output directory) or .outs (those of all its branches)"
        if ref in self.params:
            return None
        return (
            f"no parameter or step of that name (parameters: {', '.join(self.params) or 'none'}); "
            "for a shell variable write $NAME or $${NAME}"
        )

    # --- expansion of rounds and matrices ------------------------------------------------

    def instances(self, base: str, rnd: int | None) -> list[_Instance]:
        key = (base, rnd)
        if key not in self.memo:
            self.memo[key] = self._expand(base, rnd)
        return self.memo[key]

    def _of(self, base: str, rnd: int | None, all_rounds: bool = False) -> list[_Instance]:
        """Instances of `base` seen from a step in round `rnd` (None: outside the rounds)."""
        if base not in self.round_steps:
            return self.instances(base, None)
        count = self.spec.rounds.count  # type: ignore[union-attr]
        if rnd is not None:
            return self.instances(base, rnd)
        rounds = range(1, count + 1) if all_rounds else [count]
        return [i for r in rounds for i in self.instances(base, r)]

    def _expand(self, base: str, rnd: int | None) -> list[_Instance]:
        step = self.spec.steps[base]
        refs = self.refs[base]
        gathered = {_step_of(r) for r in refs if r.endswith(".outs") and not r.startswith("prev.")}
        joined = (
            {_step_of(r) for r in refs if r.endswith(".out") and not r.startswith("prev.")}
            | set(step.needs)
        ) - gathered
        prevs = {_step_of(r) for r in refs if r.startswith("prev.")}
        combos: list[tuple[dict[str, Any], dict[str, _Instance]]] = [({}, {})]
        sources = [(d, self._of(d, rnd)) for d in sorted(joined)]
        if rnd is not None and rnd > 1:
            sources += [(f"prev.{d}", self.instances(d, rnd - 1)) for d in sorted(prevs)]
        for dep, options in sources:
            combos = [
                ({**a, **o.assignment}, {**chosen, dep: o})
                for a, chosen in combos
                for o in options
                if _agrees(a, o.assignment)
            ]
        if step.matrix:
            axes = list(step.matrix)
            points = [
                dict(zip(axes, values, strict=True))
                for values in itertools.product(*step.matrix.values())
            ]
            combos = [({**a, **p}, chosen) for a, chosen in combos for p in points if _agrees(a, p)]
        out = []
        for assignment, chosen in combos:
            name = base + (f".r{rnd}" if rnd is not None else "")
            for axis in self.axes_order:
                if axis in assignment:
                    name += f".{axis}={_SAFE.sub('_', _text(assignment[axis]))}"
            inst = _Instance(name, base, rnd, assignment)
            inst.deps = {d: i for d, i in chosen.items() if not d.startswith("prev.")}
            inst.prev = {d: chosen.get(f"prev.{d}") for d in prevs}
            inst.gathered = {d: self._of(d, rnd, all_rounds=True) for d in gathered}
            out.append(inst)
        return out

    # --- resolution into Steps ---------------------------------------------------------------

    def job(self) -> Job:
        self.check_names()
        self.check_refs()
        rounds = range(1, self.spec.rounds.count + 1) if self.spec.rounds else []
        ordered: list[_Instance] = []
        for base in self.order:
            if base in self.round_steps:
                continue
            if any(d in self.round_steps for d in self._all_deps(base)):
                continue
            ordered += self.instances(base, None)
        for r in rounds:
            for base in self.order:
                if base in self.round_steps:
                    ordered += self.instances(base, r)
        for base in self.order:
            if base not in self.round_steps and any(
                d in self.round_steps for d in self._all_deps(base)
            ):
                ordered += self.instances(base, None)
        steps = {inst.name: self._step(inst) for inst in ordered}
        job = Job(self.spec.name, self.located.file, self.params, steps, self.spec.description)
        self._check_job(job)
        return job

    def _all_deps(self, base: str, seen: set[str] | None = None) -> set[str]:
        seen = set() if seen is None else seen
        step = self.spec.steps[base]
        for d in set(step.needs) | {t for r in self.refs[base] if (t := _step_of(r))}:
            if d not in seen:
                seen.add(d)
                self._all_deps(d, seen)
        return seen

    def _step(self, inst: _Instance) -> Step:
        spec = self.spec.steps[inst.base]
        key, values = self._values(spec)
        path = ("steps", inst.base, key)
        cwd = Path.cwd()  # the base of relative paths (arcjobs.steps.inputs)

        def resolve(ref: str) -> Any:
            if ref == "data":
                return "${data}"
            if ref == "round":
                return inst.round
            if ref.startswith("matrix."):
                axis = ref[len("matrix.") :]
                if axis not in inst.assignment:
                    have = ", ".join(inst.assignment) or "none"
                    raise UnknownRef(
                        f"${{{ref}}}: this step has no matrix axis {axis!r} (its axes: {have})"
                    )
                return inst.assignment[axis]
            target = _step_of(ref)
            if ref.startswith("prev."):
                prev = inst.prev.get(target)
                return None if prev is None else f"${{{prev.name}.out}}"
            if ref.endswith(".outs"):
                return [f"${{{i.name}.out}}" for i in inst.gathered[target]]
            if target is not None:
                return f"${{{inst.deps[target].name}.out}}"
            return self.params[ref]

        try:
            rendered = render(values, resolve, null_as_empty=spec.run is not None)
        except UnknownRef as e:
            raise self.err(path, str(e)) from None
        kind_name = spec.uses or "run"
        kind = get_kind(kind_name)
        given = (
            {"command": rendered}
            if spec.run is not None
            else absolute(kind.params, {k: v for k, v in rendered.items() if v is not None}, cwd)
        )
        try:
            validated = kind.params.model_validate(given)
        except ValidationError as e:
            err = first_error(e)
            loc = tuple(err["loc"])
            argument = self.overrides.argument(inst.base, str(loc[0])) if loc else None
            if argument is not None:
                raise UserError(f"--set {argument}: {describe(err, kind.params)}") from None
            prefix = ("steps", inst.base) if spec.run is not None else path
            loc = () if spec.run is not None else tuple(err["loc"])
            raise _error_at(self.located, prefix, loc, describe(err, kind.params)) from None
        needs = {i.name for i in inst.deps.values()} | {p.name for p in inst.prev.values() if p}
        needs |= {i.name for group in inst.gathered.values() for i in group}
        image = spec.image or kind.image
        res = {
            **kind.resources,
            **{k: getattr(spec.resources, k) for k in spec.resources.model_fields_set},
        }

        def mb(key: str) -> int | None:
            return memory_mb(res[key]) if res.get(key) is not None else None

        resources = Resources(
            gpus=res.get("gpus", 0),
            cpus=res.get("cpus", 1),
            memory_mb=mb("memory"),
            gpu_memory_mb=mb("gpu_memory"),
            gpu_capability=res.get("gpu_capability"),
            requirements=res.get("requirements"),
        )
        if resources.gpus and image == "sandbox":
            raise self.err(
                ("steps", inst.base, "resources", "gpus"),
                "the sandbox image has no GPU support; use image train or infer, or gpus: 0",
            )
        return Step(
            name=inst.name,
            base=inst.base,
            kind=kind_name,
            params=given,
            full_params=validated.model_dump(mode="json"),
            needs=tuple(sorted(needs)),
            image=image,
            resources=resources,
            round=inst.round,
            matrix=dict(inst.assignment),
            retries=spec.retries,
            description=spec.description,
            gpus_line=self.located.line(("steps", inst.base, "resources", "gpus")),
            lines={k: self.located.line((*path, k)) for k in kind.params.model_fields},
        )

    def _check_job(self, job: Job) -> None:
        for kind_name in sorted({s.kind for s in job.steps.values()}):
            check = get_kind(kind_name).check_job
            for step_name, key, message in check(job) if check else []:
                base = job.steps[step_name].base if step_name in job.steps else step_name
                argument = self.overrides.argument(base, key.split(".")[0])
                if argument is not None:
                    raise UserError(f"--set {argument}: {message}")
                raise self.err(("steps", base, "with", *key.split(".")), message)


def _step_of(ref: str) -> str | None:
    """The step a reference points at (`search.out`, `prev.learn.out`, `x.outs`), else None."""
    body = ref[len("prev.") :] if ref.startswith("prev.") else ref
    for suffix in (".outs", ".out"):
        if body.endswith(suffix) and len(body) > len(suffix):
            return body[: -len(suffix)]
    return None


def _agrees(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == v for k, v in b.items() if k in a)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
