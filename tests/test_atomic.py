"""Staged directories: what the block writes appears whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcjobs import atomic

pytestmark = pytest.mark.unit


def test_a_finished_block_replaces_the_old_directory_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic.staged_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (out / "new.txt").exists()  # nothing visible before the block ends
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_block_publishes_nothing_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out"
    with pytest.raises(RuntimeError), atomic.staged_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert list(out.parent.iterdir()) == []
