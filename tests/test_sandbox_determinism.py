"""Same programs, same inputs → same results, whatever the order, batch size or worker count,
and the same as before every program got a fresh locked-down process (a recorded run).

Programs here lean on everything that could leak nondeterminism: `random`, `numpy.random`,
string hashing and set order, plus the real corpus programs on their ARC tasks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sandbox_helpers import tiny_task

from arcjobs.arc.tasks import load_dataset
from arcjobs.sandbox import Limits, Program, execute

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "arcjobs" / "sandbox" / "corpus"
RECORDED = Path(__file__).resolve().parent / "fixtures" / "sandbox" / "corpus_executions.jsonl"
RANDOM_PROGRAMS = [
    "import random\nimport numpy as np\ndef transform(g):\n    return np.array([[random.randint(0, 9) for _ in range(5)]])\n",
    "import numpy as np\ndef transform(g):\n    return np.random.randint(0, 10, size=(3, 4))\n",
    "from common import *\ndef transform(g):\n    return random_sprite(4, 4, color_palette=[Color.RED, Color.BLUE])\n",
    "def transform(g):\n    return [[hash('arc') % 10, hash(('a', 1)) % 10]]\n",
    "def transform(g):\n    return [[len(c) % 10 for c in {'x', 'yy', 'zzz', 'w'}]]\n",
    "import numpy as np\ndef transform(g):\n    rng = np.random.default_rng()\n    return [[int(rng.integers(10))]]\n",
]


@pytest.fixture(scope="module")
def batch() -> tuple[list[Program], dict]:
    ids = sorted(p.stem for p in CORPUS.glob("*.py"))[:8]
    tasks = load_dataset("arc-agi-1/training", task_ids=ids)
    tasks["tiny"] = tiny_task()
    programs = [Program(t, "corpus", (CORPUS / f"{t}.py").read_text()) for t in ids]
    programs += [Program("tiny", i, code) for i, code in enumerate(RANDOM_PROGRAMS)]
    programs += [
        Program(
            ids[0],
            "aug",
            (CORPUS / f"{ids[0]}.py").read_text(),
            {"dihedral": 5, "colors": [0, 3, 1, 2, 4, 5, 6, 7, 8, 9]},
        )
    ]
    return programs, tasks


def records(programs: list[Program], tasks: dict, workers: int = 1, pool=None) -> dict:
    run = execute(programs, tasks, Limits(timeout_s=5), workers=workers, pool=pool)
    found = {(r.program.task_id, r.program.sample_id): r.record() for r in run}
    if pool is not None:
        assert run.summary()["workers"] == pool.size
    return found


def test_any_order_batch_size_and_worker_count(batch) -> None:
    programs, tasks = batch
    reference = records(programs, tasks, workers=1)
    assert all(r["status"] == "ok" for r in reference.values()), reference
    assert records(programs[::-1], tasks, workers=2) == reference
    split: dict = {}
    for start in range(0, len(programs), 3):
        split.update(records(programs[start : start + 3], tasks, workers=2))
    assert split == reference


def test_the_corpus_gives_the_executions_recorded_before_the_kernel_layers() -> None:
    """The fixture holds what the sandbox of EXECUTOR_VERSION 5 (pure programs sharing a
    process, no Landlock or seccomp) gave for every corpus program on its task, plain and
    under two augmentations, and for the random programs: status, error, the outputs'
    fingerprint and the scores. The kernel layers must change none of it."""
    recorded = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    ids = sorted(p.stem for p in CORPUS.glob("*.py"))
    tasks = load_dataset("arc-agi-1/training", task_ids=ids)
    tasks["tiny"] = tiny_task()
    augs = [{"dihedral": k, "colors": [0] + [(c + k) % 9 + 1 for c in range(9)]} for k in (1, 2)]
    programs = [Program(t, "corpus", (CORPUS / f"{t}.py").read_text()) for t in ids]
    programs += [
        Program(t, f"aug{i}", (CORPUS / f"{t}.py").read_text(), a)
        for t in ids
        for i, a in enumerate(augs)
    ]
    programs += [Program("tiny", i, code) for i, code in enumerate(RANDOM_PROGRAMS)]
    got = [
        {key: r.record()[key] for key in recorded[0]}
        for r in execute(programs, tasks, Limits(timeout_s=5), workers=2)
    ]
    order = lambda r: (r["task_id"], str(r["sample_id"]))  # noqa: E731
    assert sorted(got, key=order) == recorded


def test_seeds_differ_between_programs_and_tasks(batch) -> None:
    """Seeding is per program and task: a fixed global seed would give every sample the same draw."""
    _, tasks = batch
    code = RANDOM_PROGRAMS[1]
    other_task = tiny_task("tiny2")
    other_task.train[0][0][0, 0] = 5  # different inputs, so a different seed
    results = {
        (r.program.task_id, r.program.sample_id): r.train_outputs
        for r in execute(
            [
                Program("tiny", 0, code),
                Program("tiny", 1, code + "# variant\n"),
                Program("tiny2", 0, code),
            ],
            {"tiny": tasks["tiny"], "tiny2": other_task},
            workers=1,
        )
    }
    assert len({str(v) for v in results.values()}) == 3


def test_batches_through_one_running_pool_match_a_pool_per_batch(batch) -> None:
    """A caller with many batches may keep one pool: it is started once, left running by
    every batch, and changes no result."""
    from arcjobs.sandbox.dsl import DSL_PATH
    from arcjobs.sandbox.pool import Pool

    programs, tasks = batch
    reference = records(programs, tasks, workers=1)
    got: dict = {}
    with Pool(2, str(DSL_PATH)) as pool:
        for start in range(0, len(programs), 4):
            got.update(records(programs[start : start + 4], tasks, pool=pool))
        assert pool.size == 2 and pool.spawned == 2
        assert all(w.proc.poll() is None for w in pool.workers)
    assert got == reference
