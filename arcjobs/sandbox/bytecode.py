"""The purity rules (`purity`) checked on the compiled program instead of its syntax tree.

The child compiles every program anyway; reading the code objects it got takes ~20 µs for a
corpus program, where parsing the source again into a tree and walking it takes ~150 µs
(most of it building the tree's Python objects). And the code objects are what will run:
every operation is an opcode, so an allowlist of opcodes leaves nothing unseen — a syntax
the tree rules do not know (as the match pattern `case C(attr=x)` once was) arrives here as
an opcode that is either reviewed or refused.

The rules, per code object (the module, and every function, class body, lambda and
comprehension in its constants):
- every opcode is in `_PLAIN` (stack, arithmetic, jumps, calls, building values, subscript
  stores: what acts on values the program holds) or one of those checked below; attribute
  stores and deletions, and any opcode not reviewed, make a program impure;
- a global or module-level name neither starts with `__` (but for what the compiler itself
  writes: `__doc__`, `__annotations__`, a class body's `__name__`, `__module__`,
  `__qualname__`, `__classcell__`, and `__init__`, the one special method allowed) nor is a
  denied name; local and cell names the same (`__class__` aside: `super()`'s cell);
- an attribute read (`LOAD_ATTR`, `LOAD_METHOD`) or one a match pattern reads
  (`MATCH_CLASS`'s names) is on the allowlist;
- call keywords neither start with `__` nor are `metaclass`;
- imports as `purity` allows them: level 0, a module in `IMPORTABLE`, star imports only of
  `STAR_IMPORTABLE`, imported names as `purity.import_names_ok` says.

Opcodes, their arguments and what the compiler emits change with every CPython minor
version, and only 3.11's were reviewed: elsewhere `SUPPORTED` is False and the child checks
the source with `purity.analyse`. `tests/test_sandbox_purity_bytecode.py` holds the two to
each other: on every program the tests have, bytecode-pure implies tree-pure.
"""

from __future__ import annotations

import dis
import sys
import types

from arcjobs.sandbox.purity import (
    IMPORTABLE,
    MAX_SOURCE,
    STAR_IMPORTABLE,
    Allowlist,
    import_names_ok,
)

SUPPORTED = sys.version_info[:2] == (3, 11)

_OP = dis.opmap
# opcodes that act only on values on the stack or in the program's own frame
_PLAIN = frozenset(
    _OP[name]
    for name in """
    NOP RESUME POP_TOP PUSH_NULL COPY SWAP EXTENDED_ARG CACHE
    UNARY_POSITIVE UNARY_NEGATIVE UNARY_NOT UNARY_INVERT BINARY_OP COMPARE_OP IS_OP CONTAINS_OP
    BINARY_SUBSCR STORE_SUBSCR DELETE_SUBSCR BUILD_SLICE GET_LEN
    BUILD_TUPLE BUILD_LIST BUILD_SET BUILD_MAP BUILD_CONST_KEY_MAP BUILD_STRING FORMAT_VALUE
    LIST_APPEND SET_ADD MAP_ADD LIST_EXTEND SET_UPDATE DICT_MERGE DICT_UPDATE LIST_TO_TUPLE
    UNPACK_SEQUENCE UNPACK_EX GET_ITER FOR_ITER GET_YIELD_FROM_ITER
    JUMP_FORWARD JUMP_BACKWARD JUMP_BACKWARD_NO_INTERRUPT JUMP_IF_FALSE_OR_POP JUMP_IF_TRUE_OR_POP
    POP_JUMP_FORWARD_IF_FALSE POP_JUMP_FORWARD_IF_TRUE POP_JUMP_FORWARD_IF_NONE
    POP_JUMP_FORWARD_IF_NOT_NONE POP_JUMP_BACKWARD_IF_FALSE POP_JUMP_BACKWARD_IF_TRUE
    POP_JUMP_BACKWARD_IF_NONE POP_JUMP_BACKWARD_IF_NOT_NONE
    PRECALL CALL CALL_FUNCTION_EX MAKE_FUNCTION COPY_FREE_VARS MAKE_CELL RETURN_VALUE
    LOAD_FAST STORE_FAST DELETE_FAST LOAD_DEREF STORE_DEREF DELETE_DEREF LOAD_CLOSURE
    LOAD_CLASSDEREF
    LOAD_BUILD_CLASS SETUP_ANNOTATIONS LOAD_ASSERTION_ERROR RAISE_VARARGS RERAISE
    PUSH_EXC_INFO POP_EXCEPT CHECK_EXC_MATCH CHECK_EG_MATCH PREP_RERAISE_STAR
    BEFORE_WITH WITH_EXCEPT_START BEFORE_ASYNC_WITH
    RETURN_GENERATOR YIELD_VALUE SEND GET_AWAITABLE GET_AITER GET_ANEXT END_ASYNC_FOR
    ASYNC_GEN_WRAP MATCH_MAPPING MATCH_SEQUENCE MATCH_KEYS
    """.split()  # noqa: SIM905  (grouped by kind, one line each, reads better than a list)
    if SUPPORTED
)
_NAMES = frozenset(
    _OP[name]
    for name in (
        "LOAD_NAME", "STORE_NAME", "DELETE_NAME", "LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"
    )
)  # fmt: skip
_ATTRIBUTES = frozenset({_OP["LOAD_ATTR"], _OP.get("LOAD_METHOD", -1)})
# -1 where an opcode is not in this Python (then nothing here is used: not SUPPORTED)
_LOAD_CONST, _LOAD_GLOBAL, _MATCH_CLASS = _OP["LOAD_CONST"], _OP["LOAD_GLOBAL"], _OP["MATCH_CLASS"]
_IMPORT_NAME, _IMPORT_FROM = _OP["IMPORT_NAME"], _OP["IMPORT_FROM"]
_KW_NAMES, _IMPORT_STAR = _OP.get("KW_NAMES", -1), _OP.get("IMPORT_STAR", -1)
_EXTENDED_ARG, _CACHE = _OP["EXTENDED_ARG"], _OP.get("CACHE", -1)
_CO_OPTIMIZED = 0x1  # a function's code (a class body and the module lack it)
# the `__` names the compiler writes itself (and `__init__`, defined by the program)
_MODULE_DUNDERS = frozenset({"__doc__", "__annotations__", "__init__"})
_CLASS_DUNDERS = _MODULE_DUNDERS | {"__name__", "__module__", "__qualname__", "__classcell__"}
_FUNCTION_DUNDERS = frozenset({"__init__"})
_NOT_A_CONSTANT = object()


def is_pure(code: types.CodeType, source_length: int, allow: Allowlist) -> bool:
    """Whether the program compiled into `code` (from a source of `source_length`
    characters) is pure by `purity`'s rules; only where `SUPPORTED`."""
    return source_length <= MAX_SOURCE and _pure(code, allow, _MODULE_DUNDERS)


def _pure(code: types.CodeType, allow: Allowlist, dunders: frozenset[str]) -> bool:
    denied = allow.denied_names
    for name in code.co_varnames + code.co_cellvars + code.co_freevars:
        if (name.startswith("__") and name != "__class__") or name in denied:
            return False
    for const in code.co_consts:
        if type(const) is types.CodeType:
            inner = _FUNCTION_DUNDERS if const.co_flags & _CO_OPTIMIZED else _CLASS_DUNDERS
            if not _pure(const, allow, inner):
                return False
    return _instructions_pure(code, allow, dunders)


def _instructions_pure(code: types.CodeType, allow: Allowlist, dunders: frozenset[str]) -> bool:
    """One pass over the raw instructions (two bytes each, CACHE entries and EXTENDED_ARG
    prefixes in between): `dis.get_instructions` would cost ten times more."""
    names, consts, raw = code.co_names, code.co_consts, code.co_code
    denied, attributes = allow.denied_names, allow.attributes
    # the values of the last two instructions where they were LOAD_CONST: an import's
    # level and names, a match pattern's attribute names
    before, last = _NOT_A_CONSTANT, _NOT_A_CONSTANT
    extended = 0
    importing: str | None = None
    for i in range(0, len(raw), 2):
        op = raw[i]
        if op == _CACHE:
            continue
        arg = raw[i + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue
        extended = 0
        if op == _LOAD_CONST:
            before, last = last, consts[arg]
            continue
        if op in _PLAIN:
            pass
        elif op in _NAMES:
            name = names[arg >> 1] if op == _LOAD_GLOBAL else names[arg]
            if (name.startswith("__") and name not in dunders) or name in denied:
                return False
        elif op in _ATTRIBUTES:
            if names[arg] not in attributes:
                return False
        elif op == _KW_NAMES:
            if any(k.startswith("__") or k == "metaclass" for k in consts[arg]):
                return False
        elif op == _MATCH_CLASS:
            if type(last) is not tuple or not all(k in attributes for k in last):
                return False
        elif op == _IMPORT_NAME:
            importing = names[arg]
            if type(before) is not int or before != 0 or importing not in IMPORTABLE:
                return False
            if last is not None and (
                type(last) is not tuple or not import_names_ok(importing, last, allow)
            ):
                return False
        elif op == _IMPORT_FROM:
            if importing is None or not import_names_ok(importing, (names[arg],), allow):
                return False
        elif op == _IMPORT_STAR:
            if importing not in STAR_IMPORTABLE:
                return False
        else:  # STORE_ATTR, DELETE_ATTR, PRINT_EXPR, and whatever was not reviewed
            return False
        before = last = _NOT_A_CONSTANT
    return True
