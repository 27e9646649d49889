"""The BARC-compatible DSL that model-written programs import as `common`.

The executor does not import `common.py` as part of this package: it loads the file by path,
fresh for every program, into a module named `common`, so one program's tampering never
reaches the next. This package only says where that file is and which behaviour it has.

DSL_VERSION is part of the executor's result-cache key: bump it whenever any function's
results change, or cached executions would silently disagree with fresh ones.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

DSL_VERSION = "1"
DSL_PATH = Path(__file__).resolve().with_name("common.py")

__all__ = ["DSL_PATH", "DSL_VERSION", "load_common"]


def load_common() -> ModuleType:
    """A fresh, unregistered copy of the DSL as a module named `common`.

    For code that runs programs in-process (tests, the unprotected benchmark baseline): put
    it in `sys.modules["common"]` for `from common import *` to find it. Each call executes
    the file again, so no state is shared with earlier copies.
    """
    spec = importlib.util.spec_from_file_location("common", DSL_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
