"""Where a run's files live under the data root (DESIGN.md §3), in one place.

Every backend mounts the data root at some path (`/data` in containers, the host path on
the local backend); `RunLayout` answers both for the host (`host`) and for what a step
sees (`mount`), so a path means the same file everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    data_root: Path  # on the host running the launcher
    run_id: str

    @property
    def run_dir(self) -> Path:
        return self.data_root / "runs" / self.run_id

    def step_dir(self, step: str) -> Path:
        return self.run_dir / "steps" / step

    def out_dir(self, step: str) -> Path:
        return self.step_dir(step) / "out"

    def log(self, step: str) -> Path:
        return self.step_dir(step) / "log.txt"

    def seen_from(self, mount: str, path: Path) -> str:
        """`path` (under the data root) as a step that sees the data root at `mount` sees it."""
        return str(Path(mount) / Path(path).relative_to(self.data_root))


def runs_dir(data_root: Path) -> Path:
    return data_root / "runs"
