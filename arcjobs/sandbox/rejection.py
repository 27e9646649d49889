"""Static rejection policies: sources refused before they run, for what they say.

Off by default: the kernel confines whatever a program does, so nothing needs refusing for
safety. A policy exists to reproduce a study's numbers, which counted such programs as failed.

- `study`: the seed study's checks (ironbar/arc25 at 2871b24, `arc25/code_execution.py`:
  `check_code_is_safe` and `check_code_is_deterministic`), made on the code as the study ran
  it: lines holding `print(`, `from common import *`, `import dsl` or `from dsl import `
  removed first. It refuses a source that mentions `random` anywhere (comments included), a
  forbidden module (`time.`, `import datetime`, ...) or a forbidden call (`open(`, `eval(`,
  `write(`, ...).
"""

from __future__ import annotations

from collections.abc import Callable

REMOVED_LINES = ("import dsl", "from dsl import ", "print(", "from common import *")
FORBIDDEN_MODULES = (
    "logging", "threading", "bcrypt", "datetime", "os.sys", "multiprocessing", "time",
    "os.path", "pebble", "hashlib", "sys.exit", "subprocess", "calendar", "os.environ",
    "matplotlib", "pygame",
)  # fmt: skip
FORBIDDEN_CALLS = ("input", ".save", "write", "open", "exec", "eval", "compile")


def study(source: str) -> str | None:
    """Why the seed study would refuse `source` (None: it would run it)."""
    code = "\n".join(
        line for line in source.split("\n") if not any(k in line for k in REMOVED_LINES)
    )
    for module in FORBIDDEN_MODULES:
        if f"{module}." in code or f"import {module}" in code:
            return f"uses the module {module}"
    for call in FORBIDDEN_CALLS:
        if f"{call}(" in code:
            return f"calls {call}()"
    if "random" in code:
        return "mentions random (not deterministic)"
    return None


POLICIES: dict[str, Callable[[str], str | None] | None] = {"none": None, "study": study}
