"""The run store: run directories, their `run.json`, the launcher lock, and the output index.

`run.json` is owned by the launcher of the run and replaced atomically on every change, so
`arcjobs status` can read it at any moment. The index (`<data-root>/index.sqlite`) maps cache
keys to published outputs so that a new run can reuse what any earlier run computed; it is
only a hint — every hit is checked against the step's manifest before use, and a corrupt
index is rebuilt from the manifests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arcjobs import atomic, sqlite_wal
from arcjobs.errors import UserError
from arcjobs.layout import RunLayout, runs_dir
from arcjobs.manifest import is_complete, read_manifest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
  key TEXT NOT NULL, run_id TEXT NOT NULL, step TEXT NOT NULL, job TEXT NOT NULL,
  params TEXT NOT NULL, image TEXT NOT NULL, needs TEXT NOT NULL, published REAL NOT NULL,
  PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS outputs_key ON outputs (key);
CREATE INDEX IF NOT EXISTS outputs_job_step ON outputs (job, step, published);
"""


class RunStore:
    def __init__(self, data_root: str | Path):
        self.data_root = Path(data_root).absolute()
        self.index_path = self.data_root / "index.sqlite"

    def layout(self, run_id: str) -> RunLayout:
        return RunLayout(self.data_root, run_id)

    def new_run_id(self, job_name: str) -> str:
        return f"{job_name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"

    def exists(self, run_id: str) -> bool:
        return (self.layout(run_id).run_dir / "run.json").exists()

    def read(self, run_id: str) -> dict[str, Any]:
        path = self.layout(run_id).run_dir / "run.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"no run {run_id!r} under {runs_dir(self.data_root)}") from None

    def write(self, state: dict[str, Any]) -> None:
        state["updated"] = time.time()
        atomic.write_json(self.layout(state["run_id"]).run_dir / "run.json", state)

    def list_runs(self) -> list[dict[str, Any]]:
        out = []
        root = runs_dir(self.data_root)
        for path in sorted(root.glob("*/run.json")) if root.exists() else []:
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(path.read_text()))
        return sorted(out, key=lambda r: r.get("created", 0))

    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        """Hold the run's launcher lock (released by the kernel if the launcher dies)."""
        run_dir = self.layout(run_id).run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"run {run_id} is live in another launcher; follow it with `arcjobs status "
                    f"{run_id}` or stop it with `arcjobs cancel {run_id}`"
                ) from None
            yield
        finally:
            os.close(fd)

    def is_locked(self, run_id: str) -> bool:
        path = self.layout(run_id).run_dir / "run.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # --- the output index ----------------------------------------------------------------

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.index_path.exists():
            return None
        self.data_root.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                db = sqlite_wal.connect(self.index_path)
                db.executescript(_SCHEMA)
                return db
            except sqlite3.DatabaseError as e:
                if attempt or not sqlite_wal.is_damaged(e):
                    raise
                self._rebuild()
        return None

    def _rebuild(self) -> None:
        """Replace a corrupt index by one rebuilt from the manifests on disk."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
        db = sqlite3.connect(self.index_path, timeout=30)
        db.executescript(_SCHEMA)
        for run in self.list_runs():
            layout = self.layout(run["run_id"])
            for step, info in run.get("steps", {}).items():
                m = read_manifest(layout.step_dir(step))
                if m and m.get("status") == "ok" and info.get("key") == m.get("key"):
                    db.execute(
                        "INSERT OR REPLACE INTO outputs VALUES (?,?,?,?,?,?,?,?)",
                        (
                            m["key"],
                            run["run_id"],
                            step,
                            run.get("job", ""),
                            json.dumps(info.get("params", {})),
                            info.get("image_id", ""),
                            json.dumps(info.get("needs", [])),
                            m.get("ended", 0),
                        ),
                    )
        db.commit()
        db.close()

    def record(
        self,
        run_id: str,
        job: str,
        step: str,
        key: str,
        params: Any,
        image_id: str,
        needs: list[str],
    ) -> None:
        db = self._db(create=True)
        assert db is not None
        with db:
            db.execute(
                "INSERT OR REPLACE INTO outputs VALUES (?,?,?,?,?,?,?,?)",
                (
                    key,
                    run_id,
                    step,
                    job,
                    json.dumps(params, sort_keys=True),
                    image_id,
                    json.dumps(needs),
                    time.time(),
                ),
            )
        db.close()

    def find(self, key: str, exclude_run: str | None = None) -> tuple[str, str] | None:
        """A published output with this key (run id, step), checked against its manifest."""
        db = self._db(create=False)
        if db is None:
            return None
        rows = db.execute(
            "SELECT run_id, step FROM outputs WHERE key = ? ORDER BY published DESC", (key,)
        ).fetchall()
        db.close()
        for run_id, step in rows:
            if run_id != exclude_run and is_complete(self.layout(run_id).step_dir(step), key):
                return run_id, step
        return None

    def last(self, job: str, step: str) -> dict[str, Any] | None:
        """The most recent published output of the same job's step of the same name."""
        db = self._db(create=False)
        if db is None:
            return None
        row = db.execute(
            "SELECT run_id, key, params, image, needs FROM outputs WHERE job = ? AND step = ? "
            "ORDER BY published DESC LIMIT 1",
            (job, step),
        ).fetchone()
        db.close()
        if row is None:
            return None
        return {
            "run_id": row[0],
            "key": row[1],
            "params": json.loads(row[2]),
            "image": row[3],
            "needs": json.loads(row[4]),
        }
