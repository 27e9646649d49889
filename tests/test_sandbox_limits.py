"""Limits: validated on construction, and applied as hard limits in a real forked process."""

from __future__ import annotations

import json
import os
import resource

import pytest

from arcjobs.sandbox.limits import Limits, apply

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"timeout_s": -1}, {"memory_mb": 8}])
def test_nonsense_limits_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_applied_limits_are_hard_and_on_top_of_the_base() -> None:
    """Forks a child (this process's limits must stay untouched) and reads its rlimits back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            apply(Limits(timeout_s=1.5, memory_mb=100, max_procs=7, file_mb=2), base_vm=10 * 2**20)
            names = (
                "RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
                "RLIMIT_CORE",
            )  # fmt: skip
            os.write(
                w, json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in names}).encode()
            )
        finally:
            os._exit(0)
    os.close(w)
    got = json.loads(os.read(r, 4096))
    os.close(r)
    os.waitpid(pid, 0)
    assert got["RLIMIT_CPU"] == [2, 3]
    assert got["RLIMIT_AS"] == [110 * 2**20] * 2
    assert got["RLIMIT_FSIZE"] == [2 * 2**20] * 2
    assert got["RLIMIT_NOFILE"] == [64, 64]
    assert got["RLIMIT_NPROC"] == [7, 7]
    assert got["RLIMIT_CORE"] == [0, 0]
    assert resource.getrlimit(resource.RLIMIT_NPROC) != (7, 7)
