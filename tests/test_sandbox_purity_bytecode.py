"""The purity rules read from compiled code (`sandbox/bytecode.py`) against the same rules
read from the syntax tree (`sandbox/purity.py`), which stay the reference.

The child decides from bytecode; these tests hold that decision to the tree rules: on every
program the tests have — the corpus, the impure and escape cases, the mutators, the
adversarial suite (as it runs, and its bodies under a pure header), and programs written
to use every piece of syntax programs use — a program the bytecode calls pure is pure by
the tree rules too, and the syntax programs use is not refused by either.
"""

from __future__ import annotations

import sys
import types

import pytest
import test_sandbox_adversarial as adversarial
import test_sandbox_reuse as reuse

from arcjobs.sandbox import bytecode, purity

pytestmark = pytest.mark.unit

# programs that use the syntax model programs use, all pure by the tree rules (their own
# methods take names from the allowlist: attributes outside it are impure either way)
FEATURES = {
    "class with docstring and init": '''from common import *
class Box:
    """A box."""
    size: int = 3
    def __init__(self, grid):
        pass
    def sum(self):
        return 1
def transform(input_grid):
    return input_grid if Box(input_grid).sum() else input_grid
''',
    "super and decorators": """import functools
class A:
    def __init__(self):
        pass
    def copy(self):
        return 1
class B(A):
    def __init__(self):
        super().copy()
    @property
    def real(self):
        return super().copy()
    @staticmethod
    def mean():
        return 2
@functools.lru_cache(maxsize=None)
def f(n):
    return n if n < 2 else f(n - 1) + f(n - 2)
def transform(g):
    return g if B().real + B.mean() + f(5) else g
""",
    "module annotations and docstring": '''"""Module doc."""
import numpy as np
x: int = 3
y: list
def transform(g: np.ndarray) -> np.ndarray:
    z: int = 4
    return g
''',
    "match statement": """import numpy as np
def transform(g):
    match list(g.shape):
        case [a, b] if a == b:
            pass
        case [a, *rest]:
            pass
        case {"k": v, **others}:
            pass
        case _:
            pass
    match g:
        case np.ndarray(shape=s):
            pass
    return g
""",
    "closures nonlocal global": """counter = 0
def transform(g):
    global counter
    counter += 1
    total = 0
    def add(n):
        nonlocal total
        total += n
        return total
    add(1)
    squares = [x * x for x in range(3)]
    gen = (x for x in range(3))
    d = {k: v for k, v in zip("ab", (1, 2))}
    s = {x for x in range(3)}
    f = lambda a, *args, b=1, **kw: a
    if (n := len(squares)) > 2:
        pass
    return g
""",
    "exceptions and with": """import itertools
def transform(g):
    try:
        raise ValueError("x")
    except (ValueError, TypeError) as e:
        msg = str(e)
    finally:
        pass
    try:
        pass
    except* ValueError:
        pass
    for a, b in itertools.product(range(2), repeat=2):
        continue
    while False:
        break
    else:
        pass
    assert True, "fine"
    return g
""",
    "imports of every allowed kind": """from common import *
from typing import *
from typing import List, Tuple
import numpy as np, random as rnd
from collections import Counter, defaultdict
from numpy import zeros as zz
import math, itertools, copy, functools
def transform(input_grid):
    return np.array(input_grid)
""",
    "async and yield": """import collections
async def co():
    return 1
def gen():
    yield 1
    yield from [2, 3]
def transform(g):
    list(gen())
    c = co()
    return g
""",
    "f-strings and formatting": """def transform(g):
    s = f"{g.shape!r:>10} {len(g)=}"
    t = "%d" % 3 + "%(a)s" % {"a": 1}
    return g
""",
    "star args and kwargs": """def f(*args, **kwargs):
    return args, kwargs
def transform(g):
    f(*[1, 2], **{"a": 1}, b=2)
    a, *b = [1, 2, 3]
    return g
""",
    "dsl heavy": """from common import *
import numpy as np
def transform(input_grid):
    objects = find_connected_components(input_grid, background=Color.BLACK, connectivity=4)
    output_grid = np.zeros_like(input_grid)
    for obj in objects:
        x, y, w, h = bounding_box(obj)
        sprite = crop(obj)
        blit_sprite(output_grid, sprite, x, y, background=Color.BLACK)
    return output_grid
""",
    "class keywords": """class A:
    pass
class B(A):
    pass
def transform(g):
    return g
""",
    "extended args": "def transform(g):\n    x = ["
    + ", ".join(str(i) for i in range(400))
    + "]\n    return g\n",
}


def compiled(code: str) -> types.CodeType:
    """The program's code as the child compiles it."""
    return compile(code, "<program>", "exec", dont_inherit=True)


def programs() -> dict[str, str]:
    """Every program the sandbox tests have, by a name that says where it comes from."""
    found = {f"corpus {p.stem}": p.read_text() for p in reuse.CORPUS.glob("*.py")}
    found |= {f"impure {k}": v for k, v in reuse.IMPURE.items()}
    found |= {f"escape {k}": v for k, v in reuse.ESCAPES.items()}
    found |= {f"mutator {k}": v for k, v in reuse.MUTATORS.items()}
    found |= {"probe": reuse.PROBE.format(tag=0), "left in a cache": reuse.LEFT_IN_A_CACHE}
    found |= {f"feature {k}": v for k, v in FEATURES.items()}
    for case in adversarial.CASES:
        found[f"adversarial {case.name}"] = adversarial.source(case)
        found[f"adversarial body {case.name}"] = adversarial.source(case, imports="")
    return found


def test_the_bytecode_rules_apply_to_this_python() -> None:
    """Only on 3.11, and there every opcode is reviewed: plain, checked, or one of the three
    that make a program impure (a new opcode would fall to the last, unnoticed)."""
    import dis

    assert bytecode.SUPPORTED is (sys.version_info[:2] == (3, 11))
    if not bytecode.SUPPORTED:
        return
    checked = {
        bytecode._LOAD_CONST, bytecode._KW_NAMES, bytecode._MATCH_CLASS, bytecode._IMPORT_NAME,
        bytecode._IMPORT_FROM, bytecode._IMPORT_STAR,
    }  # fmt: skip
    reviewed = bytecode._PLAIN | bytecode._NAMES | bytecode._ATTRIBUTES | checked
    refused = {name for name, op in dis.opmap.items() if op not in reviewed}
    assert refused == {"STORE_ATTR", "DELETE_ATTR", "PRINT_EXPR"}


@pytest.mark.skipif(not bytecode.SUPPORTED, reason="the bytecode rules are for CPython 3.11")
def test_bytecode_pure_implies_tree_pure_on_every_program_the_tests_have(reuse_allow) -> None:
    verdicts = {}
    for name, code in programs().items():
        try:
            code_object = compiled(code)
        except BaseException:  # the child reports a syntax error and no verdict
            continue
        verdicts[name] = (
            bytecode.is_pure(code_object, len(code), reuse_allow),
            purity.analyse(code, reuse_allow),
        )
    assert len(verdicts) > 200
    assert [name for name, (by_code, by_tree) in verdicts.items() if by_code and not by_tree] == []
    # and both refuse and accept plenty: the comparison is not between two constants
    assert sum(by_code for by_code, _ in verdicts.values()) > 60
    assert sum(not by_code for by_code, _ in verdicts.values()) > 100


@pytest.mark.skipif(not bytecode.SUPPORTED, reason="the bytecode rules are for CPython 3.11")
@pytest.mark.parametrize("name", FEATURES)
def test_syntax_programs_use_is_pure_both_ways(reuse_allow, name: str) -> None:
    code = FEATURES[name]
    assert purity.analyse(code, reuse_allow)
    assert bytecode.is_pure(compiled(code), len(code), reuse_allow)


@pytest.mark.skipif(not bytecode.SUPPORTED, reason="the bytecode rules are for CPython 3.11")
def test_what_the_bytecode_rules_see_that_runs(reuse_allow) -> None:
    """Names and constants past index 255 (EXTENDED_ARG), an expression statement printed
    in interactive mode (an opcode no program needs), and the one known difference from the
    tree rules: a `global __x` that no statement uses compiles to nothing, so only the tree
    rules refuse it."""
    names = sorted(n for n in reuse_allow.attributes if n.isidentifier())[:300]
    many = "import numpy as np\nx = [" + ", ".join(f"np.{n}" for n in names) + "]\n"
    assert bytecode.is_pure(compiled(many), len(many), reuse_allow)
    denied_last = many.replace("]\n", ", np.seterr]\n")
    assert not bytecode.is_pure(compiled(denied_last), len(denied_last), reuse_allow)
    stored_last = many + "np.x = 1\n"
    assert not bytecode.is_pure(compiled(stored_last), len(stored_last), reuse_allow)
    interactive = compile("1 + 1", "<program>", "single", dont_inherit=True)
    assert not bytecode.is_pure(interactive, 5, reuse_allow)
    declared = "def f():\n    global __builtins__\n"
    assert bytecode.is_pure(compiled(declared), len(declared), reuse_allow)
    assert not purity.analyse(declared, reuse_allow)


def test_the_child_checks_the_source_where_the_bytecode_rules_do_not_apply(
    reuse_allow, monkeypatch
) -> None:
    """Another CPython cannot run here, so `bytecode.SUPPORTED` is patched to False to stand
    for one: the child then checks the source, and refuses what only the tree rules refuse."""
    from arcjobs.sandbox.child import is_pure

    declared = "def f():\n    global __builtins__\n"
    monkeypatch.setattr(bytecode, "SUPPORTED", False)
    assert not is_pure(declared, compiled(declared), reuse_allow)
    monkeypatch.setattr(bytecode, "SUPPORTED", True)
    assert is_pure(declared, compiled(declared), reuse_allow) == (sys.version_info[:2] == (3, 11))


@pytest.fixture(scope="module")
def reuse_allow() -> purity.Allowlist:
    from arcjobs.sandbox.dsl import DSL_PATH, load_common

    return purity.Allowlist.build(load_common(), DSL_PATH.read_text())
