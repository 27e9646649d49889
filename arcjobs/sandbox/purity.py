"""Which programs may share a process: a static proof that a program changes nothing shared.

Forking a fresh child for every program is what makes "nothing one program does reaches
another" hold for any program at all, and it costs more than a typical BARC program takes to
run (a fork, its exit and the copy-on-write faults of the numpy/scipy image: 3-5 ms here,
against ~2 ms for a corpus program). Most model programs, though, only call DSL, numpy and
standard-library functions on their own arrays. For those the child may run the next such
program too, as long as it can be *shown before running* that the program cannot alter
anything the next one would see. The rules below are that proof; a program that breaks any
of them is not "pure" and runs alone in a fresh fork, exactly as before:

- imports only of modules already loaded in the warm image (`IMPORTABLE`), and star imports
  only of `common` and `typing` (the DSL itself is loaded afresh for every program);
- no attribute stores or deletions at all (`x.y = ...`), so no shared module, class or
  function can be rebound; subscript stores remain, and can only reach objects the program
  made (no name below leads to a shared container);
- no name or attribute starting with `_`, except the program's own names (no dunders, so no
  `__class__`, `__globals__`, `__code__`, `__builtins__`, `__import__`), and no special
  methods but `__init__` (a shared cache holding one of the program's objects could call its
  `__eq__` or `__hash__` during a later program);
- no reflective or escaping builtins (`eval`, `exec`, `getattr`, `vars`, `globals`, `open`,
  `memoryview`, ...), and no numpy call that changes process-wide state (`seterr`,
  `set_printoptions`, `errstate`, `set_bit_generator`, file I/O);
- every attribute name must be on an allowlist built from the warm image itself: the methods
  of the value types programs use (arrays, lists, dicts, ...), the DSL's names (including the
  attributes its objects carry), and the names of the allowed modules whose value is a
  function, a class, a number, a string or another allowed module. A name that somewhere in
  those modules denotes anything else (a dict, a list, a module outside the set) is struck
  off, whatever else it also names.

What remains shared is state the child resets itself before every program: the `random` and
`numpy.random` generators (seeded per program, as in a fresh child) and the scratch directory
(emptied by the worker). What the proof does not cover is a memory-safety bug in CPython or
numpy reachable from allowed calls; `Pool(reuse=False)` / `--fork-per-program` rules that out
too, at the fork's price.
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterable

# modules a pure program may import: all preloaded by the worker, so importing them loads
# nothing new into the shared process (`common` is replaced by a fresh copy per program)
IMPORTABLE = frozenset(
    {"common", "numpy", "typing", "random", "math", "itertools", "collections", "copy", "functools"}
)
STAR_IMPORTABLE = frozenset({"common", "typing"})
# modules reachable as attributes of the importable ones that are just as safe to call into
_SUBMODULES = ("numpy.random", "numpy.linalg", "numpy.fft")
# builtins that reach, rebind or run things by name, or touch the outside world
_DENIED_NAMES = frozenset(
    {
        "eval", "exec", "compile", "globals", "locals", "vars", "getattr", "setattr",
        "delattr", "open", "input", "breakpoint", "memoryview", "exit", "quit", "help",
    }
)  # fmt: skip
# functions of the allowed modules that change process-wide state or do file I/O
_STATEFUL = frozenset(
    {
        "seterr", "seterrcall", "setbufsize", "set_printoptions", "printoptions", "errstate",
        "set_string_function", "set_bit_generator", "load", "save", "savez",
        "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "tofile", "dump",
        "memmap", "ctypes", "ctypeslib", "overload",
    }
)  # fmt: skip
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None))
MAX_SOURCE = 64 * 1024  # longer sources are not analysed: they run alone


class Allowlist:
    """The attribute names a pure program may use, derived from the live warm image."""

    def __init__(self, attributes: frozenset[str], denied_names: frozenset[str]) -> None:
        self.attributes = attributes
        self.denied_names = denied_names

    @classmethod
    def build(cls, dsl: types.ModuleType, dsl_source: str) -> Allowlist:
        """Read the allowed modules (already imported), the DSL module `dsl` and its source
        (the attributes its objects get in `__init__` are found only there)."""
        import collections
        import random

        import numpy

        # the types of values a program makes itself (its methods act on the program's own)
        value_types: list[type] = [
            numpy.ndarray, numpy.generic, numpy.int64, numpy.bool_, numpy.dtype, list, dict,
            set, frozenset, tuple, str, bytes, int, float, complex, bool, range, slice,
            collections.Counter, collections.defaultdict, collections.deque,
            collections.OrderedDict, numpy.random.Generator, numpy.random.RandomState,
            random.Random,
        ]  # fmt: skip
        allowed = {n for t in value_types for n in dir(t) if not n.startswith("_")}
        for value in vars(dsl).values():  # the DSL is fresh per program: all its names go
            if isinstance(value, type) and value.__module__ == dsl.__name__:
                allowed.update(n for n in vars(value) if not n.startswith("_"))
        allowed.update(n for n in vars(dsl) if not n.startswith("_"))
        allowed.update(
            node.attr
            for node in ast.walk(ast.parse(dsl_source))
            if isinstance(node, ast.Attribute) and not node.attr.startswith("_")
        )
        names = sorted(IMPORTABLE - {"common"}) + list(_SUBMODULES)
        modules = [importlib.import_module(m) for m in names]  # all loaded already
        safe_modules = {id(m) for m in modules}
        unsafe: set[str] = set(_STATEFUL)
        for module in modules:
            for name, value in vars(module).items():
                if name.startswith("_"):
                    continue
                if _safe(value, safe_modules):
                    allowed.add(name)
                else:
                    unsafe.add(name)
        # `from common import *` also gives numpy and random: their unsafe names stay unsafe
        return cls(frozenset(allowed - unsafe), _DENIED_NAMES | _STATEFUL)


def _safe(value: object, safe_modules: set[int]) -> bool:
    if isinstance(value, types.ModuleType):
        return id(value) in safe_modules
    return callable(value) or isinstance(value, _IMMUTABLE)


def is_pure(tree: ast.AST, allow: Allowlist) -> bool:
    """True when the rules in this module's docstring prove `tree` changes nothing shared.

    Visits every node like `ast.walk`, with an explicit stack (no recursion, so no depth
    limit) and without its generators, which makes it about 40% faster.
    """
    checks, node_type = _CHECKS, ast.AST
    todo: list[object] = [tree]
    while todo:
        node = todo.pop()
        if not isinstance(node, node_type):  # names of `global`, None keys of `{**d}`
            continue
        check = checks.get(type(node))
        if check is not None and not check(node, allow):
            return False
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                todo.extend(value)
            elif isinstance(value, node_type):
                todo.append(value)
    return True


def _attribute(node: ast.Attribute, allow: Allowlist) -> bool:
    return isinstance(node.ctx, ast.Load) and node.attr in allow.attributes


def _name(node: ast.Name, allow: Allowlist) -> bool:
    return not node.id.startswith("__") and node.id not in allow.denied_names


def _import(node: ast.Import, allow: Allowlist) -> bool:
    return all(_module_ok(a.name) for a in node.names)


def _import_from(node: ast.ImportFrom, allow: Allowlist) -> bool:
    module = node.module or ""
    return (
        node.level == 0
        and _module_ok(module)
        and _names_ok(module, (a.name for a in node.names), allow)
    )


def _class(node: ast.ClassDef, allow: Allowlist) -> bool:
    return not node.keywords  # no metaclass tricks


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, allow: Allowlist) -> bool:
    # special methods let shared code call back into the program later (a cached typing
    # alias comparing its key with `__eq__`, say), after the program has ended
    return not node.name.startswith("__") or node.name == "__init__"


def _alias(node: ast.alias, allow: Allowlist) -> bool:
    return not (node.asname or "").startswith("__")


# the node types a rule applies to (allowlisted attribute names never start with "_")
_CHECKS = {
    ast.Attribute: _attribute,
    ast.Name: _name,
    ast.Import: _import,
    ast.ImportFrom: _import_from,
    ast.ClassDef: _class,
    ast.FunctionDef: _function,
    ast.AsyncFunctionDef: _function,
    ast.alias: _alias,
}


def _module_ok(name: str) -> bool:
    return name in IMPORTABLE


def _names_ok(module: str, names: Iterable[str], allow: Allowlist) -> bool:
    """`from module import names`: a star only from `STAR_IMPORTABLE`; names of the DSL
    and typing as they are, those of other modules only if allowed as attributes."""
    for name in names:
        if name == "*":
            ok = module in STAR_IMPORTABLE
        else:
            ok = not name.startswith("_") and name not in allow.denied_names
            ok = ok and (module in STAR_IMPORTABLE or name in allow.attributes)
        if not ok:
            return False
    return True


def analyse(code: str, allow: Allowlist) -> bool:
    """Whether the program `code` is pure; False if it is too long to analyse or does not parse.

    Runs in the worker, on untrusted text: the length is checked before parsing, parsing
    never executes anything, and the walk over the tree is iterative (no recursion limit).
    """
    if len(code) > MAX_SOURCE:
        return False
    try:
        tree = ast.parse(code, "<program>")
    except BaseException:  # SyntaxError, ValueError (NUL bytes), the parser's stack limits
        return False
    return is_pure(tree, allow)
