"""Every table of every `.cms/` database, declared once, as ordered migrations keyed by `PRAGMA user_version`.

`.cms/` holds what cannot be rebuilt from the files (API keys, webhook subscriptions and their
secrets, the outbox), so a new column or table must reach an existing site's database without
losing a row. Each database file has a list of migrations: migration N takes a database from
`user_version` N-1 to N. Whoever opens a database (the `State`, the `RateLimiter`) does it with
`open_database`: WAL, its own durability, a busy timeout, then `migrate`, which applies the missing
migrations in one transaction and refuses a database written by a newer cms (`StateTooNew`).

Migration 1 of each database is the schema that existed before versioning, written with
`IF NOT EXISTS`: a site's database from then has `user_version` 0 and (some of) those tables,
and is adopted as version 1 with its rows untouched. To change a schema, append a migration
(never edit a released one: sites already ran it) and say in `why` what needs it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cms import __version__
from cms.errors import StateTooNew

log = logging.getLogger("cms.schema")

STATE = "state.db"
RATELIMIT = "ratelimit.db"


@dataclass(frozen=True)
class Migration:
    """The statements that take a database from `version - 1` to `version`."""

    version: int
    why: str
    statements: tuple[str, ...]


DATABASES: dict[str, tuple[Migration, ...]] = {
    # Keys (cms/auth.py), site secrets (cms/state.py), webhooks and their outbox and delivery log
    # (cms/events/webhooks.py), the scheduler's last announcements (cms/events/scheduler.py).
    STATE: (
        Migration(
            1,
            "the schema before versioning (user_version 0 with these tables is adopted as is)",
            (
                """CREATE TABLE IF NOT EXISTS api_keys (
                    id TEXT PRIMARY KEY,            -- public key id, part of the token
                    name TEXT NOT NULL,
                    digest BLOB NOT NULL,           -- keyed blake2b of the secret part; never the secret
                    secret_digest BLOB,             -- optional second factor (X-API-Secret)
                    last4 TEXT NOT NULL,
                    scopes TEXT NOT NULL,           -- space-separated
                    types TEXT,                     -- space-separated content types, NULL = all
                    created_at TEXT NOT NULL,
                    last_used_at TEXT,
                    expires_at TEXT,
                    enabled INTEGER NOT NULL DEFAULT 1
                )""",
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
                """CREATE TABLE IF NOT EXISTS webhooks (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,
                    content_types TEXT, secret TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,
                    source TEXT NOT NULL DEFAULT 'api', created_at TEXT NOT NULL, failing_since TEXT,
                    disabled_reason TEXT)""",
                # The exact bytes to send are stored (body), so a retry signs the same body.
                """CREATE TABLE IF NOT EXISTS outbox (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, webhook_id TEXT NOT NULL,
                    event_name TEXT NOT NULL, body BLOB NOT NULL, ordering_key TEXT NOT NULL,
                    created_at REAL NOT NULL, next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    status TEXT NOT NULL, lease_until REAL, last_status INTEGER, finished_at REAL,
                    UNIQUE (event_id, webhook_id))""",
                "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
                "CREATE INDEX IF NOT EXISTS outbox_order ON outbox (webhook_id, ordering_key, status, id)",
                """CREATE TABLE IF NOT EXISTS attempts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, webhook_id TEXT NOT NULL,
                    attempted_at REAL NOT NULL, status_code INTEGER, latency_ms REAL, response TEXT, error TEXT)""",
                "CREATE INDEX IF NOT EXISTS attempts_outbox ON attempts (outbox_id)",
                """CREATE TABLE IF NOT EXISTS schedule (
                    doc_id TEXT PRIMARY KEY, live INTEGER NOT NULL, etag TEXT NOT NULL, type TEXT NOT NULL)""",
            ),
        ),
    ),
    # Rate-limit counters (cms/ratelimit.py); a separate file so they can run with synchronous=OFF.
    RATELIMIT: (
        Migration(
            1,
            "the schema before versioning (user_version 0 with these tables is adopted as is)",
            (
                """CREATE TABLE IF NOT EXISTS windows (
                    bucket TEXT PRIMARY KEY, minute INTEGER NOT NULL, m INTEGER NOT NULL, day INTEGER NOT NULL,
                    d INTEGER NOT NULL) WITHOUT ROWID""",
                """CREATE TABLE IF NOT EXISTS hits (
                    bucket TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL,
                    PRIMARY KEY (bucket, window)) WITHOUT ROWID""",
            ),
        ),
    ),
}


def newest(database: str) -> int:
    """The newest schema version of `database` (e.g. "state.db") this cms knows; 0 for one it does not declare."""
    migrations = DATABASES.get(database, ())
    return migrations[-1].version if migrations else 0


BUSY_TIMEOUT_MS = 5000  # writers of several processes (uvicorn workers, the CLI) wait for each other
_WAL_TRIES = 100  # ~10 s in all: see open_database


def open_database(folder: Path, database: str, *, synchronous: str) -> sqlite3.Connection:
    """A connection to `.cms/<database>` in WAL mode, at the newest schema; the file made owner-only.

    Switching a fresh file to WAL needs a lock that SQLite may refuse at once, without waiting on
    the busy timeout, while another process is creating the same file (uvicorn workers starting
    together): that refusal is retried, briefly and a bounded number of times."""
    path = folder / database
    fresh = not path.exists()
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        if fresh:
            os.chmod(path, 0o600)
        for attempt in range(_WAL_TRIES):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == _WAL_TRIES - 1:
                    raise
                time.sleep(0.002 * (attempt + 1) if attempt < 10 else 0.1)
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(db, database)
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, database: str) -> int:
    """Bring `db` (the file `database` of `.cms/`) to the newest declared schema; return the version it had.

    Raises StateTooNew for a database written by a newer cms. `db` must not be inside a transaction:
    the check and the migrations run in one BEGIN IMMEDIATE, so of two processes opening a database
    at once (uvicorn workers, the CLI) one migrates and the other then finds it done."""
    migrations = DATABASES[database]
    target = newest(database)
    found = _version(db)
    if found == target:  # the usual start: no write lock taken
        return found
    _refuse_newer(db, database, found)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = _version(db)  # again, under the lock: another process may have migrated meanwhile
        _refuse_newer(db, database, found)
        for migration in migrations[found:]:
            for statement in migration.statements:
                db.execute(statement)
        # user_version lives in the file header, written by this transaction: all or nothing.
        db.execute(f"PRAGMA user_version = {target:d}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    if found < target:
        log.info("%s: schema migrated from version %d to %d", _path(db, database), found, target)
    return found


def too_new(name: str, version: int, where: str) -> StateTooNew:
    """The error for a database `name` at schema `version` past the newest known; `where` names the file."""
    known = newest(name)
    return StateTooNew(
        f"{where} has schema version {version} but this cms ({__version__}) knows {name} only up to version "
        f"{known}: it was written by a newer cms. Upgrade cms, or restore the state backup taken before the "
        "upgrade (`cms state restore`)",
        path=where,
        version=version,
        newest=known,
    )


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _refuse_newer(db: sqlite3.Connection, database: str, found: int) -> None:
    if found > newest(database):
        raise too_new(database, found, _path(db, database))
    if found < 0:  # no cms writes it: only a hand-set pragma does, and migrating from there would guess
        where = _path(db, database)
        raise StateTooNew(
            f"{where} has schema version {found}, which no cms writes: restore a state backup (`cms state restore`)",
            path=where,
            version=found,
            newest=newest(database),
        )


def _path(db: sqlite3.Connection, database: str) -> str:
    """The file behind the connection (for messages), else the database's name."""
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return str(Path(file))
    return database
