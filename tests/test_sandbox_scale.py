"""10,000 programs, 1 % crashing and 2 % hanging: every result arrives, nothing leaks.

Real workers, real crashes (SIGSEGV, os._exit) and real timeouts; the timeout is short so
the whole batch takes a minute or two on two cores.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sandbox_helpers import GRID_IN, GRID_TEST, benign_answer, leftovers, tiny_task

from arcjobs.sandbox import Limits, Program, execute

pytestmark = pytest.mark.integration

N = 10_000
OK = "def transform(g):\n    return g.T  # {i}\n"
CRASHES = (
    "import faulthandler\ndef transform(g):\n    faulthandler._sigsegv()  # {i}\n",
    "import os\ndef transform(g):\n    os._exit(3)  # {i}\n",
)
HANG = "def transform(g):\n    while True:\n        pass  # {i}\n"


def program(i: int) -> tuple[str, str]:
    if i % 100 == 7:
        return "crash", CRASHES[i % 2].format(i=i)
    if i % 50 == 3:
        return "timeout", HANG.format(i=i)
    return "ok", OK.format(i=i)


def test_ten_thousand_programs_nothing_lost_nothing_leaked() -> None:
    before = leftovers()
    expected = {i: program(i)[0] for i in range(N)}
    programs = [Program("tiny", i, program(i)[1]) for i in range(N)]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=0.3, memory_mb=128), workers=2)
    seen = Counter()
    transposed = (np.array(GRID_IN).T.tolist(), np.array(GRID_TEST).T.tolist())
    for r in run:
        seen[r.index] += 1
        assert r.status == expected[r.index], (r.index, r.status, r.error)
        if r.status == "ok":
            assert (r.train_outputs[0], r.test_outputs[0]) == transposed
    assert len(seen) == N and set(seen.values()) == {1}
    assert run.summary()["counts"] == {
        "ok": 9700, "syntax_error": 0, "runtime_error": 0, "timeout": 200,
        "memory": 0, "invalid_output": 0, "unsafe": 0, "crash": 100,
    }  # fmt: skip
    assert leftovers() == before
    assert benign_answer(GRID_IN)  # the helper task is intact
