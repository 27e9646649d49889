"""The audit hook called directly, in this process (not installed: hooks cannot be removed).

The hook only explains refusals (the kernel layers enforce them); these pin down its own
decisions: that its fast path skips nothing it would check, that it refuses what Landlock
refuses by the same rule, and that rebinding the module's tables changes nothing for a hook
already made.
"""

from __future__ import annotations

import os

import pytest

from arcjobs.sandbox import policy
from arcjobs.sandbox.readable import Readable

pytestmark = pytest.mark.unit

ALLOWED = Readable(dirs=(os.path.dirname(os.__file__),), files=("/opt/dsl/common.py",))


def test_unchecked_events_are_ones_the_hook_checks_nowhere() -> None:
    checked = policy.ALWAYS_REFUSED | policy.LIST_EVENTS | {"import", "open"}
    for event in policy.UNCHECKED:
        assert event not in checked, event
        assert not event.startswith(policy.REFUSED_PREFIXES), event
        assert event != "object.__setattr__", event  # guards the hook's own __code__


def test_hook_lets_the_frequent_events_through_and_refuses_the_rest() -> None:
    recorded: list[str] = []
    hook = policy.make_hook(ALLOWED, recorded.append, "<program>")
    for event in sorted(policy.UNCHECKED):
        assert hook(event, (object(),)) is None
    refused = [
        ("os.system", (b"true",)),
        ("socket.connect", (None, ("10.0.0.1", 80))),
        ("open", ("/etc/passwd", "w", 0)),
        ("open", ("/etc/passwd", "r", 0)),  # outside what programs may read
        ("open", (os.__file__, "a", 0)),  # readable, but nothing may be written
        ("open", ("/opt/dsl/other.py", "r", 0)),  # beside the DSL file, not it
        ("os.remove", ("/tmp/x",)),
        ("os.listdir", ("/",)),
        ("os.scandir", (None,)),  # the working directory: `/` in a child
        ("object.__setattr__", (hook, "__code__", None)),
    ]
    for event, args in refused:
        with pytest.raises(policy.Violation):
            hook(event, args)
    assert len(recorded) == len(refused)
    assert hook("open", (os.__file__, "r", 0)) is None
    assert hook("open", ("/opt/dsl/common.py", "rb", 0)) is None
    assert hook("os.listdir", (os.path.dirname(os.__file__),)) is None
    assert hook("open", ("<program>", "r", 0)) is None  # the compiler quoting a SyntaxError


def test_rebinding_the_module_tables_does_not_switch_a_made_hook_off(monkeypatch) -> None:
    hook = policy.make_hook(ALLOWED, lambda what: None, "<program>")
    monkeypatch.setattr(policy, "ALWAYS_REFUSED", frozenset())
    monkeypatch.setattr(policy, "REFUSED_PREFIXES", ())
    monkeypatch.setattr(policy, "UNCHECKED", frozenset({"os.system", "socket.connect"}))
    for event in ("os.system", "socket.connect"):
        with pytest.raises(policy.Violation):
            hook(event, ())
