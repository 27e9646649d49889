"""The job language: every class of validation error, with its exact message and location,
and the expansion of params, rounds and matrices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import JOBS, arcjobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcjobs.errors import SpecError, UserError
from arcjobs.spec import load_job

pytestmark = pytest.mark.unit

ERRORS = {
    "yaml syntax": (
        "name: x\nsteps:\n  a: [\n",
        "4: invalid YAML: expected the node content, but found '<stream end>'",
    ),
    "not a mapping": ("- a\n- b\n", "1: expected a mapping with keys name, params and steps"),
    "empty file": (
        "",
        "1: the job file is empty; expected a mapping with keys name, params and steps",
    ),
    "unknown top key": (
        "name: x\nflavour: 1\nsteps:\n  a: {run: echo}\n",
        "2: flavour: unknown key; expected one of: name, description, params, rounds, steps",
    ),
    "missing name": ("steps:\n  a: {run: echo}\n", "1: name: required key is missing"),
    "bad job name": (
        "name: 'a b'\nsteps:\n  a: {run: echo}\n",
        "1: name: expected a name of letters, digits, '_' or '-', got 'a b'",
    ),
    "unknown step key": (
        "name: x\nsteps:\n  a:\n    run: echo\n    gpu: 1\n",
        "5: steps.a.gpu: unknown key; expected one of: uses, run, image, needs, resources, "
        "with, matrix, retries, description",
    ),
    "wrong type": (
        "name: x\nsteps:\n  a:\n    run: echo\n    resources: {cpus: many}\n",
        "5: steps.a.resources.cpus: expected an integer, got 'many'",
    ),
    "unknown kind": (
        "name: x\nsteps:\n  a:\n    uses: trian\n",
        "4: steps.a.uses: unknown step kind 'trian'; expected one of: ",
    ),
    "uses and run": (
        "name: x\nsteps:\n  a:\n    uses: run\n    run: echo\n",
        "3: steps.a: expected exactly one of `uses:` (a step kind) or `run:` (a shell command)",
    ),
    "unknown kind param": (
        "name: x\nsteps:\n  a:\n    uses: run\n    with: {command: echo, colour: 3}\n",
        "5: steps.a.with.colour: unknown key; expected one of: command",
    ),
    "bad kind param": (
        "name: x\nsteps:\n  a:\n    uses: run\n    with:\n      command: [1, 2]\n",
        "6: steps.a.with.command: expected a string, got list",
    ),
    "missing param": (
        "name: x\nparams: {n: 1}\nsteps:\n  a:\n    run: echo ${m}\n",
        "5: steps.a.run: ${m}: no parameter or step of that name (parameters: n); "
        "for a shell variable write $NAME or $${NAME}",
    ),
    "missing step ref": (
        "name: x\nsteps:\n  a:\n    run: cat ${b.out}\n",
        "4: steps.a.run: ${b.out}: unknown step 'b'; steps are: a",
    ),
    "missing need": (
        "name: x\nsteps:\n  a:\n    run: echo\n    needs: [b]\n",
        "5: steps.a.needs[0]: unknown step 'b'; steps are: a",
    ),
    "cycle": (
        "name: x\nsteps:\n  a:\n    run: cat ${b.out}\n  b:\n    run: cat ${a.out}\n",
        "3: steps.a.needs: dependency cycle: a → b → a",
    ),
    "too many gpus": (
        "name: x\nsteps:\n  a:\n    run: echo\n    resources: {gpus: 100}\n",
        "5: steps.a.resources.gpus: expected a value <= 16, got 100",
    ),
    "too much memory": (
        "name: x\nsteps:\n  a:\n    run: echo\n    resources: {memory: 10T}\n",
        "5: steps.a.resources.memory: '10T' is more memory than any machine has (max 4T)",
    ),
    "bad memory": (
        "name: x\nsteps:\n  a:\n    run: echo\n    resources: {memory: lots}\n",
        "5: steps.a.resources.memory: expected a size such as 512M or 64G, got 'lots'",
    ),
    "gpu in sandbox": (
        "name: x\nsteps:\n  a:\n    run: echo\n    resources: {gpus: 1}\n",
        "5: steps.a.resources.gpus: the sandbox image has no GPU support; use image train or infer, or gpus: 0",
    ),
    "duplicate key": (
        "name: x\nsteps:\n  a:\n    run: echo\n  a:\n    run: echo\n",
        "5: steps.a: duplicate key",
    ),
    "missing axis": (
        "name: x\nsteps:\n  a:\n    run: echo ${matrix.lr}\n",
        "4: steps.a.run: ${matrix.lr}: this step has no matrix axis 'lr' (its axes: none)",
    ),
    "unused axis": (
        "name: x\nsteps:\n  a:\n    run: echo\n    matrix: {lr: [1, 2]}\n",
        "5: steps.a.matrix.lr: axis 'lr' is not used by this step's run (as ${matrix.lr}); "
        "its branches would all compute the same thing",
    ),
    "empty axis": (
        "name: x\nsteps:\n  a:\n    run: echo\n    matrix: {x: []}\n",
        "5: steps.a.matrix: matrix axis 'x' has no values",
    ),
    "round outside rounds": (
        "name: x\nsteps:\n  a:\n    run: echo ${round}\n",
        "4: steps.a.run: ${round}: only steps listed under rounds.steps have a round",
    ),
    "prev outside rounds": (
        "name: x\nrounds: {count: 2, steps: [a]}\nsteps:\n  a:\n    run: echo ${prev.b.out}\n  b: {run: echo}\n",
        "5: steps.a.run: ${prev.b.out}: prev. refers to the previous round: both steps must be listed under rounds.steps",
    ),
    "unknown round step": (
        "name: x\nrounds: {count: 2, steps: [zz]}\nsteps:\n  a: {run: echo}\n",
        "2: rounds.steps[0]: unknown step 'zz'; steps are: a",
    ),
    "param named like a step": (
        "name: x\nparams: {a: 1}\nsteps:\n  a: {run: echo}\n",
        "2: params.a: parameter name 'a' is also a step name",
    ),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_validation_error_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    text, expected = ERRORS[case]
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_job(path)
    assert str(err.value).startswith(f"{path}:{expected}"), str(err.value)
    assert "\n" not in str(err.value)


def test_cli_reports_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, ERRORS["wrong type"][0])
    data = tmp_path / "data"
    proc = arcjobs("run", path, "--data-root", data)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {path}:{ERRORS['wrong type'][1]}"]
    assert not data.exists()


def test_more_gpus_than_the_backend_has_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """The GPU count is checked once a backend is chosen (planning elsewhere is allowed),
    still with the file, line and key, and still before the run directory exists."""
    path = write(
        tmp_path,
        "name: x\nsteps:\n  a:\n    run: 'true'\n  b:\n    image: train\n"
        "    resources:\n      cpus: 1\n      gpus: 2\n    run: 'true'\n",
    )
    data = tmp_path / "data"
    hidden = {"CUDA_VISIBLE_DEVICES": ""}
    assert arcjobs("plan", path, "--data-root", data, env=hidden).returncode == 0
    proc = arcjobs("run", path, "--data-root", data, env=hidden)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}:9: steps.b.resources.gpus: step b asks for 2 GPU(s) and the local "
        "backend has 0 here; lower it (e.g. --set gpus=0 where the job has that parameter) "
        "or use a backend with GPUs"
    ]
    assert not (data / "runs").exists()


def test_set_overrides_are_typed_and_checked() -> None:
    job = load_job(JOBS / "fanout.yaml", ["repeat=5", "greeting=hi there"])
    assert job.params == {"greeting": "hi there", "repeat": 5, "scale": 1, "pause": 0.05}
    assert "seq 5" in job.steps["a"].params["command"]
    with pytest.raises(
        UserError,
        match=r"--set colour: .*fanout.yaml has no parameter 'colour'; its parameters: greeting, repeat, scale, pause",
    ):
        load_job(JOBS / "fanout.yaml", ["colour=red"])
    with pytest.raises(UserError, match="--set repeat: expected key=value"):
        load_job(JOBS / "fanout.yaml", ["repeat"])


def test_set_reaches_a_step_in_every_round_and_is_checked() -> None:
    """`--set step.key=value` as if the file said so: typed, in every round of the step,
    part of the step's parameters (so of its cache key), checked like the file."""
    ROOT = JOBS.parents[2]
    loop = ROOT / "jobs" / "ttt_loop.yaml"
    base = load_job(loop, ["rounds=2"])
    job = load_job(loop, ["rounds=2", "learn.lora_alpha=64", "search.temperature=0.8"])
    for r in (1, 2):
        assert job.steps[f"learn.r{r}"].params["lora_alpha"] == 64
        assert job.steps[f"learn.r{r}"].full_params["lora_alpha"] == 64
        assert job.steps[f"search.r{r}"].params["temperature"] == 0.8
        assert base.steps[f"learn.r{r}"].params != job.steps[f"learn.r{r}"].params
    assert job.steps["search.r1"].params["top_p"] == base.steps["search.r1"].params["top_p"]
    for args, message in [
        (
            ["lern.lora_alpha=64"],
            "--set lern.lora_alpha=64: .*ttt_loop.yaml has no step 'lern'; its steps: search, execute",
        ),
        (
            ["learn.lora_alfa=64"],
            "--set learn.lora_alfa=64: a train step has no parameter 'lora_alfa'; its parameters: model, ",
        ),
        (["learn.lora_rank=big"], "--set learn.lora_rank=big: expected an integer, got 'big'"),
        (["learn.lora_alpha"], "--set learn.lora_alpha: expected step.key=value"),
        (["learn.use_dora=on"], "--set learn.use_dora=on: .*vLLM, which cannot serve DoRA"),
    ]:
        with pytest.raises(UserError, match=message):
            load_job(loop, args)


def test_set_of_a_step_through_the_cli_shows_in_plan_and_fails_in_one_line(tmp_path: Path) -> None:
    ROOT = JOBS.parents[2]
    shown = arcjobs(
        "plan", ROOT / "jobs" / "ttt_round.yaml", "--set", "learn.lora_alpha=64",
        "--json", "--data-root", tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (learn,) = (s for s in json.loads(shown.stdout)["steps"] if s["step"] == "learn")
    command = learn["request"]["command"]
    assert command[command.index("--lora-alpha") + 1] == "64"
    bad = arcjobs(
        "plan", ROOT / "jobs" / "ttt_round.yaml", "--set", "learn.nope=1", "--data-root", tmp_path
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines() == [bad.stderr.strip().splitlines()[-1]]
        and "--set learn.nope=1: a train step has no parameter 'nope'" in bad.stderr
    )


def test_whole_value_reference_keeps_its_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: x\nparams: {n: 3, names: [a, b]}\nsteps:\n  a:\n    uses: run\n"
        "    with: {command: 'echo ${n} ${names}'}\n",
    )
    assert load_job(path).steps["a"].params == {"command": "echo 3 a b"}


def test_matrix_expands_dependants_and_gathers_with_outs() -> None:
    job = load_job(JOBS / "fanout.yaml")
    assert list(job.steps) == ["a", "b", "c.factor=2", "c.factor=3", "d"]
    assert job.steps["c.factor=3"].matrix == {"factor": 3}
    assert job.steps["d"].needs == ("b", "c.factor=2", "c.factor=3")
    assert "${c.factor=2.out} ${c.factor=3.out}" in job.steps["d"].params["command"]


def test_matrix_branches_propagate_and_join(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: sweep
steps:
  search: {run: echo}
  learn:
    run: echo ${search.out} ${matrix.rank} ${matrix.lr}
    matrix: {rank: [16, 32], lr: [0.0001, 0.0002]}
  again:
    run: echo ${learn.out}
  score:
    run: echo ${again.out} ${learn.out}
  report:
    run: echo ${score.outs}
""",
    )
    job = load_job(path)
    learn = [n for n in job.steps if n.startswith("learn.")]
    assert learn == [
        "learn.rank=16.lr=0.0001",
        "learn.rank=16.lr=0.0002",
        "learn.rank=32.lr=0.0001",
        "learn.rank=32.lr=0.0002",
    ]
    score = job.steps["score.rank=32.lr=0.0002"]
    assert score.needs == ("again.rank=32.lr=0.0002", "learn.rank=32.lr=0.0002")
    assert len(job.steps["report"].needs) == 4 and len(job.steps) == 1 + 4 * 3 + 1


def test_rounds_chain_through_prev_and_null_in_round_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: loop
rounds: {count: 3, steps: [search, learn]}
steps:
  model: {run: echo}
  search:
    run: "sample ${model.out} --adapter '${prev.learn.out}' --round ${round}"
  learn:
    run: train ${search.out}
  final:
    run: score ${search.out} ${learn.outs}
""",
    )
    job = load_job(path)
    assert list(job.steps) == [
        "model",
        "search.r1",
        "learn.r1",
        "search.r2",
        "learn.r2",
        "search.r3",
        "learn.r3",
        "final",
    ]
    assert job.steps["search.r2"].needs == ("learn.r1", "model")
    assert (
        job.steps["search.r2"].params["command"]
        == "sample ${model.out} --adapter '${learn.r1.out}' --round 2"
    )
    # round 1 has no previous adapter: in a command line the reference is an empty word
    assert job.steps["search.r1"].params["command"] == "sample ${model.out} --adapter '' --round 1"
    assert job.steps["final"].needs == ("learn.r1", "learn.r2", "learn.r3", "search.r3")


# --- fuzzing: whatever the input, a clear UserError or a Job, never a traceback ---------------

VALID = (JOBS / "fanout.yaml").read_text()

yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            "",
            "echo",
            "${a.out}",
            "${repeat}",
            "${matrix.x}",
            "${prev.a.out}",
            "$$",
            "${",
            "run",
            "a",
            "b",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "steps",
                    "params",
                    "run",
                    "uses",
                    "with",
                    "needs",
                    "matrix",
                    "rounds",
                    "count",
                    "resources",
                    "gpus",
                    "cpus",
                    "memory",
                    "a",
                    "b",
                    "c",
                    "image",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _load_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_job(path)
    except UserError as e:
        assert str(e) and "\n" not in str(e)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=200))
def test_fuzz_random_text(tmp_path: Path, text: str) -> None:
    _load_text(tmp_path, text)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzz_mutated_valid_job(tmp_path: Path, data: st.DataObject) -> None:
    job = yaml.safe_load(VALID)
    node, keys = job, []
    while isinstance(node, dict) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)))
        keys.append(key)
        if not isinstance(node[key], dict):
            break
        node = node[key]
    target = job
    for key in keys[:-1]:
        target = target[key]
    if keys:
        target[keys[-1]] = data.draw(yaml_values)
    _load_text(tmp_path, yaml.safe_dump(job))


def test_params_shape_rounds_and_resources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: x
params: {rounds: 2, gpus: 1}
rounds: {count: "${rounds}", steps: [a]}
steps:
  a:
    image: train
    run: echo ${round}
    resources: {gpus: "${gpus}"}
""",
    )
    job = load_job(path, ["rounds=3", "gpus=0"])
    assert list(job.steps) == ["a.r1", "a.r2", "a.r3"]
    assert job.steps["a.r3"].resources.gpus == 0
    with pytest.raises(
        SpecError, match=r":9: steps.a.resources.gpus: expected an integer, got 'many'"
    ):
        load_job(path, ["gpus=many"])
    path.write_text(path.read_text().replace('count: "${rounds}"', 'count: "${laps}"'))
    with pytest.raises(
        SpecError, match=r":4: rounds.count: \$\{laps\}: only job parameters can be used here"
    ):
        load_job(path)


def test_job_reference_is_generated_from_the_schemas() -> None:
    from helpers import ROOT

    from arcjobs.spec.reference import render

    assert (ROOT / "docs/jobs.md").read_text() == render(), (
        "regenerate: python -m arcjobs.spec.reference > docs/jobs.md"
    )


def test_plan_says_when_a_step_uses_the_test_answers(tmp_path: Path) -> None:
    ROOT = JOBS.parents[2]
    job = ROOT / "jobs" / "ttt_round.yaml"
    clean = arcjobs("plan", job, "--data-root", tmp_path, "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["uses_test_answers"] == []
    leaky = arcjobs("plan", job, "--set", "select.rank_with_test=true", "--data-root", tmp_path)
    assert leaky.returncode == 0, leaky.stderr
    assert (
        "warning: step select ranks programs with the test outputs (rank_with_test): every "
        "score after it uses the test answers" in leaky.stderr
    )
