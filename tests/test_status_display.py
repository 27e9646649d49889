"""`arcjobs status` as a person reads it at 80 columns: steps in the order the work flows,
rounds and branches visible, notes in plain words, ids never cut."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import arcjobs

pytestmark = pytest.mark.integration

ROUNDS = """\
name: rounds
rounds: {count: 2, steps: [draw, score]}
steps:
  draw:
    matrix: {learning_rate_of_the_sweep: [0.0001, 0.0002]}
    run: echo ${matrix.learning_rate_of_the_sweep} ${prev.score.out} > $OUT/x
  score:
    run: cat ${draw.out}/x > $OUT/y
  summary:
    run: ls ${score.outs} > $OUT/all
"""
RUN_ID = "rounds-with-a-rather-long-identifier-2026-12-06-0001"
WIDE = {"COLUMNS": "80"}


def test_status_at_80_columns(tmp_path: Path) -> None:
    job = tmp_path / "rounds.yaml"
    job.write_text(ROUNDS)
    data = tmp_path / "data"
    arcjobs("run", job, "--run-id", RUN_ID, "--data-root", data, check=True)

    steps = arcjobs("status", RUN_ID, "--data-root", data, env=WIDE, check=True).stdout
    lines = steps.splitlines()
    assert max(map(len, lines)) <= 80, steps
    assert lines[0] == f"run {RUN_ID} succeeded"
    rows = [line.split() for line in lines if re.match(r"^\s*(draw|score|summary)\b", line)]
    # run.json keeps steps sorted by name (draw.r1, draw.r2, score.r1, ...): shown as they ran
    assert [row[0] for row in rows] == [
        "draw.r1", "draw.r1", "score.r1", "score.r1",
        "draw.r2", "draw.r2", "score.r2", "score.r2",
        "summary",
    ]  # fmt: skip
    assert [row[1] for row in rows[:2]] == [
        "learning_rate_of_the_sweep=0.0001",
        "learning_rate_of_the_sweep=0.0002",
    ]
    # a rule (a blank line in this table style) where the round changes
    first_of_round_2 = next(i for i, x in enumerate(lines) if x.lstrip().startswith("draw.r2"))
    assert lines[first_of_round_2 - 1].strip() == ""
    # the planner's reason, read after the fact: plain words, no "runs: upstream x runs"
    assert "first run:" in steps and "runs:" not in steps

    runs = arcjobs("status", "--data-root", data, env=WIDE, check=True).stdout
    assert max(map(len, runs.splitlines())) <= 80, runs
    assert any(line.split()[:1] == [RUN_ID] for line in runs.splitlines()), runs
    assert "…" not in runs + steps
