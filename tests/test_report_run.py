"""`arcjobs report` on a run the real launcher made: `arcjobs run` of a two-round job of
real execute (sandbox) and evaluate steps on the local backend, then the report of it —
so the report reads run.json, manifests and outputs exactly as the engine writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import arcjobs

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"


def test_report_of_a_launcher_run(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    job = FIXTURES / "report" / "rounds.yaml"
    proc = arcjobs(
        "run", job, "--data-root", data_root, "--run-id", "rr", "--set", f"fixtures={FIXTURES}"
    )
    assert proc.returncode == 0, proc.stderr
    proc = arcjobs("report", "rr", "--data-root", data_root)
    assert proc.returncode == 0, proc.stderr
    md = (Path(proc.stdout.strip()).parent / "report.md").read_text()
    # steps in DAG order (run.json stores them sorted by name), rounds on one line
    assert md.index("| execute.r1 | execute | succeeded |") < md.index(
        "| evaluate.r1 | evaluate | succeeded |"
    )
    assert "| rr | evaluate.r1 | 0.333 | 0.333 |" in md
    assert "| rr | evaluate.r2 | 0.667 | 0.667 |" in md
    assert "| evaluate.r2 | 2 / 3 | 1 | uniform | – |" in md
    assert "### uniform — newly solved by evaluate.r2" in md
    # a few trivial programs in a fraction of a second: no programs/s to read into
    assert "programs_per_s" not in md and "Rates are given for steps of 10 s or more." in md
