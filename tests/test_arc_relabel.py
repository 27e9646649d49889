"""Hindsight relabelling: every sample's prompt shows outputs its own program reproduces,
duplicates collapse to the shortest program, and selection follows train evidence.

The property test plays the execute step itself with plain `exec` (the real sandbox is
another module's concern): it augments the task, runs the program on the augmented inputs
and maps the outputs back, exactly as executions.jsonl records them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.executions import Execution, read_executions
from arcjobs.arc.grids import grid_to_list
from arcjobs.arc.prompts import COLOR_NAMES, extract_code
from arcjobs.arc.relabel import Options, relabel
from arcjobs.arc.tasks import Task, load_dataset

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "arc"
PROGRAMS = [
    "np.rot90(input_grid)",
    "input_grid.T",
    "np.where(input_grid == 1, 2, input_grid)",
    "input_grid[:1]",
    "np.tile(input_grid, (1, 2))[:, :30]",
    "np.flipud(input_grid) * 0 + input_grid.max()",
]


def program(body: str) -> str:
    return f"import numpy as np\n\ndef transform(input_grid):\n    return {body}"


def run(code: str, grid: np.ndarray) -> np.ndarray:
    namespace: dict = {}
    exec(code, namespace)
    return np.asarray(namespace["transform"](np.array(grid)), dtype=np.int64)


def parse_text_grid(text: str) -> np.ndarray:
    return np.array([[COLOR_NAMES.index(c) for c in row.split(" ")] for row in text.split("\n")])


def prompt_pairs(user: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    pairs = re.findall(r"Input:\n(.*?)\n\nOutput:\n(.*?)\n\n\n", user, re.DOTALL)
    test = re.search(r"test example:\nInput:\n(.*?)\n\nWrite", user, re.DOTALL)
    assert pairs and test
    return [(parse_text_grid(i), parse_text_grid(o)) for i, o in pairs], parse_text_grid(test[1])


grids = st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda s: arrays(np.int64, s, elements=st.integers(0, 9))
)
tasks = st.builds(
    lambda train, tests: Task("t", [(g, g) for g in train], tests),
    st.lists(grids, min_size=1, max_size=3),
    st.lists(grids, min_size=1, max_size=2),
)
augmentations = st.builds(Augmentation, st.integers(0, 7), st.permutations(range(10)).map(tuple))


def execute(task: Task, code: str, aug: Augmentation, test_index: int = 0) -> Execution:
    """What the execute step records: outputs on the augmented task, mapped back."""
    seen = aug.apply_task(task)
    back = [grid_to_list(aug.invert(run(code, x))) for x, _ in seen.train]
    test = [grid_to_list(aug.invert(run(code, x))) for x in seen.test_inputs]
    return Execution("t", 0, "ok", code, aug, test_index, back, test)


@settings(max_examples=150, deadline=None)
@given(tasks, augmentations, st.sampled_from(PROGRAMS), st.data())
def test_relabelled_sample_is_solved_by_its_program(task, aug, body, data) -> None:
    code = program(body)
    test_index = data.draw(st.integers(0, len(task.test_inputs) - 1))
    samples, stats, _ = relabel({"t": task}, [execute(task, code, aug, test_index)], Options())
    assert stats["samples"] == 1
    s = samples[0]
    assert [m["role"] for m in s["prompt"]] == ["system", "user"]
    completion = s["completion"][0]
    assert completion["role"] == "assistant" and extract_code(completion["content"]) == code
    pairs, test_input = prompt_pairs(s["prompt"][1]["content"])
    assert len(pairs) == len(task.train)
    for x, y in pairs:
        assert np.array_equal(run(code, x), y)  # the program reproduces every shown output
    assert np.array_equal(test_input, aug.apply(task.test_inputs[test_index]))


@pytest.fixture(scope="module")
def fixture_data():
    tasks = load_dataset(
        str(FIXTURES / "challenges.json"), solutions=str(FIXTURES / "solutions.json")
    )
    return tasks, list(read_executions(str(FIXTURES / "executions.jsonl"), tasks, "fixture"))


def ids(samples) -> list[tuple[str, str]]:
    return [(s["sample_id"], s["source"]) for s in samples]


def test_dedupe_rank_and_sources(fixture_data) -> None:
    samples, stats, _ = relabel(*fixture_data, Options())
    # twotest: s1 and s2 behave the same -> s1 (shorter) kept; train-perfect s3, s1, s0 in
    # order of code length, then the identity s4; uniform: only u0 produced valid grids.
    assert ids(samples) == [
        ("twotest:3", "correct"),
        ("twotest:1", "correct"),
        ("twotest:0", "correct"),
        ("twotest:4", "relabelled"),
        ("uniform:0", "relabelled"),
    ]
    assert stats["samples_per_task"] == {"nopred": 0, "twotest": 4, "uniform": 1}
    assert stats["predictions"] == 10 and stats["usable_predictions"] == 6
    assert stats["unique_behaviours"] == 5 and stats["solved_tasks"] == 1
    assert stats["fraction_correct"] == pytest.approx(3 / 5)


def test_options(fixture_data) -> None:
    top2, _, _ = relabel(*fixture_data, Options(per_task=2))
    assert ids(top2) == [
        ("twotest:3", "correct"),
        ("twotest:1", "correct"),
        ("uniform:0", "relabelled"),
    ]
    unsolved, stats, _ = relabel(*fixture_data, Options(keep_solved=False))
    assert ids(unsolved) == [("uniform:0", "relabelled")] and stats["dropped_solved_tasks"] == 1
    plain, _, _ = relabel(*fixture_data, Options(augment=False))
    assert "twotest:0" not in {s["sample_id"] for s in plain}  # s0 ran on an augmented task


def test_relabelled_prompt_uses_the_programs_frame(fixture_data) -> None:
    samples, _, _ = relabel(*fixture_data, Options())
    s0 = next(s for s in samples if s["sample_id"] == "twotest:0")
    pairs, _ = prompt_pairs(s0["prompt"][1]["content"])
    aug = Augmentation(3)
    assert np.array_equal(pairs[1][0], aug.apply(np.array([[0, 1], [1, 1]])))
    assert np.array_equal(pairs[1][1], aug.apply(np.array([[0, 2], [2, 2]])))
