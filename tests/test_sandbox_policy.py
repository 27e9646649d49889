"""The audit hook called directly, in this process (not installed: hooks cannot be removed).

The adversarial suite proves the policy end to end in real children; these pin down the
hook's own decisions, in particular that its fast path skips nothing it would check.
"""

from __future__ import annotations

import os

import pytest

from arcjobs.sandbox import policy


@pytest.mark.unit
def test_unchecked_events_are_ones_the_hook_checks_nowhere() -> None:
    checked = policy._ALWAYS_REFUSED | policy._WRITE_EVENTS | {"import", "open"}
    for event in policy._UNCHECKED:
        assert event not in checked, event
        assert not event.startswith(policy._REFUSED_PREFIXES), event
        assert event != "object.__setattr__", event  # guards the hook's own __code__


@pytest.mark.unit
def test_hook_lets_the_frequent_events_through_and_refuses_the_rest(tmp_path) -> None:
    recorded: list[str] = []
    hook = policy.make_hook(str(tmp_path), (os.path.dirname(os.__file__),), recorded.append)
    for event in sorted(policy._UNCHECKED):
        assert hook(event, (object(),)) is None
    for event, args in [
        ("os.system", (b"true",)),
        ("socket.connect", (None, ("10.0.0.1", 80))),
        ("open", ("/etc/passwd", "w", 0)),
        ("open", ("/etc/passwd", "r", 0)),  # not a code file of the Python installation
        ("os.remove", ("/etc/hosts", -1)),
        ("object.__setattr__", (hook, "__code__", None)),
    ]:
        with pytest.raises(policy.Violation):
            hook(event, args)
    assert len(recorded) == 6
    assert hook("open", (str(tmp_path / "out.txt"), "w", 0)) is None
    assert hook("open", (os.__file__, "r", 0)) is None
