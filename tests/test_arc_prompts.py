"""The BARC prompt text, pinned byte for byte on a small hand-made task, and code extraction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.prompts import (
    ASSISTANT_PREFIX,
    SYSTEM_PROMPT,
    assistant_message,
    build_messages,
    extract_code,
)
from arcjobs.arc.tasks import Task

pytestmark = pytest.mark.unit

TASK = Task(
    task_id="tiny",
    train=[
        (np.array([[0, 1], [2, 3]]), np.array([[4, 5, 6]])),
        (np.array([[7]]), np.array([[8], [9]])),
    ],
    test_inputs=[np.array([[1, 1]]), np.array([[5, 0], [0, 5]])],
)

EXPECTED_USER = """\
Given input-output grid pairs as reference examples, carefully observe the patterns to predict the output grid for new test input. Each pair follows the same transformation rule. Grids are 2D arrays represented as strings, with cells (colors) separated by spaces and rows by newlines.
Here are the input and output grids for the reference examples:
Example 1
Input:
Black Blue
Red Green

Output:
Yellow Gray Pink


Example 2
Input:
Orange

Output:
Purple
Brown


Here is the input grid for the test example:
Input:
Gray Black
Black Gray

Write a Python function `transform` that can convert any given input grid to its corresponding output grid based on the pattern observed in the reference examples."""


def test_exact_prompt_text() -> None:
    messages = build_messages(TASK, test_index=1)
    assert messages == [
        {
            "role": "system",
            "content": "You are a world-class puzzle solver with exceptional pattern recognition skills and expertise in Python programming. Your task is to analyze puzzles and provide Python solutions.",
        },
        {"role": "user", "content": EXPECTED_USER},
    ]
    assert messages[0]["content"] == SYSTEM_PROMPT


def test_assistant_prefix_text() -> None:
    assert ASSISTANT_PREFIX == (
        "Let's solve this puzzle using Python code with the common library functions. We'll first reason about the problem and then write the code to solve it. The `transform` function will take the input grid and return the output grid. Here is the Python code with the comments describing how to solve the problem:"
    )
    msg = assistant_message("def transform(g):\n    return g")
    assert msg["content"] == ASSISTANT_PREFIX + "\n```python\ndef transform(g):\n    return g\n```"


def test_shuffle_and_augmentation() -> None:
    plain = build_messages(TASK)[1]["content"]
    assert "Input:\nBlue Blue\n" in plain
    orders = {build_messages(TASK, shuffle_seed=s)[1]["content"] for s in range(20)}
    assert plain in orders and len(orders) == 2  # two train pairs: both orders over 20 seeds
    swapped = next(o for o in orders if o != plain)
    assert swapped.index("Input:\nOrange") < swapped.index("Input:\nBlack Blue")
    assert build_messages(TASK, shuffle_seed=3) == build_messages(TASK, shuffle_seed=3)
    swap = Augmentation(0, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    aug = build_messages(TASK, augmentation=swap)[1]["content"]
    assert "Input:\nRed Red\n" in aug and "Black Red\nBlue Green" in aug


def test_bad_test_index() -> None:
    with pytest.raises(IndexError, match="2 test inputs"):
        build_messages(TASK, test_index=2)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Sure\n```python\nx = 1\n```\ntrailing", "x = 1"),
        ("```python\nx = 1\n```\n```python\ny = 2\n```", "x = 1"),  # the first block
        ("prefix\n```python\nx = 1\nwhile True:", "x = 1\nwhile True:"),  # cut at the token limit
        ("no code here", None),
        ("```python\n\n```", None),
    ],
)
def test_extract_code(text: str, code: str | None) -> None:
    assert extract_code(text) == code


@given(
    st.text(alphabet=st.characters(blacklist_characters="`"), min_size=1)
    .map(str.strip)
    .filter(bool)
)
def test_extract_code_round_trips_assistant_message(code: str) -> None:
    assert extract_code(assistant_message(code)["content"]) == code
