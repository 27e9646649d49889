"""`arcjobs report`: the numbers it collects, the files it writes, and its refusals.

The runs are built the way the launcher leaves them: run.json with per-step status and
times, and evaluate steps produced by the real `arcjobs step evaluate` on executions
fixtures (round 1 = tests/fixtures/arc/executions.jsonl, round 2 = executions_r2.jsonl,
where task `uniform` becomes solved). The train step's metrics.json and the infer/execute
summaries are copied from tests/fixtures/report/: producing them for real takes a model and
minutes, and the report only reads them — their keys follow arcjobs/steps/train.py and the
sandbox's summary.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arcjobs.report import examples
from arcjobs.report.collect import collect, parse_step_name, round_points, step_order

pytestmark = pytest.mark.unit

ARC = Path(__file__).parent / "fixtures" / "arc"
FIXTURES = Path(__file__).parent / "fixtures" / "report"
ARCJOBS = str(Path(sys.executable).with_name("arcjobs"))
T0 = 1_700_000_000.0


def arcjobs(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([ARCJOBS, *map(str, args)], capture_output=True, text=True, timeout=300)


def _ok_step(step_dir: Path, kind: str, files: dict[str, Path]) -> None:
    """A finished step: out/ with the given files and an ok manifest, as `arcjobs step` leaves."""
    (step_dir / "out").mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, step_dir / "out" / name)
    manifest = {"status": "ok", "key": "k", "kind": kind, "params": {}, "exit_code": 0}
    (step_dir / "manifest.json").write_text(json.dumps(manifest))


def _evaluate(step_dir: Path, executions: Path, before: Path | None = None) -> None:
    """The real evaluate step; from round 2 on it checks what is newly solved against round
    1, with round 1's executions also standing in for a large reference search."""
    check = [] if before is None else ["--before", before, "--reference", before]
    proc = arcjobs(
        "step", "evaluate", "--executions", executions,
        "--dataset", ARC / "challenges.json", "--solutions", ARC / "solutions.json",
        "--pass-k", "[1, 2]", *check, "--out", step_dir / "out",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def make_run(data_root: Path, run_id: str, rounds: int = 2, train: bool = True) -> Path:
    """A finished run of `rounds` rounds (search → execute → evaluate → learn) under data_root."""
    run_dir = data_root / "runs" / run_id
    steps: dict[str, dict] = {}
    t = T0
    for r in range(1, rounds + 1):
        needs = {
            "search": [f"learn.r{r - 1}"] if train and r > 1 else [],
            "execute": [f"search.r{r}"],
            "evaluate": [f"execute.r{r}"],
            "learn": [f"execute.r{r}"],
        }
        names = [("search", "infer"), ("execute", "execute"), ("evaluate", "evaluate")]
        if train and r < rounds:
            names.append(("learn", "train"))
        for base, kind in names:
            name = f"{base}.r{r}"
            step_dir = run_dir / "steps" / name
            if kind == "infer":
                _ok_step(step_dir, kind, {"summary.json": FIXTURES / "infer_summary.json"})
            elif kind == "execute":
                execs = ARC / "executions.jsonl" if r == 1 else FIXTURES / "executions_r2.jsonl"
                files = {
                    "executions.jsonl": execs,
                    "summary.json": FIXTURES / "execute_summary.json",
                }
                _ok_step(step_dir, kind, files)
            elif kind == "evaluate":
                before = run_dir / "steps" / "execute.r1" / "out" if r > 1 else None
                _evaluate(step_dir, run_dir / "steps" / f"execute.r{r}" / "out", before)
            else:
                _ok_step(step_dir, kind, {"metrics.json": FIXTURES / "train_metrics.json"})
            took = {"infer": 13.0, "execute": 2.0, "evaluate": 1.0, "train": 20.0}[kind]
            steps[name] = {
                "status": "succeeded",
                "kind": kind,
                "needs": needs[base],
                "started": t,
                "ended": t + took,
            }
            t += took
    state = {
        "run_id": run_id,
        "job": "ttt-loop",
        "backend": "local",
        "status": "succeeded",
        "created": T0,
        "steps": steps,
    }
    # sorted by name, as the launcher writes it (arcjobs.atomic.write_json)
    (run_dir / "run.json").write_text(json.dumps(state, sort_keys=True))
    return run_dir


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report") / "data"
    make_run(root, "loop")
    make_run(root, "baseline", rounds=1, train=False)
    return root


def test_step_names_split_into_step_round_and_branch() -> None:
    n = parse_step_name("evaluate.r2.lora_rank=16.lr=0.0001")
    assert (n.base, n.round, n.branch) == ("evaluate", 2, (("lora_rank", "16"), ("lr", "0.0001")))
    assert n.stage == "evaluate.r2" and n.branch_label == "lora_rank=16,lr=0.0001"
    assert parse_step_name("evaluate") == parse_step_name("evaluate")
    plain = parse_step_name("eval_before")
    assert (plain.base, plain.round, plain.branch) == ("eval_before", None, ())
    assert parse_step_name("learn.steps=100").branch == (("steps", "100"),)


def test_steps_are_ordered_by_the_dag_then_round() -> None:
    steps = {
        "evaluate.r10": {"needs": ["execute.r10"]},
        "evaluate.r2": {"needs": ["execute.r2"]},
        "eval_base": {"needs": ["search"]},
        "execute.r10": {"needs": ["search"]},
        "execute.r2": {"needs": ["search"]},
        "search": {},
    }
    assert step_order(steps) == [
        "search",
        "eval_base",
        "execute.r2",
        "execute.r10",
        "evaluate.r2",
        "evaluate.r10",
    ]


def test_collected_numbers(data_root: Path) -> None:
    data = collect(data_root, ["loop"])
    (run,) = data.runs
    assert [ev.step for ev in run.evals] == ["evaluate.r1", "evaluate.r2"]
    r1, r2 = run.evals
    # round 1 is the fixture test_arc_steps pins: only twotest solved, ARC score 1/6
    assert r1.solved() == {"twotest"} and r1.mean["arc_score"] == pytest.approx(1 / 6)
    assert r2.solved() == {"twotest", "uniform"}
    assert r2.mean["pass_at_n"] == pytest.approx(2 / 3)
    assert r2.mean["arc_score"] == pytest.approx((1 + 1 + 0) / 3)
    c = data.compare(r2)
    assert (c.newly_solved, c.lost, c.solved) == (["uniform"], [], 2)
    assert [(p.series, p.stage, p.pass_at_n) for p in round_points(data)] == [
        ("loop", "evaluate.r1", pytest.approx(1 / 3)),
        ("loop", "evaluate.r2", pytest.approx(2 / 3)),
    ]
    (train,) = run.trains
    assert train.step == "learn.r1" and train.loss[0] == (1.0, pytest.approx(2.3))
    steps = {s.name: s for s in run.steps}
    assert steps["learn.r1"].seconds == 20.0
    assert steps["execute.r1"].throughput == {"programs_per_s": 20.0}
    assert steps["search.r2"].throughput == {"tokens_per_s": 150.0, "programs_per_s": 0.6}


def test_the_first_run_is_the_reference_for_several(data_root: Path) -> None:
    data = collect(data_root, ["baseline", "loop"])
    assert data.reference.run_id == "baseline"
    loop_r2 = data.runs[1].evals[1]
    assert data.compare(loop_r2).newly_solved == ["uniform"]
    assert {p.series for p in round_points(data)} == {"baseline", "loop"}


def test_partial_train_metrics_are_tolerated(tmp_path: Path) -> None:
    """A train step whose metrics.json has no loss curve yet still shows as a step."""
    root = tmp_path / "data"
    run_dir = make_run(root, "r", rounds=2)
    (run_dir / "steps" / "learn.r1" / "out" / "metrics.json").write_text('{"global_step": 3}')
    (train,) = collect(root, ["r"]).runs[0].trains
    assert train.loss == [] and train.metrics == {"global_step": 3}
    (run_dir / "steps" / "learn.r1" / "out" / "metrics.json").write_text("{not json")
    assert collect(root, ["r"]).runs[0].trains == []


def test_report_command_writes_html_markdown_and_images(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    proc = arcjobs("report", "loop", "baseline", "--data-root", data_root, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    page = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    pngs = sorted((out / "img").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # every image is embedded (the page works alone) and linked from the Markdown
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert all(f"(img/{p.name})" in md for p in pngs)
    assert "http://" not in page and "https://" not in page
    for text in ("pass@n", "ARC score", "valid outputs", "correct grids", "newly solved"):
        assert text in page and text in md
    # newly solved: `uniform` by loop's round 2, against baseline's evaluate step
    assert "| loop · evaluate.r2 | 2 / 3 | 1 | uniform | – |" in md
    assert "uniform — newly solved by loop · evaluate.r2" in md
    assert "np.full((3, 3), g[0, 0])" in page  # the best program of a shown task
    assert "learn.r1" in md and "327.7" in md  # training table from metrics.json
    assert "| search.r1 | infer | succeeded | 13.0 s | " in md  # a 13 s step gets its rate
    assert "| execute.r1 | execute | succeeded | 2.0 s | – |" in md  # a 2 s step does not
    # no program of round 1 gave a grid for `nopred`: said so, not drawn as a 1×1 black grid
    assert "(loop · evaluate.r1: no program gave a grid)" in md
    assert "nopred-test0-loop_evaluate.r1" not in md
    # the seed study's own table beside the project's, and the legitimacy check of round 2
    for text in ("The seed study's table", "pass_rate × valid outputs", "Was the gain legitimate?"):
        assert html.escape(text) in page and text in md
    # `uniform` was never solved in round 1's 3 predictions, which stand in for the reference
    assert "| uniform | 2 | 0.000 | > 3 |" in md


def test_report_default_out_and_requested_tasks(data_root: Path) -> None:
    proc = arcjobs("report", "loop", "--data-root", data_root, "--tasks", "nopred")
    assert proc.returncode == 0, proc.stderr
    index = data_root / "reports" / "loop" / "index.html"
    assert proc.stdout.strip() == str(index)
    md = (index.parent / "report.md").read_text()
    assert "### nopred — requested" in md and "### uniform" not in md
    # regenerating replaces the report in one piece, leaving no temporary directory
    assert arcjobs("report", "loop", "--data-root", data_root).returncode == 0
    assert sorted(p.name for p in index.parent.parent.iterdir()) == ["loop"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "no run 'nosuch'"),
        (["noeval"], "run noeval has no finished evaluate step"),
        (["loop", "--tasks", "zzz"], "--tasks: 'zzz' is not scored"),
        (["loop", "--out", "NOTREPORT"], "is not an arcjobs report"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    data_root: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    run_dir = data_root / "runs" / "noeval"
    if not run_dir.exists():
        steps = {"search": {"status": "succeeded", "kind": "infer"}}
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"run_id": "noeval", "steps": steps}))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    args = [str(foreign) if a == "NOTREPORT" else a for a in args]
    proc = arcjobs("report", *args, "--data-root", data_root)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_help_does_not_import_plotting() -> None:
    code = (
        "import sys; from arcjobs.cli import cli; "
        "cli.main(['report', '--help'], standalone_mode=False); "
        "assert 'matplotlib' not in sys.modules and 'numpy' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--tasks" in proc.stdout


def test_matrix_branches_are_separate_lines(tmp_path: Path) -> None:
    """A sweep's evaluate steps `evaluate.lora_rank=N` become one series per branch."""
    root = tmp_path / "data"
    run_dir = make_run(root, "sweep", rounds=1, train=False)
    state = json.loads((run_dir / "run.json").read_text())
    steps = run_dir / "steps"
    for rank in (16, 32):
        shutil.copytree(steps / "evaluate.r1", steps / f"evaluate.lora_rank={rank}")
        info = {"status": "succeeded", "kind": "evaluate", "needs": ["execute.r1"]}
        state["steps"][f"evaluate.lora_rank={rank}"] = info
    (run_dir / "run.json").write_text(json.dumps(state))
    points = round_points(collect(root, ["sweep"]))
    assert [(p.series, p.stage) for p in points] == [
        ("lora_rank=16", "evaluate"),
        ("lora_rank=32", "evaluate"),
        ("sweep", "evaluate.r1"),
    ]


def test_paths_recorded_in_a_container_are_read_under_the_data_root(tmp_path: Path) -> None:
    """Steps in images record /data/... paths; the report re-roots them to find grids and programs."""
    root = tmp_path / "data"
    run_dir = make_run(root, "r", rounds=2)
    shutil.copytree(ARC, root / "tasks")
    for r in (1, 2):
        manifest_path = run_dir / "steps" / f"evaluate.r{r}" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["params"].update(
            dataset="/data/tasks/challenges.json",
            solutions="/data/tasks/solutions.json",
            executions=f"/data/runs/r/steps/execute.r{r}/out",
        )
        manifest_path.write_text(json.dumps(manifest))
    data = collect(root, ["r"])
    assert data.runs[0].evals[1].executions == [run_dir / "steps" / "execute.r2" / "out"]
    (ex,) = examples.build(data, [("uniform", "requested")])
    assert ex.note is None and ex.test_outputs == [[[4, 4, 4], [4, 4, 4], [4, 4, 4]]]
    last = ex.attempts[-1]
    assert last.hits == [[True, False]]
    assert last.program is not None and last.program["sample_id"] == "uniform:r2:0"


def test_pass_at_k_columns_are_in_numeric_order(data_root: Path) -> None:
    """metrics.json sorts its keys as text; the table orders pass@k columns by k."""
    from arcjobs.report import content

    data = collect(data_root, ["loop"])
    for ev in data.evals:
        ev.mean["pass_at_k"] = {"128": 0.5, "32": 0.25, "8": 0.125}
    table = next(b for b in content._metrics_section(data).blocks if isinstance(b, content.Table))
    assert [h for h in table.header if h.startswith("pass@") and h[5:].isdigit()] == [
        "pass@8",
        "pass@32",
        "pass@128",
    ]
    assert table.rows[0][-4:-1] == ["0.125", "0.250", "0.500"]


def test_scores_after_a_relabel_that_used_the_test_answers_are_marked(tmp_path: Path) -> None:
    """A relabel step with rank_with_test (the seed study's choice) used the test answers:
    every evaluate step after it is labelled so, on every table of the page."""
    root = tmp_path / "data"
    run_dir = make_run(root, "leaky")
    _ok_step(run_dir / "steps" / "select.r1", "relabel", {})
    manifest = run_dir / "steps" / "select.r1" / "manifest.json"
    manifest.write_text(
        json.dumps({**json.loads(manifest.read_text()), "params": {"rank_with_test": True}})
    )
    state = json.loads((run_dir / "run.json").read_text())
    state["steps"]["select.r1"] = {
        "status": "succeeded", "kind": "relabel", "needs": ["execute.r1"],
        "started": T0 + 16, "ended": T0 + 17,
    }  # fmt: skip
    state["steps"]["learn.r1"]["needs"] = ["select.r1"]
    (run_dir / "run.json").write_text(json.dumps(state, sort_keys=True))
    data = collect(root, ["leaky"])
    marked = {ev.step: ev.uses_test_answers for ev in data.evals}
    assert marked == {"evaluate.r1": False, "evaluate.r2": True}
    from arcjobs.report.collect import eval_label

    assert eval_label(data, data.evals[1]) == "evaluate.r2 (uses test answers)"


def test_charts_read_plainly(data_root: Path) -> None:
    """Log axes carry plain numbers ("7.62", not "7.62×10⁰"), and a histogram bar covers its
    whole bin: a ratio of 0.0 is drawn from 0.0, not near 0.07."""
    from matplotlib.figure import Figure

    from arcjobs.report import plots

    ax = Figure().subplots()
    ax.set_yscale("log")
    plots._plain_ticks(ax)
    assert ax.yaxis.get_major_formatter()(7.62, 0) == "7.62"
    assert ax.yaxis.get_minor_formatter()(300.0, 0) == "300"
    ev = collect(data_root, ["loop"]).evals[0]
    fig = plots.correct_grids_figure(ev, "t")
    bars = [p for p in fig.axes[0].patches if p.get_height() > 0]
    assert bars and all(round(p.get_x() * 10, 9) % 1 == 0 for p in bars)  # at bin edges
    assert all(abs(p.get_width() - 0.1) < 1e-9 for p in bars)


def test_counts_are_whole_numbers() -> None:
    """metrics.json may hold counts as floats (1234.0): the page shows 1,234."""
    from arcjobs.report import content

    assert content._count(1234.0) == "1,234" and content._count(None) == "–"
