"""The words `run.json` uses for where a step and a run stand, and the groups the engine and
the commands test for. Every status written to or compared with run.json is one of these
`Literal`s, so a type checker catches a misspelt one.

A step's life:
- `pending` → `running` → `succeeded` | `failed` (a step the engine starts itself);
- `pending` → `queued` → `running` → ... (handed to a whole-DAG scheduler first);
- `succeeded` | `reused` from the start when planning found it complete or published elsewhere;
- `skipped` when a step it needs did not succeed, `cancelled` on SIGINT/SIGTERM or `cancel`.
"""

from __future__ import annotations

from typing import Literal

StepState = Literal[
    "pending", "queued", "running", "succeeded", "reused", "failed", "skipped", "cancelled"
]
# `interrupted` is never written: `status` shows it for a run whose launcher died.
RunState = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]

DONE: frozenset[StepState] = frozenset({"succeeded", "reused"})  # out/ published
LIVE: frozenset[StepState] = frozenset({"queued", "running"})  # a backend holds it
WAITING: frozenset[StepState] = frozenset({"pending", "queued"})  # not started yet
BLOCKING: frozenset[StepState] = frozenset({"failed", "skipped", "cancelled"})  # dependants skip
TERMINAL: frozenset[StepState] = DONE | BLOCKING
