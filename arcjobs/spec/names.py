"""Step names, parsed back and put in the order the work flows.

`arcjobs.spec.loader` names expanded steps `<base>[.r<k>][.<axis>=<value>...]`; `status` and
the report read the round and the branch back from those names and list steps by the DAG
(run.json keeps them sorted by name, which puts `evaluate` before `execute` and round 10
before round 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# `<base>[.r<k>][.<axis>=<value>...]`, the names `arcjobs.spec.loader` gives expanded steps.
_STEP_NAME = re.compile(r"^(?P<base>[^.]+)(?:\.r(?P<round>\d+))?(?P<branch>(?:\..*)?)$")
_AXIS = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)=(.*?)(?=\.[A-Za-z_][A-Za-z0-9_-]*=|$)")


@dataclass(frozen=True)
class StepName:
    """A step name split into the job's step, its round and its matrix branch."""

    base: str
    round: int | None
    branch: tuple[tuple[str, str], ...]

    @property
    def branch_label(self) -> str:
        return ",".join(f"{axis}={value}" for axis, value in self.branch)

    @property
    def stage(self) -> str:
        """The name without the branch: what lines up across branches and runs."""
        return self.base + (f".r{self.round}" if self.round is not None else "")


def parse_step_name(name: str) -> StepName:
    m = _STEP_NAME.match(name)
    if m is None:  # only a name starting with "." (no job file makes one)
        return StepName(name, None, ())
    branch = tuple(_AXIS.findall(m.group("branch")))
    rnd = m.group("round")
    return StepName(m.group("base"), int(rnd) if rnd is not None else None, branch)


def _natural(name: str) -> list[Any]:
    """Sort key reading digit runs as numbers, so evaluate.r2 comes before evaluate.r10."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)
    ]


def step_order(steps: dict[str, dict[str, Any]]) -> list[str]:
    """Step names in the order the work flows: by depth in the DAG (`needs`), then round,
    then name. run.json stores its steps sorted by name, which would put `evaluate` before
    `eval_more` before `execute`, and round 10 before round 2."""
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            needs = [
                n for n in steps.get(name, {}).get("needs", []) if n in steps and n not in seen
            ]
            depth[name] = 1 + max((depth_of(n, seen | {name}) for n in needs), default=-1)
        return depth[name]

    def key(name: str) -> tuple[int, int, list[Any]]:
        return depth_of(name), parse_step_name(name).round or 0, _natural(name)

    return sorted(steps, key=key)
