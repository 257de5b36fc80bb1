"""Local state that is not content: `.cms/state.db` (SQLite, WAL), shared by every process of a site.

Keys and (later) the webhook outbox need durability, so the connection runs with
`synchronous=FULL`; several uvicorn workers share the file, so writers wait (`busy_timeout`)
instead of failing. The folder and database are created with owner-only permissions.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cms import schema


class State:
    """The site's state database; one connection per process, serialized by a lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / schema.STATE
        # Keys and the outbox must survive a power cut: every commit is synced (FULL).
        self._db = schema.open_database(folder, schema.STATE, synchronous="FULL")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE, so concurrent writers queue instead of deadlocking)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def secret(self, name: str, size: int = 32) -> bytes:
        """A random per-site secret (e.g. the key-hashing pepper), created on first use."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (name,))
        if rows:
            return bytes(rows[0]["value"])
        value = secrets.token_bytes(size)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (name, value))
        return bytes(self.query("SELECT value FROM meta WHERE key = ?", (name,))[0]["value"])

    def close(self) -> None:
        with self._lock:
            self._db.close()
