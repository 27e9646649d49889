"""The BARC-compatible DSL that model-written programs import as `common`.

The executor does not import `common.py` as part of this package: it loads the file by path,
fresh for every program, into a module named `common`, so one program's tampering never
reaches the next. This package only says where that file is and which behaviour it has.

DSL_VERSION is part of the executor's result-cache key: bump it whenever any function's
results change, or cached executions would silently disagree with fresh ones.
"""

from __future__ import annotations

from pathlib import Path

DSL_VERSION = "1"
DSL_PATH = Path(__file__).resolve().with_name("common.py")

__all__ = ["DSL_PATH", "DSL_VERSION"]
