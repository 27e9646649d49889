"""The BARC induction prompt, exactly as the model was trained on it (see docs / BARC.md).

The model's accuracy depends on this text byte for byte: colour names, the blank line after
every grid, "Example {i}" headers, one test input per prompt. `build_messages` is the single
place that turns (task, test index, augmentation, shuffle seed) into chat messages; the infer
step, the relabel step and `arcjobs prompt` all call it, so what the model sees in sampling,
in training and on a researcher's screen is the same.
"""

from __future__ import annotations

import re

import numpy as np

from arcjobs.arc.augment import Augmentation
from arcjobs.arc.tasks import Task

COLOR_NAMES = (
    "Black",
    "Blue",
    "Red",
    "Green",
    "Yellow",
    "Gray",
    "Pink",
    "Orange",
    "Purple",
    "Brown",
)

SYSTEM_PROMPT = (
    "You are a world-class puzzle solver with exceptional pattern recognition skills and "
    "expertise in Python programming. Your task is to analyze puzzles and provide Python solutions."
)
INTRO = (
    "Given input-output grid pairs as reference examples, carefully observe the patterns to "
    "predict the output grid for new test input. Each pair follows the same transformation "
    "rule. Grids are 2D arrays represented as strings, with cells (colors) separated by spaces "
    "and rows by newlines."
)
INSTRUCTION = (
    "Write a Python function `transform` that can convert any given input grid to its "
    "corresponding output grid based on the pattern observed in the reference examples."
)
# Every trained answer starts with this sentence; pre-filling it saves tokens.
ASSISTANT_PREFIX = (
    "Let's solve this puzzle using Python code with the common library functions. We'll first "
    "reason about the problem and then write the code to solve it. The `transform` function "
    "will take the input grid and return the output grid. Here is the Python code with the "
    "comments describing how to solve the problem:"
)

Message = dict[str, str]
_CODE = re.compile(r"```python[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def grid_to_text(grid: np.ndarray) -> str:
    """One line per row, colour names separated by spaces, plus the trailing extra newline."""
    return "\n".join(" ".join(COLOR_NAMES[int(c)] for c in row) for row in grid) + "\n"


def user_prompt(train: list[tuple[np.ndarray, np.ndarray]], test_input: np.ndarray) -> str:
    """The user message for these train pairs (in this order) and one test input."""
    parts = [INTRO, "\nHere are the input and output grids for the reference examples:\n"]
    for i, (x, y) in enumerate(train, start=1):
        parts.append(f"Example {i}\nInput:\n{grid_to_text(x)}\nOutput:\n{grid_to_text(y)}\n\n")
    parts.append(
        "Here is the input grid for the test example:\nInput:\n" + grid_to_text(test_input)
    )
    parts.append("\n" + INSTRUCTION)
    return "".join(parts)


def build_messages(
    task: Task,
    test_index: int = 0,
    augmentation: Augmentation | None = None,
    shuffle_seed: int | None = None,
) -> list[Message]:
    """[system, user] messages for one test input of `task`.

    The augmentation (if any) is applied to every grid first; then, with a shuffle seed,
    the train pairs are permuted by `np.random.default_rng(shuffle_seed)`. Without either,
    the prompt shows the task exactly as stored.
    """
    if not 0 <= test_index < len(task.test_inputs):
        raise IndexError(
            f"task {task.task_id} has {len(task.test_inputs)} test inputs, not {test_index + 1}"
        )
    if augmentation is not None:
        task = augmentation.apply_task(task)
    train = list(task.train)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(train))
        train = [train[i] for i in order]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(train, task.test_inputs[test_index])},
    ]


def assistant_message(code: str) -> Message:
    """The assistant answer the model was trained to give for a program `code`."""
    return {"role": "assistant", "content": f"{ASSISTANT_PREFIX}\n```python\n{code}\n```"}


def extract_code(completion_text: str) -> str | None:
    """The program in an assistant answer: text after the first ```python fence, up to the next
    fence (or the end, when generation stopped at the token limit). None when there is none.

    Pass the whole assistant message, i.e. including a pre-filled prefix if one was used.
    """
    match = _CODE.search(completion_text)
    if match is None:
        return None
    code = match.group(1).strip("\n").rstrip()
    return code or None
