"""Opening a sqlite file in WAL mode from several processes at once (the run store's output
index, the sandbox's result cache).

A new file is switched to WAL once, by whoever comes first. That switch needs a lock that
sqlite reports busy at once instead of waiting for (the busy handler is not consulted), so
processes racing on a new file would fail with "database is locked" however long their busy
timeout; they retry instead, for up to that timeout.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any


def connect(path: str | Path, timeout_s: float = 30.0, **kwargs: Any) -> sqlite3.Connection:
    """`sqlite3.connect` with the busy timeout set and the file in WAL mode."""
    deadline = time.monotonic() + timeout_s
    while True:
        db = sqlite3.connect(path, timeout=timeout_s, **kwargs)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_damaged(error: sqlite3.DatabaseError) -> bool:
    """A damaged file (not a database, a malformed image): rebuild it. An OperationalError —
    busy, locked, unreadable — is not damage, and rebuilding would delete a file others use."""
    return not isinstance(error, sqlite3.OperationalError)
