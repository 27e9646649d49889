"""Which programs may share a process: a static proof that a program changes nothing shared.

Forking a fresh child for every program is what makes "nothing one program does reaches
another" hold for any program at all, and it costs more than a typical BARC program takes to
run (a fork, its exit and the copy-on-write faults of the numpy/scipy image: 3-5 ms here,
against ~2 ms for a corpus program). Most model programs, though, only call DSL, numpy and
standard-library functions on their own arrays. For those the child may run the next such
program too, as long as it can be *shown before running* that the program cannot alter
anything the next one would see. The rules below are that proof (checked here on the
syntax tree, and by `bytecode` on the compiled code, which the child uses where it can); a
program that breaks any of them is not "pure" and runs alone in a fresh fork, exactly as
before:

- imports only of modules already loaded in the warm image (`IMPORTABLE`), and star imports
  only of `common` and `typing` (the DSL itself is loaded afresh for every program);
- no attribute stores or deletions at all (`x.y = ...`), so no shared module, class or
  function can be rebound; subscript stores remain, and can only reach objects the program
  made (no name below leads to a shared container);
- no name or attribute starting with `_`, except the program's own names (no dunders, so no
  `__class__`, `__globals__`, `__code__`, `__builtins__`, `__import__`), no name starting
  with `__` bound anywhere (arguments, `except ... as`, match captures, keywords), and no
  special methods but `__init__` (a shared cache holding one of the program's objects could
  call its `__eq__` or `__hash__` during a later program);
- attributes read by a match pattern (`case C(attr=...)`) obey the same rules as `x.attr`;
- no reflective or escaping builtins (`eval`, `exec`, `getattr`, `hasattr`, `vars`, `globals`,
  `open`, `memoryview`, `type` — which builds classes from a dict, special methods included
  —, ...), no metaclass, no function of the allowed modules that sets attributes by a name
  the caller chooses or flags the object it is given (`functools.update_wrapper` and
  `wraps`, `total_ordering`, `typing.final`, `no_type_check`, ...), evaluates a string
  (`typing.get_type_hints`), reads attributes named in a string (`str.format`) or hands
  out `type` (`typing.get_origin`), and no numpy call that changes process-wide state
  (`seterr`, `set_printoptions`, `errstate`, `set_bit_generator`), does file I/O or loads
  modules;
- every attribute name must be on an allowlist built from the warm image itself: the methods
  of the value types programs use (arrays, lists, dicts, ...), the DSL's public names (its
  `__all__`, and the attributes its objects carry), and the names of the allowed modules
  whose value is a function, a class, a number, a string, another allowed module, or an
  object whose call runs code of those modules. A name that somewhere in those modules
  denotes anything else (a dict, a list, a module outside the set, numpy's `test` runner)
  is struck off, whatever else it also names.

What remains shared is state the child resets itself around every program: the `random` and
`numpy.random` generators (seeded per program, as in a fresh child), every `lru_cache` of
the warm image (emptied after each program: `Literal[x]` or `np.einsum(..., order=x)` would
keep the program's `x`, and a later lookup would call its `__eq__`) and the scratch
directory (emptied by the worker). `tests/test_sandbox_reuse.py` scans the Python code
behind every allowed name for attribute stores on what it is given, `setattr`, `eval` and
their kind, and fails on any it has not been reviewed for. What the proof does not cover is
another long-lived holder of a program's objects (none is known: a search through everything
allowed names reach, and calls of every allowed function, found only these caches) and a
memory-safety bug in CPython or numpy reachable from allowed calls; `Pool(reuse=False)` /
`--fork-per-program` rules that out too, at the fork's price.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from collections.abc import Callable, Iterable

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
        "delattr", "hasattr", "type", "open", "input", "breakpoint", "memoryview", "exit",
        "quit", "help", "license", "credits", "copyright",
    }
)  # fmt: skip
# functions of the allowed modules that change process-wide state, do I/O or load modules
_STATEFUL = frozenset(
    {
        "seterr", "seterrcall", "setbufsize", "set_printoptions", "printoptions", "errstate",
        "set_string_function", "set_bit_generator", "load", "save", "savez",
        "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "fromregex",
        "tofile", "dump", "memmap", "ctypes", "ctypeslib", "overload", "clear_overloads",
        "info", "show_config", "show_runtime",
    }
)  # fmt: skip
# functions of the allowed modules that set attributes by a name the caller chooses, mark
# the object they are given (which may be shared: `typing.final(np.sum)`), evaluate strings
# (most found by the scan in tests/test_sandbox_reuse.py), read attributes named in a string
# (`"{0.__globals__}".format(f)`), or hand out what no allowed name leads to
# (`typing.get_origin(typing.Type)` is `type`, which builds classes with special methods)
_REFLECTIVE = frozenset(
    {
        "update_wrapper", "wraps", "total_ordering", "get_type_hints", "ForwardRef", "final",
        "no_type_check", "no_type_check_decorator", "dataclass_transform", "abstractmethod",
        "runtime_checkable", "override", "type_check_only", "format", "format_map",
        "get_origin",
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
        for value in vars(dsl).values():
            if isinstance(value, type) and value.__module__ == dsl.__name__:
                allowed.update(n for n in vars(value) if not n.startswith("_"))
        # the DSL is fresh per program: all its public names go, but not the modules it
        # imports for itself (`common.scipy` would open all of scipy)
        allowed.update(dsl.__all__)
        allowed.update(
            node.attr
            for node in ast.walk(ast.parse(dsl_source))
            if isinstance(node, ast.Attribute) and not node.attr.startswith("_")
        )
        names = sorted(IMPORTABLE - {"common"}) + list(_SUBMODULES)
        modules = [importlib.import_module(m) for m in names]  # all loaded already
        safe_modules, module_names = {id(m) for m in modules}, set(names)
        unsafe: set[str] = set(_STATEFUL | _REFLECTIVE)
        for module in modules:
            for name, value in vars(module).items():
                if name.startswith("_"):
                    continue
                if _safe(value, safe_modules, module_names):
                    allowed.add(name)
                else:
                    unsafe.add(name)
        # `from common import *` also gives numpy and random: their unsafe names stay unsafe
        return cls(frozenset(allowed - unsafe), _DENIED_NAMES | _STATEFUL | _REFLECTIVE)


def _safe(value: object, safe_modules: set[int], module_names: set[str]) -> bool:
    """Modules of the set, functions, classes but metaclasses (`ABCMeta("A", (), {...})`
    would make a class with any special methods), plain values; a callable object only if
    calling it runs code of the allowed modules or C (numpy's ufuncs and dispatchers, the
    typing forms), not Python defined elsewhere (numpy's `test` runs pytest)."""
    if isinstance(value, types.ModuleType):
        return id(value) in safe_modules
    if isinstance(value, type):
        return not issubclass(value, type)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, *_IMMUTABLE)):
        return True
    if not callable(value):
        return False
    call = inspect.getattr_static(type(value), "__call__", None)
    return not isinstance(call, types.FunctionType) or call.__module__ in module_names


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
        and import_names_ok(module, (a.name for a in node.names), allow)
    )


def _class(node: ast.ClassDef, allow: Allowlist) -> bool:
    return not node.keywords  # no metaclass tricks


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, allow: Allowlist) -> bool:
    # special methods let shared code call back into the program later (a cached typing
    # alias comparing its key with `__eq__`, say), after the program has ended
    return not node.name.startswith("__") or node.name == "__init__"


def _match_class(node: ast.MatchClass, allow: Allowlist) -> bool:
    # `case C(attr=p)` reads `subject.attr` by name: `case object(__globals__=g)` would
    # hand the program a shared module's namespace
    return all(name in allow.attributes for name in node.kwd_attrs)


def _bound(attribute: str) -> Callable[[ast.AST, Allowlist], bool]:
    """A rule for nodes that bind the name held in `attribute` (None where nothing is)."""

    def check(node: ast.AST, allow: Allowlist) -> bool:
        return not (getattr(node, attribute) or "").startswith("__")

    return check


def _global(node: ast.Global | ast.Nonlocal, allow: Allowlist) -> bool:
    return not any(name.startswith("__") for name in node.names)


# the node types a rule applies to (allowlisted attribute names never start with "_")
_CHECKS = {
    ast.Attribute: _attribute,
    ast.Name: _name,
    ast.Import: _import,
    ast.ImportFrom: _import_from,
    ast.ClassDef: _class,
    ast.FunctionDef: _function,
    ast.AsyncFunctionDef: _function,
    ast.alias: _bound("asname"),
    ast.MatchClass: _match_class,
    ast.MatchAs: _bound("name"),
    ast.MatchStar: _bound("name"),
    ast.MatchMapping: _bound("rest"),
    ast.ExceptHandler: _bound("name"),
    ast.arg: _bound("arg"),
    ast.keyword: _bound("arg"),
    ast.Global: _global,
    ast.Nonlocal: _global,
}


def _module_ok(name: str) -> bool:
    return name in IMPORTABLE


def import_names_ok(module: str, names: Iterable[str], allow: Allowlist) -> bool:
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

    The reference for the same rules on compiled code (`bytecode`), and what a child uses
    where those do not apply. On untrusted text: the length is checked before parsing,
    parsing never executes anything, and the walk over the tree is iterative (no recursion
    limit)."""
    if len(code) > MAX_SOURCE:
        return False
    try:
        tree = ast.parse(code, "<program>")
    except BaseException:  # SyntaxError, ValueError (NUL bytes), the parser's stack limits
        return False
    return is_pure(tree, allow)
