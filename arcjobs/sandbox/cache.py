"""The result cache: sqlite, keyed by everything that decides a program's result.

Key = sha256 of (executor version, DSL version and file hash, limits, program source, the
input grids exactly as the program sees them). The seed derives from the source and the
inputs, so it is covered. Timeouts and crashes are cached like any result: re-running a
program that hung costs its timeout again for nothing.

Concurrent runs share one file safely (WAL journal, busy timeout, short write
transactions). Each row stores an HMAC of its key and value under a secret kept beside the
cache (`<cache>.key`, 32 random bytes, mode 0600, made by whichever run comes first): a row
whose MAC does not match is a miss. So neither a damaged row nor a forged one is ever
served, even by someone who can write the cache file: forging needs the secret, and no
program can read it (Landlock lets programs read only the code they import, and the audit
hook refuses it too). A file that sqlite cannot read at all (not a database, malformed
pages) is moved aside and rebuilt empty on open or on first failure: the cache is an
accelerator, never a source of truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from arcjobs import sqlite_wal

SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, digest TEXT NOT NULL)"
SECRET_BYTES = 32


def secret_for(path: Path) -> bytes:
    """The cache's secret, made on first use: written to a private file, then linked into
    place, so that runs racing to make it all end up with the one that got there first."""
    key_path = Path(f"{path}.key")
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(key_path)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(SECRET_BYTES))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, key_path)
    finally:
        os.unlink(tmp)
    return _read_secret(key_path)


def _read_secret(key_path: Path) -> bytes:
    secret = key_path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise OSError(f"{key_path}: not a cache secret ({len(secret)} bytes, not {SECRET_BYTES})")
    return secret


class ResultCache:
    """get/put of JSON results by key; writes are batched and committed by `flush`.

    OSError when the secret cannot be read or made (another user's cache, say)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rebuilt = False
        self.secret = secret_for(self.path)
        self.pending: list[tuple[str, str, str]] = []
        self.last_flush = time.monotonic()
        self.db = self._open()

    def _digest(self, key: str, value: str) -> str:
        """The row's MAC: its key is in it, so a row moved under another key is a miss."""
        message = f"{key}\0{value}".encode("utf-8", "surrogatepass")
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                db.close()
                raise sqlite3.DatabaseError("quick_check failed")
            return db
        except sqlite3.DatabaseError as e:
            if not sqlite_wal.is_damaged(e):
                raise
            return self._rebuild()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite_wal.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(SCHEMA)
        return db

    def _rebuild(self) -> sqlite3.Connection:
        """Move the damaged file (and its WAL) aside and start an empty cache."""
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self.db.close()
        stamp = f"corrupt-{os.getpid()}-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(src, src.with_name(f"{src.name}.{stamp}"))
        self.rebuilt = True
        return self._connect()

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            row = self.db.execute(
                "SELECT value, digest FROM results WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.OperationalError:
            return None  # busy beyond the timeout: a miss, not a reason to drop the file
        except sqlite3.DatabaseError:
            self.db = self._rebuild()
            return None
        if row is None or not hmac.compare_digest(self._digest(key, row[0]), row[1]):
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, separators=(",", ":"))
        self.pending.append((key, text, self._digest(key, text)))
        if len(self.pending) >= 500 or time.monotonic() - self.last_flush > 2:
            self.flush()

    def flush(self) -> None:
        """Commit pending results in one short transaction (other runs wait on busy_timeout)."""
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        try:
            with contextlib.closing(self.db.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
                cur.execute("COMMIT")
        except sqlite3.OperationalError:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self.pending = rows + self.pending  # busy: try again at the next flush
        except sqlite3.DatabaseError:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self.db = self._rebuild()

    def close(self) -> None:
        self.flush()
        self.db.close()


def key_prefix(version: Any, inputs_json: str) -> Any:
    """The start of a key's hash: what it ran under (`version`: JSON-serialisable) and the
    inputs (JSON text), for `cache_key` to finish with each program's source, so that a
    batch hashes a task's inputs once, not once per program. Neither part contains a NUL
    byte, so the NULs between the parts keep them apart whatever the source holds (lone
    surrogates included: JSON predictions can carry them)."""
    head = json.dumps(version, separators=(",", ":"))
    return hashlib.sha256(f"{head}\0{inputs_json}\0".encode())


def cache_key(prefix: Any, code: str) -> str:
    """The key of one execution: `prefix` (`key_prefix`) finished with the program's source."""
    digest = prefix.copy()
    digest.update(code.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()
