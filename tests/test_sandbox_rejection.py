"""The seed study's static rejection list, as the execute step applies it."""

from __future__ import annotations

import pytest
from sandbox_helpers import benign, tiny_task

from arcjobs.sandbox import Limits, Program, execute
from arcjobs.sandbox.rejection import study

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("import random\ndef transform(g):\n    return g\n", "mentions random"),
        ("# no randomness here\ndef transform(g):\n    return g\n", "mentions random"),
        ("import time\ndef transform(g):\n    return g\n", "uses the module time"),
        ("def transform(g):\n    x = time.time()\n    return g\n", "uses the module time"),
        ("def transform(g):\n    open('x')\n    return g\n", "calls open()"),
        ("def transform(g):\n    return eval('g')\n", "calls eval()"),
        ("from datetime import date\nimport datetime\n", "uses the module datetime"),
    ],
)
def test_what_the_study_refuses(source: str, why: str) -> None:
    assert why in study(source)


@pytest.mark.parametrize(
    "source",
    [
        benign("x"),
        # the study drops print lines (and the common import) before it checks
        "from common import *\ndef transform(g):\n    print(open)\n    return g\n",
        "def transform(g):\n    timeline = g\n    return timeline\n",  # 'time' but not 'time.'
    ],
)
def test_what_the_study_runs(source: str) -> None:
    assert study(source) is None


def test_the_execute_path_refuses_unrun_and_keeps_the_rest() -> None:
    programs = [
        Program("tiny", 0, benign("kept")),
        Program("tiny", 1, "import random\ndef transform(g):\n    return g\n"),
    ]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=2), workers=1, reject="study")
    kept, refused = sorted(run, key=lambda r: r.index)
    assert kept.status == "ok"
    assert refused.status == "unsafe"
    assert refused.error == "refused by the study policy: mentions random (not deterministic)"
    assert run.stats["refused"] == 1 and run.stats["executed"] == 1
