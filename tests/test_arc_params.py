"""The dataset parameters shared by evaluate and relabel, parsed as `arcjobs step` parses them."""

from __future__ import annotations

import pytest

from arcjobs.errors import UserError
from arcjobs.step_args import format_params, parse_params
from arcjobs.steps import get_kind

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("007bbfb7,00d62c1b", ["007bbfb7", "00d62c1b"]),
        ("[007bbfb7, 32597951]", ["007bbfb7", "32597951"]),
        ('["00576224"]', ["00576224"]),  # what the launcher writes for a YAML list
        ("32597951", ["32597951"]),  # all digits stays text, not a number
    ],
)
def test_task_ids_from_the_command_line(text: str, ids: list[str]) -> None:
    params = parse_params(
        get_kind("evaluate").params, ["--dataset", "d", "--executions", "e", "--task-ids", text]
    )
    assert params.task_ids == ids


def test_launcher_round_trip() -> None:
    cls = get_kind("relabel").params
    values = {"dataset": "d", "executions": ["e"], "task_ids": ["00576224", "a"], "per_task": 4}
    assert parse_params(cls, format_params(values)).model_dump(exclude_defaults=True) == values


def test_numeric_task_ids_from_yaml_are_refused() -> None:
    cls = get_kind("relabel").params
    with pytest.raises(ValueError, match="must be quoted text"):
        cls.model_validate({"dataset": "d", "executions": "e", "task_ids": [195732]})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pass-k", "[0, 2]"], "--pass-k.0"),
        (["--limit", "-1"], "--limit"),
        (["--shuffle", "1"], "unknown parameter --shuffle"),
    ],
)
def test_bad_params(argv: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_params(get_kind("evaluate").params, ["--dataset", "d", "--executions", "e", *argv])
