"""The parity job: what a backend must compute byte for byte as the local backend does.

Four ARC-AGI-1 tasks and four programs (two that solve their task, one that answers wrongly so
that relabelling has work, one that crashes) through `programs`, `execute`, `relabel`,
`evaluate` and a `run:` step: outputs that would differ between hosts if anything leaked in.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "arcjobs" / "sandbox" / "corpus"
TASKS = "0d3d703e,25ff71a9,3c9b0459,c8f0f002"
PROGRAMS = {
    "0d3d703e": (CORPUS / "0d3d703e.py").read_text(),
    "3c9b0459": (CORPUS / "3c9b0459.py").read_text(),
    "25ff71a9": "from common import *\n\ndef transform(input_grid):\n    return input_grid\n",
    "c8f0f002": "def transform(input_grid):\n    return input_grid[99][99]\n",
}
JOB = f"""
name: parity
params:
  dataset: arc-agi-1/training
  tasks: {TASKS}
  nap: 0
steps:
  seed:
    uses: programs
    with: {{directory: "${{data}}/programs", dataset: "${{dataset}}", task_ids: "${{tasks}}"}}
  execute:
    uses: execute
    resources: {{cpus: 2, memory: 1G}}
    with: {{predictions: "${{seed.out}}", dataset: "${{dataset}}", task_ids: "${{tasks}}",
           timeout_s: 2, no_cache: true}}
  select:
    uses: relabel
    with: {{executions: "${{execute.out}}", dataset: "${{dataset}}", task_ids: "${{tasks}}"}}
  evaluate:
    uses: evaluate
    with: {{executions: "${{execute.out}}", dataset: "${{dataset}}", task_ids: "${{tasks}}",
           pass_k: [1]}}
  summary:
    needs: [select, evaluate]
    run: wc -l < ${{execute.out}}/executions.jsonl > $OUT/counts.txt; sleep ${{nap}}
"""
COMPARED = [
    "seed/out/predictions.jsonl",
    "execute/out/executions.jsonl",
    "select/out/dataset.jsonl",
    "select/out/stats.json",
    "evaluate/out/metrics.json",
    "evaluate/out/metrics.md",
    "evaluate/out/submission.json",
    "summary/out/counts.txt",
]


def write_inputs(root: Path) -> Path:
    """The programs under `root` (the data root) and the job file beside it."""
    (root / "programs").mkdir(parents=True)
    for task, code in PROGRAMS.items():
        (root / "programs" / f"{task}.py").write_text(code)
    job = root.parent / "parity.yaml"
    job.write_text(JOB)
    return job
