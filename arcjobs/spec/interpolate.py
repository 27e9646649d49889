"""`${...}` references in job files.

Two passes use the same renderer. At load time, parameters (`${lora_rank}`), matrix values
(`${matrix.lr}`) and the round (`${round}`) are substituted; references to other steps'
outputs (`${search.out}`) and to the data root (`${data}`) stay as text, because where they
point depends on the run and the backend, and the cache key must not. At run time the
engine renders those too. `$$` stands for a literal `$` (e.g. `$${HOME}` in a `run:` line)
and becomes one only in the final pass.

A string that is exactly one reference takes the referenced value's type (`n: ${predictions}`
stays an integer; a list stays a list); a reference inside a longer string is inserted as
text. A reference that resolves to null makes the whole value null, which is how
`${prev.learn.out}/adapter` reads as "no adapter" in the first round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

REF = re.compile(r"\$\$|\$\{([^}]*)\}")


class UnknownRef(Exception):
    """A reference the resolver cannot satisfy; its message says what was expected."""


def refs_in(value: Any) -> list[str]:
    """Every reference named in `value` (strings nested in dicts and lists included)."""
    if isinstance(value, str):
        return [m.group(1).strip() for m in REF.finditer(value) if m.group(1) is not None]
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    return []


def render(
    value: Any, resolve: Callable[[str], Any], final: bool = False, null_as_empty: bool = False
) -> Any:
    """Substitute references in `value` using `resolve(ref) -> value` (may raise UnknownRef)."""
    if isinstance(value, dict):
        return {k: render(v, resolve, final, null_as_empty) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, resolve, final, null_as_empty) for v in value]
    if not isinstance(value, str):
        return value
    whole = REF.fullmatch(value)
    if whole and whole.group(1) is not None:
        got = resolve(whole.group(1).strip())
        return "" if got is None and null_as_empty else got
    null = False

    def sub(m: re.Match[str]) -> str:
        nonlocal null
        if m.group(1) is None:
            return "$" if final else "$$"
        got = resolve(m.group(1).strip())
        if got is None:
            null = True
            return ""
        if isinstance(got, list):
            return " ".join(str(x) for x in got)
        if isinstance(got, bool):
            return "true" if got else "false"
        return str(got)

    text = REF.sub(sub, value)
    return None if null and not null_as_empty else text
