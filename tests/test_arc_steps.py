"""`arcjobs step evaluate|relabel` and `arcjobs prompt` end to end, as a backend runs them:
real subprocesses on the hand-made fixture, including bad inputs (one line, exit 2, no out/)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arcjobs.arc.prompts import ASSISTANT_PREFIX, build_messages
from arcjobs.arc.tasks import load_dataset

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "arc"
ARCJOBS = str(Path(sys.executable).with_name("arcjobs"))
DATASET = [
    "--dataset",
    str(FIXTURES / "challenges.json"),
    "--solutions",
    str(FIXTURES / "solutions.json"),
]


def arcjobs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARCJOBS, *args], capture_output=True, text=True, timeout=120)


def test_evaluate_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "evaluate" / "out"
    execs = ["--executions", str(FIXTURES / "executions.jsonl")]
    proc = arcjobs("step", "evaluate", *execs, *DATASET, "--pass-k", "[1, 2]", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "metrics.md",
        "submission.json",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"] == 3 and metrics["mean"]["arc_score"] == pytest.approx(1 / 6)
    assert metrics["per_task"]["twotest"]["pass_at_k"] == {
        "1": pytest.approx(1 / 7),
        "2": pytest.approx(2 / 7),
    }
    assert "| twotest | 7 |" in (out / "metrics.md").read_text()
    submission = json.loads((out / "submission.json").read_text())
    assert submission["twotest"][1] == {"attempt_1": [[2, 2, 2]], "attempt_2": [[0, 0, 0]]}
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["params"]["dataset"].endswith("challenges.json")


def test_evaluate_scores_several_searches_as_one_and_checks_newly_solved(tmp_path: Path) -> None:
    """Two copies of the fixture's executions are one search of twice the budget (same pass
    rates, twice the predictions). With a `before` search that solved nothing and the fixture
    as the reference, every solved task is new, and its base pass rate is the fixture's."""
    fixture = str(FIXTURES / "executions.jsonl")
    failed = tmp_path / "before.jsonl"
    failed.write_text(
        "".join(
            line + "\n"
            for line in (FIXTURES / "executions.jsonl").read_text().splitlines()
            if '"status": "ok"' not in line
        )
    )
    one, two = tmp_path / "one" / "out", tmp_path / "two" / "out"
    assert (
        arcjobs("step", "evaluate", "--executions", fixture, *DATASET, "--out", str(one)).returncode
        == 0
    )
    proc = arcjobs(
        "step", "evaluate", "--executions", json.dumps([fixture, fixture]), *DATASET,
        "--before", str(failed), "--reference", fixture, "--out", str(two),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    single = json.loads((one / "metrics.json").read_text())
    double = json.loads((two / "metrics.json").read_text())
    for tid, m in single["per_task"].items():
        assert double["per_task"][tid]["predictions"] == 2 * m["predictions"]
        assert double["per_task"][tid]["pass_rate"] == pytest.approx(m["pass_rate"])
    solved = {tid for tid, m in single["per_task"].items() if m["pass_at_n"]}
    rows = double["legitimacy"]["tasks"]
    assert solved and {r["task_id"] for r in rows} == solved
    for row in rows:
        m = single["per_task"][row["task_id"]]
        assert row["budget"] == 2 * m["predictions"]
        assert row["base_pass_rate"] == pytest.approx(m["pass_rate"])
        assert row["predictions_needed"] == pytest.approx(1 / m["pass_rate"])
    sampled = [tid for tid, m in single["per_task"].items() if m["predictions"]]
    assert double["study"]["tasks"] == len(sampled) < single["tasks"]  # the study's mean
    assert "study_pass_rate" in double["study"]["mean"]
    text = (two / "metrics.md").read_text()
    assert "## The seed study's table" in text and "## Was the gain legitimate?" in text
    alone = arcjobs(
        "step", "evaluate", "--executions", fixture, *DATASET, "--reference", fixture,
        "--out", str(tmp_path / "alone" / "out"),
    )  # fmt: skip
    assert alone.returncode == 2 and "`reference` needs `before`" in alone.stderr


def test_relabel_end_to_end_from_a_step_directory(tmp_path: Path) -> None:
    execute_out = tmp_path / "execute" / "out"
    execute_out.mkdir(parents=True)
    shutil.copy(FIXTURES / "executions.jsonl", execute_out)
    out = tmp_path / "relabel" / "out"
    proc = arcjobs(
        "step", "relabel", "--executions", str(execute_out), *DATASET,
        "--task-ids", "twotest,uniform", "--per-task", "2", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    assert [(s["task_id"], s["sample_id"]) for s in lines] == [
        ("twotest", "twotest:3"),
        ("twotest", "twotest:1"),
        ("uniform", "uniform:0"),
    ]
    assert set(lines[0]) == {"task_id", "sample_id", "source", "prompt", "completion"}
    assert lines[0]["completion"][0]["content"].startswith(ASSISTANT_PREFIX + "\n```python\n")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"] == 3 and stats["fraction_correct"] == pytest.approx(2 / 3)


def test_relabel_accumulates_rounds_and_takes_the_study_options(tmp_path: Path) -> None:
    """A second round whose own search found nothing usable still trains on the first
    round's selected programs (given as `previous`, ids marked prev:), in the model's own
    words the first round recorded; it shuffles train pairs and says it ranked with the test
    answers."""
    fixture = FIXTURES / "executions.jsonl"
    rows = [json.loads(x) for x in fixture.read_text().splitlines()]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(
            json.dumps(
                {
                    "task_id": r["task_id"],
                    "sample_id": r["sample_id"],
                    "text": f"my words {r['sample_id']}",
                }
            )
            + "\n"
            for r in rows
        )
    )
    nothing = tmp_path / "nothing.jsonl"  # round 2: every prediction failed
    nothing.write_text(
        "".join(
            json.dumps({**r, "status": "timeout", "train_outputs": None, "test_outputs": None})
            + "\n"
            for r in rows
        )
    )
    first, second, alone = (tmp_path / d / "out" for d in ("r1", "r2", "alone"))
    common = [*DATASET, "--task-ids", "twotest,uniform", "--per-task", "2"]
    done = arcjobs(
        "step", "relabel", "--executions", str(fixture), *common, "--completion", "text",
        "--predictions", str(predictions), "--out", str(first),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    picked = [
        (r["task_id"], r["sample_id"])
        for r in map(json.loads, (first / "selected.jsonl").read_text().splitlines())
    ]
    assert picked == [("twotest", "twotest:3"), ("twotest", "twotest:1"), ("uniform", "uniform:0")]
    plain = [json.loads(x) for x in (first / "dataset.jsonl").read_text().splitlines()]
    proc = arcjobs(
        "step", "relabel", "--executions", str(nothing), *common, "--previous", str(first),
        "--completion", "text", "--predictions", str(nothing), "--shuffle-train", "true",
        "--rank-with-test", "true", "--out", str(second),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(x) for x in (second / "dataset.jsonl").read_text().splitlines()]
    ids = [s["sample_id"] for s in samples]
    assert sorted(ids) == sorted(f"prev:{sid}" for _, sid in picked)
    assert ids[:2] == ["prev:twotest:1", "prev:twotest:3"]  # the test outputs reorder them
    assert [s["completion"][0]["content"] for s in samples] == [
        f"my words {i.removeprefix('prev:')}" for i in ids
    ]
    # the same relabelled task, its two train pairs swapped (this sample's seed swaps them)
    shuffled = next(s for s in samples if s["sample_id"] == "prev:twotest:1")["prompt"][1]
    as_is = next(s for s in plain if s["sample_id"] == "twotest:1")["prompt"][1]
    assert shuffled["content"] != as_is["content"]
    assert sorted(shuffled["content"].split("\n")) == sorted(as_is["content"].split("\n"))
    assert json.loads((second / "stats.json").read_text())["uses_test_answers"] is True
    done = arcjobs("step", "relabel", "--executions", str(nothing), *common, "--out", str(alone))
    assert done.returncode == 0 and (alone / "dataset.jsonl").read_text() == ""
    missing = arcjobs(
        "step", "relabel", "--executions", str(fixture), *common, "--completion", "text",
        "--out", str(tmp_path / "r3" / "out"),
    )  # fmt: skip
    assert missing.returncode == 2 and "completion: text needs `predictions`" in missing.stderr


def bad_executions(tmp_path: Path, kind: str) -> str:
    rows = (FIXTURES / "executions.jsonl").read_text().splitlines()
    if kind == "corrupt":
        rows[2] = rows[2][:40]
    else:  # a task the dataset doesn't have
        rows[3] = rows[3].replace('"task_id": "twotest"', '"task_id": "zzzzzzzz"')
    path = tmp_path / "executions.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize("kind", ["evaluate", "relabel"])
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "missing.jsonl: no such file"),
        ("corrupt", "executions.jsonl:3: not valid JSON"),
        ("unknown_in_executions", "executions.jsonl:4: unknown task id 'zzzzzzzz'"),
        ("unknown_task_ids", "unknown task id 'nope'"),
        ("bad_dataset", "no-such-set: no such file, and not a built-in dataset"),
    ],
)
def test_bad_inputs_one_line_exit_2_nothing_published(tmp_path: Path, kind, case, message) -> None:
    executions, dataset, extra = str(FIXTURES / "executions.jsonl"), list(DATASET), []
    if case == "missing":
        executions = str(tmp_path / "missing.jsonl")
    elif case in ("corrupt", "unknown_in_executions"):
        executions = bad_executions(tmp_path, "corrupt" if case == "corrupt" else "unknown")
    elif case == "unknown_task_ids":
        extra = ["--task-ids", "[twotest, nope]"]
    else:
        dataset = ["--dataset", "no-such-set"]
    out = tmp_path / "step" / "out"
    proc = arcjobs("step", kind, "--executions", executions, *dataset, *extra, "--out", str(out))
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not (out.parent / "manifest.json").exists()
    assert [p.name for p in out.parent.iterdir()] in ([], ["scratch"])  # no half-written out


def test_prompt_command_json_is_what_the_model_gets() -> None:
    proc = arcjobs("prompt", "--dataset", "arc-agi-1/training", "--task", "007bbfb7", "--json")
    assert proc.returncode == 0, proc.stderr
    task = load_dataset("arc-agi-1/training", task_ids=["007bbfb7"])["007bbfb7"]
    expected = build_messages(task) + [{"role": "assistant", "content": ASSISTANT_PREFIX}]
    assert json.loads(proc.stdout) == expected


def test_prompt_command_seeds_and_errors() -> None:
    args = ["prompt", "--dataset", "arc-agi-1/training", "--task", "007bbfb7"]
    seeded = arcjobs(*args, "--augment-seed", "1", "--shuffle-seed", "2")
    assert seeded.returncode == 0 and seeded.stderr.startswith("augmentation: {")
    assert (
        seeded.stdout.startswith("===== system =====\n")
        and "===== assistant =====" in seeded.stdout
    )
    assert arcjobs(*args, "--augment-seed", "1", "--shuffle-seed", "2").stdout == seeded.stdout
    bad = arcjobs(*args, "--test-index", "3")
    assert bad.returncode == 2 and "--test-index 3 is out of range" in bad.stderr


def test_programs_in_a_searchs_frames_relabel_into_augmented_samples(tmp_path: Path) -> None:
    """`programs --augmentations 2`: the corpus program of 0d3d703e (a colour substitution) in
    its own frame and in the frames of infer prompts 0 and 1 for the same seed. Executed for
    real and relabelled, it gives three samples with three different prompts: the original
    task (correct) and two tasks it does solve, in frames where its colours have moved."""
    from arcjobs.inference.plan import draw

    task = load_dataset("arc-agi-1/training", task_ids=["0d3d703e"])["0d3d703e"]
    where = ["--dataset", "arc-agi-1/training", "--task-ids", "0d3d703e"]
    programs, execute, relabel = (tmp_path / s / "out" for s in ("programs", "execute", "relabel"))
    proc = arcjobs(
        "step", "programs", *where, "--augmentations", "2", "--seed", "3", "--out", str(programs)
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (programs / "predictions.jsonl").read_text().splitlines()]
    assert [x["sample_id"] for x in lines] == [f"0d3d703e.program.{k}" for k in range(3)]
    assert lines[0]["augmentation"] is None and len({x["code"] for x in lines}) == 1
    for k, line in enumerate(lines[1:]):
        frame = draw(task, k, augment=True, shuffle_train=False, seed=3).augmentation
        assert line["augmentation"] == frame.to_dict()

    proc = arcjobs("step", "execute", "--predictions", str(programs), *where, "--out", str(execute))
    assert proc.returncode == 0, proc.stderr
    proc = arcjobs("step", "relabel", "--executions", str(execute), *where, "--out", str(relabel))
    assert proc.returncode == 0, proc.stderr
    samples = [json.loads(x) for x in (relabel / "dataset.jsonl").read_text().splitlines()]
    assert sorted(s["source"] for s in samples) == ["correct", "relabelled", "relabelled"]
    assert len({json.dumps(s["prompt"]) for s in samples}) == 3
    correct = next(s for s in samples if s["source"] == "correct")
    assert correct["prompt"][1:] == build_messages(task)[1:]
