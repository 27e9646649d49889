"""The BARC-compatible DSL that model-written programs import as `common`.

The executor does not import `common.py` as part of this package: a worker compiles the file
once (`compile_common`) and executes it into a fresh module named `common` for every program
(`new_common`), so one program's tampering never reaches the next. This package says where
that file is, which behaviour it has, and how a fresh copy is made.

DSL_VERSION is part of the executor's result-cache key: bump it whenever any function's
results change, or cached executions would silently disagree with fresh ones.
"""

from __future__ import annotations

from pathlib import Path
from types import CodeType, ModuleType

DSL_VERSION = "1"
DSL_PATH = Path(__file__).resolve().with_name("common.py")

__all__ = ["DSL_PATH", "DSL_VERSION", "compile_common", "load_common", "new_common"]


def compile_common(path: str | Path = DSL_PATH) -> tuple[str, CodeType]:
    """The DSL file's source and its compiled code, for making many fresh copies of it."""
    source = Path(path).read_text(encoding="utf-8")
    return source, compile(source, str(path), "exec")


def new_common(code: CodeType, path: str | Path = DSL_PATH) -> ModuleType:
    """A fresh, unregistered module named `common`, executed from `code`.

    Put it in `sys.modules["common"]` for `from common import *` to find it. Each call runs
    the code again, so no state is shared with earlier copies: the sandbox makes one per
    program this way.
    """
    module = ModuleType("common")
    module.__file__ = str(path)
    exec(code, vars(module))
    return module


def load_common() -> ModuleType:
    """A fresh copy of the DSL, for code that runs programs in-process (tests, the
    unprotected benchmark baseline)."""
    return new_common(compile_common()[1])
