"""Pure programs share a process; nothing one of them does reaches the next.

`arcjobs.sandbox.purity` decides statically which programs may run one after another in one
child. These tests hold the rules to their promise: the corpus is pure, every way we know to
touch shared state is not, pure programs really do share a child, and a probe program run
after pure programs that change everything they are allowed to change gives exactly what it
gives in a fresh fork. Real workers and forks throughout.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sandbox_helpers import leftovers, tiny_task

from arcjobs.sandbox import Limits, Program, execute, purity
from arcjobs.sandbox.dsl import DSL_PATH

CORPUS = Path(__file__).resolve().parents[1] / "arcjobs" / "sandbox" / "corpus"


@pytest.fixture(scope="module")
def allow() -> purity.Allowlist:
    """The allowlist as a worker builds it, from this process's numpy, scipy and DSL."""
    from arcjobs.sandbox.dsl import load_common

    return purity.Allowlist.build(load_common(), DSL_PATH.read_text())


def pure(code: str, allow: purity.Allowlist) -> bool:
    """What a child decides: the program compiled as it compiles it, checked as it checks."""
    from arcjobs.sandbox.child import is_pure

    try:
        compiled = compile(code, "<program>", "exec", dont_inherit=True)
    except BaseException:  # the child reports a syntax error, and no verdict
        return False
    return is_pure(code, compiled, allow)


@pytest.mark.unit
def test_every_corpus_program_is_pure(allow) -> None:
    impure = [p.stem for p in CORPUS.glob("*.py") if not pure(p.read_text(), allow)]
    assert impure == []
    assert all(purity.analyse(p.read_text(), allow) for p in CORPUS.glob("*.py"))


IMPURE = {
    "attribute store": "import numpy as np\nnp.sum = len",
    "store on a DSL class": "from common import *\nColor.RED = 3",
    "attribute delete": "import numpy as np\ndel np.sum",
    "store deep inside": "import numpy as np\ndef f():\n    class A:\n        def g(self):\n"
    "            for _ in range(1):\n                x = [(lambda: 0) for _ in {**{}}]\n"
    "                np.sum = len\n",
    "dunder": "x = ().__class__",
    "dunder name": "b = __builtins__",
    "getattr": "import numpy as np\nf = getattr(np, 'sum')",
    "vars": "import numpy as np\nd = vars(np)",
    "exec": "exec('x = 1')",
    "open": "open('/tmp/x', 'w')",
    "import os": "import os",
    "import sys": "import sys",
    "import a submodule": "import numpy.random",
    "relative import": "from . import x",
    "star import of numpy": "from numpy import *",
    "import a stateful name": "from numpy import seterr",
    "numpy state": "import numpy as np\nnp.seterr(all='raise')",
    "print options": "import numpy as np\nnp.set_printoptions(precision=1)",
    "error state": "import numpy as np\nwith np.errstate(all='raise'):\n    pass",
    "bit generator": "import numpy as np\nnp.random.set_bit_generator(None)",
    "numpy internals": "import numpy as np\nx = np.lib.stride_tricks",
    "module container": "import numpy as np\nnp.typecodes['All'] = ''",
    "array ctypes": "import numpy as np\np = np.zeros(1).ctypes",
    "file output": "import numpy as np\nnp.zeros(1).tofile('x')",
    "module reached through typing": "import typing\ns = typing.sys",
    "private name": "import random\nr = random._inst",
    "metaclass": "class A(metaclass=type):\n    pass",
    "special method": "class A:\n    def __eq__(self, other):\n        return True",
    "unknown attribute": "import numpy as np\nx = np.some_name_no_module_has",
    "attribute read by a match pattern": "import numpy as np\nmatch np.sum:\n"
    "    case object(__globals__=g):\n        g['x'] = 1\n",
    "dunder bound by a match pattern": "match 1:\n    case __builtins__:\n        pass\n",
    "dunder bound by a star pattern": "match []:\n    case [*__x]:\n        pass\n",
    "dunder bound by a mapping pattern": "match {}:\n    case {**__x}:\n        pass\n",
    "dunder argument": "def f(__builtins__):\n    return 1\n",
    "dunder bound by except": "try:\n    pass\nexcept Exception as __builtins__:\n    pass\n",
    "dunder global": "def f():\n    global __builtins__\n    __builtins__ = {}\n",
    "dunder keyword": "d = dict(__class__=1)",
    "class from a dict": "A = type('A', (), {'__eq__': lambda s, o: True})",
    "metaclass by inheritance": "class M(type):\n    pass\n",
    "hasattr": "import numpy as np\nb = hasattr(np, 'testing')",
    "update_wrapper": "import functools\nimport numpy as np\n"
    "functools.update_wrapper(np.sum, len, assigned=('__code__',))",
    "wraps": "from functools import wraps\nimport numpy as np\nwraps(len, assigned=('__code__',))(np.sum)",
    "total_ordering": "import functools\nimport collections\nfunctools.total_ordering(collections.UserList)",
    "get_type_hints": "import typing\ndef f(x: 'len(1)'):\n    pass\ntyping.get_type_hints(f)",
    "typing flags the object it gets": "import typing\nimport numpy as np\ntyping.final(np.sum)",
    "typing flag imported": "from typing import no_type_check",
    "numpy test runner": "import numpy as np\nnp.test()",
    "numpy prints and imports": "import numpy as np\nnp.show_config()",
    "the DSL's own imports": "import common\ns = common.scipy.linalg",
    "type by another name": "import typing\nT = typing.get_origin(typing.Type)",
    "a metaclass from typing": "import typing\nA = typing.ABCMeta('A', (), {})",
    "a class from a dict through NamedTupleMeta": "import typing\n"
    "A = typing.NamedTupleMeta('A', (), {'__module__': 'm', '__eq__': len})",
    "format reads attributes by name": "s = '{0.__class__}'.format(1)",
    "format_map reads attributes by name": "s = '{x.__class__}'.format_map({'x': 1})",
}


@pytest.mark.unit
@pytest.mark.parametrize("name", IMPURE)
def test_ways_to_touch_shared_state_are_impure(allow, name: str) -> None:
    code = IMPURE[name]
    ast.parse(code)  # each is valid Python: it is the rules that refuse it
    assert not pure(code, allow)
    assert not purity.analyse(code, allow)  # on the source too


@pytest.mark.unit
def test_unparsable_oversized_and_nested_sources_are_impure(allow) -> None:
    assert not pure("def f(:\n", allow)
    assert not pure("x = 1\n" * (purity.MAX_SOURCE // 6 + 1), allow)  # valid, but too long
    assert pure("x = 1\n" * (purity.MAX_SOURCE // 6 - 1), allow)
    assert not pure("x = " + "(" * 5000 + ")" * 5000, allow)  # the parser's own limit
    assert not pure("x = " + "-" * 60000 + "1", allow)
    assert not pure("x = 1\0", allow)


@pytest.mark.unit
def test_allowlist_strikes_names_that_denote_containers_or_foreign_modules(allow) -> None:
    for name in (
        "typecodes",
        "sctypeDict",
        "lib",
        "sys",
        "os",
        "abc",
        "ctypes",
        "seterr",
        "register",
        "test",
        "scipy",
        "ndimage",
        "update_wrapper",
        "get_type_hints",
        "final",
        "fromregex",
        "show_config",
        "get_origin",
        "ABCMeta",
        "NamedTupleMeta",
        "format",
    ):
        assert name not in allow.attributes, name
    for name in (
        "zeros", "where", "shape", "append", "ALL_COLORS", "random", "label", "sum", "add",
        "seed", "choice", "List", "Optional", "lru_cache", "namedtuple",
    ):  # fmt: skip
        assert name in allow.attributes, name


PROBE = """from common import *
import numpy as np
import random
# probe {tag}
def transform(input_grid):
    draws = [random.randint(0, 9), int(np.random.randint(0, 10)),
             int(np.random.default_rng().integers(10))]
    colours = [c % 10 for c in Color.ALL_COLORS[:5]]
    return [draws + colours + [Color.RED, len(Color.NOT_BLACK) % 10]]
"""
# pure programs that change everything a pure program can change
MUTATORS = {
    "reseed": "import random\nimport numpy as np\ndef transform(g):\n"
    "    random.seed(1); np.random.seed(1); random.random()\n    return g\n",
    "dsl lists": "from common import *\ndef transform(g):\n"
    "    Color.ALL_COLORS.reverse(); Color.NOT_BLACK.clear(); Color.ALL_COLORS[0] = 7\n"
    "    return g\n",
    "recursion": "def f(n):\n    return f(n + 1)\ndef transform(g):\n    return f(0)\n",
    "runtime error": "def transform(g):\n    return g[100, 100]\n",
    "numpy warning": "import numpy as np\ndef transform(g):\n    return (g / 0).astype(int) * 0\n",
    "cycles": "def transform(g):\n    b = [g]; b.append(b)\n"
    "    def f():\n        return f\n    return g\n",
    "suspended generator": "def gen():\n    try:\n        yield 1\n    finally:\n        pass\n"
    "def transform(g):\n    it = gen(); next(it)\n    return g\n",
}


@pytest.mark.integration
def test_probe_after_mutators_sees_what_a_fresh_fork_sees() -> None:
    task = tiny_task()
    programs = []
    for name, code in MUTATORS.items():
        programs.append(Program("tiny", name, code))
        programs.append(Program("tiny", f"probe after {name}", PROBE.format(tag=name)))
    limits = Limits(timeout_s=2.0, memory_mb=256)
    shared = execute(programs, {"tiny": task}, limits, workers=1)
    reused = {r.program.sample_id: r.record() for r in shared}
    fresh = {
        r.program.sample_id: r.record()
        for r in execute(programs, {"tiny": task}, limits, workers=1, reuse=False)
    }
    assert reused == fresh
    probes = [r for k, r in reused.items() if k.startswith("probe")]
    assert all(p["status"] == "ok" for p in probes), probes
    # the probe's own draws differ per tag; its view of the DSL must be pristine every time
    assert {tuple(p["train_outputs"][0][0][3:]) for p in probes} == {(0, 1, 2, 3, 4, 2, 9)}
    summary = shared.summary()
    assert summary["isolation"]["fresh_process"] == "every program not proven pure"
    assert summary["shared_process"] == len(programs) - 1  # all pure: one process for all
    assert summary["counts"]["runtime_error"] == 2


# programs that passed for pure until the rules covered them, each changing what a later
# program in its process computes
ESCAPES = {
    "match reads a namespace": "import collections\ndef transform(g):\n"
    "    match collections.Counter.most_common:\n        case object(__globals__=d):\n"
    "            d['__builtins__']['len'] = lambda x: 7\n    return g\n",
    "update_wrapper swaps code": "import collections\nimport functools\n"
    "def fake(self, n=None):\n    return [(7, 7)]\ndef transform(g):\n"
    "    functools.update_wrapper(collections.Counter.most_common, fake,\n"
    "                             assigned=('__code__',), updated=())\n    return g\n",
    "a class with special methods from get_origin(Type)": "import typing\nimport collections\n"
    "T = typing.get_origin(typing.Type)\n"
    "def fake(self, n=None):\n    return [(7, 7)]\ndef transform(g):\n"
    "    K = T('K', (collections.Counter,), {'most_common': fake})\n"
    "    typing.Literal[K()]\n    return g\n",
    "get_type_hints evaluates": "import typing\n"
    "def f(x: \"setattr(__import__('numpy'), 'rot90', lambda *a, **k: [[7]])\"):\n"
    "    pass\ndef transform(g):\n    typing.get_type_hints(f)\n    return g\n",
}
ESCAPE_PROBE = """import collections
import numpy as np
# probe {tag}
def transform(g):
    common = collections.Counter([1, 1, 2]).most_common(1)[0][0]
    return [[len([1]), common, int(np.rot90(np.array([[3]]))[0][0])]]
"""


@pytest.mark.integration
@pytest.mark.parametrize("name", ESCAPES)
def test_escapes_of_the_rules_run_alone(allow, name: str) -> None:
    """Each program reaches shared code through a way the rules once missed (a match
    pattern reading `__globals__`, `functools.update_wrapper` swapping a `__code__`, an
    annotation string that `typing.get_type_hints` evaluates); it must be impure, and the
    probe after it must compute what it computes in a fresh fork."""
    assert not pure(ESCAPES[name], allow)
    programs = [Program("tiny", name, ESCAPES[name]), Program("tiny", "probe", ESCAPE_PROBE)]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=2.0), workers=1)
    results = {r.program.sample_id: r for r in run}
    assert results[name].status == "ok", results[name].error
    assert results["probe"].status == "ok", results["probe"].error
    assert results["probe"].record()["train_outputs"] == [[[1, 1, 3]]]


# a pure program whose object stays in numpy's einsum cache, where the next program's
# lookup compares keys with its inherited `UserString.__eq__`, which reads its `data`
LEFT_IN_A_CACHE = """import collections
import numpy as np
def poison(self):
    import common
    common.Color.ALL_COLORS.reverse()
    return "K"
class Order(collections.UserString):
    def __init__(self, *args):
        pass
    data = property(poison)
def transform(g):
    a = np.ones((2, 2))
    np.einsum("ij,jk->ik", a, a, optimize=True, order=Order())
    return g
"""
CACHE_PROBE = """from common import *
import numpy as np
# probe
def transform(g):
    a = np.ones((2, 2))
    s = np.einsum("ij,jk->ik", a, a, optimize=True)
    return [[int(s[0, 0]), Color.ALL_COLORS[0], Color.ALL_COLORS[1]]]
"""


@pytest.mark.integration
def test_objects_a_program_leaves_in_shared_caches_do_not_reach_the_next(allow) -> None:
    """The program is pure by the rules (it calls allowed functions on its own objects),
    yet numpy's lru cache keeps its key object past its end; a kept child empties every
    lru cache of the warm image after each program, so the probe after it never runs the
    program's code and sees a pristine DSL."""
    assert pure(LEFT_IN_A_CACHE, allow)
    programs = [Program("tiny", "left", LEFT_IN_A_CACHE), Program("tiny", "probe", CACHE_PROBE)]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=2.0), workers=1)
    results = {r.program.sample_id: r for r in run}
    assert run.summary()["shared_process"] == 1  # the probe did run in the same process
    assert results["probe"].record()["train_outputs"] == [[[2, 0, 1]]]


@pytest.mark.unit
def test_shared_caches_are_every_lru_cache_of_the_process() -> None:
    """The worker's list, made once from its warm image, has typing's, numpy's and
    scipy's caches, and calling it empties them."""
    import typing

    from arcjobs.sandbox.child import shared_caches
    from arcjobs.sandbox.dsl import load_common

    load_common()  # what a worker's warm image holds: numpy, scipy.fft, the DSL
    clears = shared_caches()
    assert {"typing", "numpy._core.einsumfunc", "scipy.fft._helper"} <= {
        getattr(clear.__self__, "__module__", "") for clear in clears
    }
    assert set(typing._cleanups) <= set(clears)  # typing's own list of its caches
    # typing's only: other threads of this test process may be filling the rest (pathlib's)
    typing_caches = [clear.__self__ for clear in typing._cleanups]
    typing.Literal[12345]
    assert sum(cache.cache_info().currsize for cache in typing_caches) >= 1
    for clear in clears:
        clear()
    assert sum(cache.cache_info().currsize for cache in typing_caches) == 0


@pytest.mark.integration
def test_impure_program_gets_a_fresh_process_and_leaves_none_behind() -> None:
    """The process an impure program ran in is killed; closing the pool ends the kept
    child and the spare too: no process, temp dir, cgroup or fd outlives the run."""
    before = leftovers()
    task = tiny_task()
    impure = "import os\ndef transform(g):\n    os.environ['X'] = '1'\n    return g\n"
    check = "def transform(g):\n    return g\n# {}\n"
    programs = [Program("tiny", 0, check.format(0)), Program("tiny", 1, impure)]
    programs += [Program("tiny", i, check.format(i)) for i in (2, 3)]
    run = execute(programs, {"tiny": task}, Limits(timeout_s=2.0), workers=1)
    results = list(run)
    assert [r.status for r in sorted(results, key=lambda r: r.index)] == ["ok"] * 4
    # 0 fresh, 1 (impure) in 0's process, then killed; 2 fresh again, 3 in 2's process
    assert run.summary()["shared_process"] == 2
    assert leftovers() == before


@pytest.mark.unit
def test_a_child_that_grew_or_has_threads_is_not_fit() -> None:
    """`fits` on a real process (this one): as it is, bigger than it was, with a thread;
    read through one open /proc fd, which must show each change as it happens."""
    import os
    import threading

    from arcjobs.sandbox.worker import GROWTH_LIMIT, fits, proc_status

    stat_fd = os.open(f"/proc/{os.getpid()}/stat", os.O_RDONLY)
    now = proc_status(stat_fd)
    assert now is not None and now["cpu"] > 0
    single = {**now, "threads": 1}
    assert fits(single, single)
    assert not fits({**single, "size": single["size"] - GROWTH_LIMIT - 1}, single)
    assert not fits({**single, "resident": single["resident"] - GROWTH_LIMIT - 1}, single)
    assert not fits({}, single) and not fits(single, None)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert proc_status(stat_fd)["threads"] >= 2
        assert not fits(single, proc_status(stat_fd))
    finally:
        stop.set()
        thread.join()
        os.close(stat_fd)


@pytest.mark.unit
def test_worker_reads_jobs_ahead() -> None:
    """`Jobs` decodes frames as they arrive, keeps each frame as sent (to pass on
    unchanged), says when reading ahead is worth it (nothing ready, input not ended), and
    does not wait when told not to."""
    import os

    from arcjobs.sandbox.protocol import encode
    from arcjobs.sandbox.worker import Jobs

    r, w = os.pipe()
    try:
        jobs = Jobs(r)
        assert jobs.want() and jobs.next(wait=False) is None
        first = encode({"code": "def transform(g):\n    return g\n"})
        os.write(w, first[:3])  # half a header: nothing ready yet
        jobs.pull()
        assert jobs.want() and not jobs.ready
        os.write(w, first[3:] + encode({"code": "import os\n"}))
        jobs.pull()
        assert not jobs.want() and len(jobs.ready) == 2
        assert jobs.ready[0][1] == first
        os.close(w)
        w = -1
        assert jobs.next(wait=False)[0]["code"].startswith("def") and jobs.next() is not None
        assert jobs.next() is None and jobs.eof
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


@pytest.mark.integration
def test_limits_hold_for_pure_programs_in_a_shared_process() -> None:
    """Pure programs that run forever (in Python or in C), allocate too much or return too
    much, each right after a pure program (so in its process): classified as in a fresh
    fork, and a benign follower is fine."""
    ok = "def transform(g):\n    return g\n# {}\n"
    cases = {
        "loop": ("def transform(g):\n    while True:\n        pass\n", "timeout"),
        "loop in C": ("def transform(g):\n    return sum(range(10**12))\n", "timeout"),
        "memory": (
            "import numpy as np\ndef transform(g):\n    return np.ones((10**5, 10**5))\n",
            "memory",
        ),
        "huge output": ("def transform(g):\n    return [[1] * 100] * 100\n", "invalid_output"),
        "recursion": ("def f(n):\n    return f(n + 1)\ndef transform(g):\n    return f(0)\n",
                      "runtime_error"),
    }  # fmt: skip
    programs = []
    for name, (code, _) in cases.items():
        programs += [Program("tiny", f"before {name}", ok.format(f"before {name}"))]
        programs += [Program("tiny", name, code), Program("tiny", f"after {name}", ok.format(name))]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=1.0, memory_mb=256), workers=1)
    results = {r.program.sample_id: r for r in run}
    for name, (_, status) in cases.items():
        assert results[name].status == status, (name, results[name].error)
        assert results[f"after {name}"].status == "ok", name
        assert results[f"after {name}"].train_correct == [False]  # the identity, as expected


@pytest.mark.integration
def test_cpu_limit_is_per_program_in_a_shared_process() -> None:
    """RLIMIT_CPU counts a process's whole life: five pure programs of ~0.4 s CPU each
    (two inputs each) in one process exceed a 1 s limit together, and each must still get
    its own second."""
    busy = "def transform(g):\n    sum(range(12_000_000))\n    return g\n# {}\n"
    programs = [Program("tiny", i, busy.format(i)) for i in range(5)]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=1.0), workers=1)
    results = sorted(run, key=lambda r: r.index)
    assert [r.status for r in results] == ["ok"] * 5, [r.error for r in results]
    assert run.summary()["shared_process"] == 4
    assert sum(r.cpu_s for r in results) > 1.0


@pytest.mark.integration
def test_a_held_result_reaches_the_pool_while_a_long_program_runs() -> None:
    """A worker holds results to write several at once, but not for long: the result of
    the program before one that loops arrives while the loop runs, not with the loop's
    own result when it is killed at the time limit. (Two durations compared with each
    other, a factor of about 100 apart, not a speed asserted.)"""
    import time

    ok = "def transform(g):\n    return g\n# {}\n"
    loop = "def transform(g):\n    while True:\n        pass\n"
    programs = [Program("tiny", i, ok.format(i)) for i in range(2)]
    programs += [Program("tiny", "loop", loop)]
    programs += [Program("tiny", i, ok.format(i)) for i in range(3, 10)]
    arrived, results = {}, {}
    for r in execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=2.0), workers=1):
        arrived[r.program.sample_id], results[r.program.sample_id] = time.monotonic(), r
    assert results["loop"].status == "timeout"
    assert all(r.status == "ok" for key, r in results.items() if key != "loop")
    assert arrived["loop"] - arrived[1] > results["loop"].wall_s / 2


@pytest.mark.unit
def test_a_fresh_common_is_frozen_and_the_one_before_emptied() -> None:
    """So the collection after each program walks only what that program made. Run in a
    subprocess: freezing pytest's own heap would keep its garbage for the whole session."""
    import subprocess
    import sys

    script = """
import gc, sys
from arcjobs.sandbox import child, dsl
gc.collect(); gc.freeze()
ctx = {"dsl_code": dsl.compile_common()[1], "dsl_path": str(dsl.DSL_PATH)}
first = child.fresh_common(ctx, None)
second = child.fresh_common(ctx, first)
assert sys.modules["common"] is second and len(vars(first)) == 0, len(vars(first))
seen = {id(o) for o in gc.get_objects()}
assert id(second.flood_fill) not in seen and id(vars(second)) not in seen
assert gc.collect() == 0
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.integration
def test_a_kept_child_runs_a_long_series_without_growing_out_of_reuse() -> None:
    """What a fresh `common` leaves behind once frozen (its classes) must stay small
    enough that a long series of pure programs keeps one process (a child is retired at
    GROWTH_LIMIT of growth)."""
    n = 1000
    code = "from common import *\ndef transform(g):\n    return flood_fill  # {}\n"
    programs = [Program("tiny", i, code.format(i)) for i in range(n)]
    run = execute(programs, {"tiny": tiny_task()}, Limits(timeout_s=2.0), workers=1)
    assert {r.status for r in run} == {"invalid_output"}  # a function is not a grid
    assert run.summary()["shared_process"] == n - 1


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ("from common import *\ndef transform(g):\n    return g\n", True),
        ("import os\ndef transform(g):\n    return g\n", False),
        ("def transform(g):\n    os.environ['X'] = '1'\n", False),
        ("def transform(g:\n", False),  # no code object: not kept for
    ],
)
def test_the_child_reports_its_verdict_before_the_program_runs(
    allow, tmp_path, code: str, verdict: bool
) -> None:
    """Where it may run another program, the child writes to its verdict pipe whether the
    compiled program is pure, naming the program by its number in this child, and goes on
    to the next job only then; without an allowlist (fork per program) it writes nothing
    and never goes on. Run here, in-process: the child's `execute` on programs that do
    nothing harmful."""
    import os

    from arcjobs.sandbox.child import execute as run_in_child
    from arcjobs.sandbox.protocol import FrameReader

    for allowlist, expected in ((allow, [{"pure": verdict, "job": 3}]), (None, [])):
        r, w = os.pipe()
        try:
            ctx = {"reuse": True, "scratch": str(tmp_path), "caches": (), "allow": allowlist}
            _, goes_on = run_in_child(code, [], ctx, w, 3)
            assert goes_on is (verdict and allowlist is not None)
            os.close(w)
            w = -1
            frames = list(FrameReader().feed(os.read(r, 1 << 16)))
            assert [f.message for f in frames] == expected
        finally:
            os.close(r)
            if w != -1:
                os.close(w)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("written", "pure"),
    [
        ([{"pure": True, "job": 0}], [True]),
        ([], [False]),  # a child that died first
        ([{"pure": False, "job": 0}], [False]),
        ([{"pure": True, "job": 1}], [False]),  # another program's verdict
        ([{"pure": True}], [False]),  # names no program
        ([{"pure": "yes", "job": 0}], [False]),
        # the next program's verdict is there too, from a child that holds its next job
        ([{"pure": True, "job": 0}, {"pure": True, "job": 1}], [True, True]),
        ([{"pure": True, "job": 0}, {"pure": True, "job": 0}], [True, False]),
    ],
)
def test_the_worker_keeps_a_child_only_on_the_pure_verdict_of_that_program(
    written: list, pure: list
) -> None:
    """The worker reads the verdict pipe once a result is in, without waiting on it, one
    verdict per result, and believes only one that names the program it asks about."""
    import os

    from arcjobs.sandbox.protocol import encode
    from arcjobs.sandbox.worker import Verdicts

    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        verdicts = Verdicts(r)
        for message in written:
            os.write(w, encode(message))
        assert [verdicts.pure(job) for job in range(len(pure))] == pure
        os.write(w, encode({"pure": True, "job": len(pure)})[:-1])  # a frame cut short
        assert verdicts.pure(len(pure)) is False
    finally:
        os.close(r)
        os.close(w)


# Python code behind allowed names that does something the scan below looks for, and why it
# cannot change shared state: reviewed by hand, function by function
REVIEWED = {
    "collections.namedtuple": "names the class it makes; reads its caller's module name",
    "collections.UserDict.__copy__": "copies its own instance",
    "collections.UserList.__copy__": "copies its own instance",
    "copy.copy": "looks up __copy__ and __reduce_ex__ by fixed names",
    "copy.deepcopy": "looks up __deepcopy__ and __reduce_ex__ by fixed names",
    "functools.cached_property.__get__": "writes its own instance's __dict__",
    "functools.lru_cache": "wraps the function in a wrapper it makes",
    "functools.lru_cache.<locals>.decorating_function": "the same, as a decorator",
    "functools.singledispatch": "wraps the function in a wrapper it makes",
    "functools.singledispatch.<locals>.register": "reads annotations of the program's function",
    "functools.singledispatchmethod.__get__": "wraps the method in a wrapper it makes",
    "functools.singledispatchmethod.__isabstractmethod__": "reads a fixed name",
    "functools.partialmethod.__get__": "reads a fixed name",
    "functools.partialmethod.__isabstractmethod__": "reads a fixed name",
    "reprlib.recursive_repr.<locals>.decorating_function": "names the wrapper it makes",
    "numpy.bmat": "reads names from its caller's own frame",
    "numpy._core.getlimits.finfo.__repr__": "reads its own fields by fixed names",
    "numpy._core.getlimits.finfo.__str__": "reads its own fields by fixed names",
    "numpy._core.getlimits.finfo.__str__.<locals>.get_str": "the same",
    "numpy._core.numeric.isclose": "reads a fixed name",
    "numpy._core.records.recarray.__setattr__": "sets attributes of its own instance",
    "numpy._core.records.record.__setattr__": "sets attributes of its own instance",
    "numpy._core.records.record.pprint.<locals>.<listcomp>": "reads its own fields",
    "numpy.lib._function_base_impl.meshgrid": "sets .shape of arrays it makes",
    "numpy.lib._histograms_impl.histogram": "sets .real / .imag of arrays it makes",
    "numpy.lib._polynomial_impl.poly1d.__init__": "writes its own instance's __dict__",
    "numpy.lib._polynomial_impl.poly1d._coeffs": "writes its own instance's __dict__",
    "numpy.linalg._linalg.tensorsolve": "sets .shape of arrays it makes",
    "random.Random.__init_subclass__": "reads the subclass being made",
    "typing.Generic.__init_subclass__": "reads the subclass being made",
    "typing.Protocol.__init_subclass__": "reads and sets the subclass being made",
    "typing.Protocol.__init_subclass__.<locals>._proto_hook": "reads the class it checks",
    "typing._no_init_or_replace_init": "sets __init__ of the instance's class, which only "
    "a program's own protocol class can have (typing's protocols refuse instances)",
    "typing.TypeVar.__typing_subst__": "reads a fixed name",
    "typing.TypeVarTuple.__typing_prepare_subst__": "reads a fixed name",
    "typing.get_overloads": "reads the registry that only the denied `overload` fills",
}
# what lets Python code reach attributes by name, evaluate strings or read frames
_REACHING = frozenset(
    {
        "setattr", "delattr", "getattr", "eval", "exec", "compile", "_getframe", "globals",
        "vars", "update_wrapper", "__setattr__", "__dict__",
    }
)  # fmt: skip


def _python_code(value: object) -> list[tuple[object, bool]]:
    """The Python functions behind an allowed value, each with whether it is a method (whose
    attribute stores go to its own instance): a function (unwrapping numpy's dispatchers),
    or every function of a class and its bases."""
    import inspect
    import types

    if isinstance(value, type):
        found = []
        for klass in value.__mro__:
            for member in vars(klass).values():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                parts = (
                    (member.fget, member.fset, member.fdel)
                    if isinstance(member, property)
                    else (member,)
                )
                found += [(f, True) for f in parts if isinstance(f, types.FunctionType)]
        return found
    if callable(value):
        value = inspect.unwrap(value)
    return [(value, False)] if isinstance(value, types.FunctionType) else []


def _reaches(function, method: bool) -> dict[str, set[str]]:
    """What in `function` and the functions nested in it the scan looks for, by the
    qualified name of the code that does it."""
    import dis
    import types

    found: dict[str, set[str]] = {}
    todo = [function.__code__]
    while todo:
        code = todo.pop()
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        hits = _REACHING & set(code.co_names)
        if not method:  # a function storing attributes stores them on something it was given
            hits |= {
                f"{i.opname} {i.argval}"
                for i in dis.get_instructions(code)
                if i.opname in ("STORE_ATTR", "DELETE_ATTR")
            }
        if hits:
            found.setdefault(f"{function.__module__}.{code.co_qualname}", set()).update(hits)
    return found


@pytest.mark.unit
def test_allowed_python_code_that_reaches_by_name_has_been_reviewed(allow) -> None:
    """Every Python function behind an allowed attribute name that sets attributes on what
    it is given, uses `setattr` / `getattr` / `eval` / frames, or writes a `__dict__` is
    either denied by the rules or in REVIEWED with the reason it changes nothing shared.
    A new Python, numpy or DSL that brings one more fails here until someone looks."""
    import importlib

    from arcjobs.sandbox.dsl import load_common

    modules = [importlib.import_module(m) for m in sorted(purity.IMPORTABLE - {"common"})]
    modules += [importlib.import_module(m) for m in purity._SUBMODULES] + [load_common()]
    unreviewed: dict[str, set[str]] = {}
    for module in modules:
        for name, value in vars(module).items():
            if name not in allow.attributes:
                continue
            for function, method in _python_code(value):
                for where, hits in _reaches(function, method).items():
                    if where not in REVIEWED:
                        unreviewed.setdefault(where, set()).update(hits)
    assert unreviewed == {}
