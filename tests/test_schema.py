"""The declared `.cms/` schemas (cms/schema.py): fresh databases, databases made before versioning,
databases from a newer cms, two processes opening one database at once, and the migration lists."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cms import schema
from cms.auth import Keys
from cms.cli import main
from cms.errors import StateTooNew
from cms.ratelimit import RateLimiter
from cms.state import State
from tests.support import wait_until

ROOT = Path(__file__).resolve().parent.parent

# What the code before cms/schema.py created, copied literally (cms/state.py, cms/events/webhooks.py,
# cms/events/scheduler.py, cms/ratelimit.py), with user_version left at 0.
OLD_STATE = (
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
        source TEXT NOT NULL DEFAULT 'api', created_at TEXT NOT NULL, failing_since TEXT, disabled_reason TEXT)""",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, webhook_id TEXT NOT NULL,
        event_name TEXT NOT NULL, body BLOB NOT NULL, ordering_key TEXT NOT NULL, created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
        lease_until REAL, last_status INTEGER, finished_at REAL, UNIQUE (event_id, webhook_id))""",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS outbox_order ON outbox (webhook_id, ordering_key, status, id)",
    """CREATE TABLE IF NOT EXISTS attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL, webhook_id TEXT NOT NULL,
        attempted_at REAL NOT NULL, status_code INTEGER, latency_ms REAL, response TEXT, error TEXT)""",
    "CREATE INDEX IF NOT EXISTS attempts_outbox ON attempts (outbox_id)",
    "CREATE TABLE IF NOT EXISTS schedule (doc_id TEXT PRIMARY KEY, live INTEGER NOT NULL, etag TEXT NOT NULL, "
    "type TEXT NOT NULL)",
)
OLD_RATELIMIT = (
    "CREATE TABLE IF NOT EXISTS windows (bucket TEXT PRIMARY KEY, minute INTEGER NOT NULL, "
    "m INTEGER NOT NULL, day INTEGER NOT NULL, d INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS hits (bucket TEXT NOT NULL, window INTEGER NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY (bucket, window)) WITHOUT ROWID",
)
STATE_TABLES = {"api_keys", "meta", "webhooks", "outbox", "attempts", "schedule"}
STATE_INDEXES = {"outbox_due", "outbox_order", "attempts_outbox"}
RATELIMIT_TABLES = {"windows", "hits"}

Opener = Callable[[Path], Any]
OPENERS: dict[str, Opener] = {schema.STATE: State, schema.RATELIMIT: RateLimiter}


def sql(path: Path, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the file with a plain connection (as another tool would) and close it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


def version(path: Path) -> int:
    return int(sql(path, "PRAGMA user_version")[0][0])


def names(path: Path, kind: str) -> set[str]:
    return {r[0] for r in sql(path, "SELECT name FROM sqlite_master WHERE type = ?", (kind,))} - {"sqlite_sequence"}


def columns(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's columns (name, type, not null, default, primary key): the shape, not the SQL text."""
    return {t: [tuple(r[1:]) for r in sql(path, f"PRAGMA table_info({t})")] for t in sorted(names(path, "table"))}


def open_and_close(database: str, folder: Path) -> None:
    OPENERS[database](folder).close()


def make_old(path: Path, statements: tuple[str, ...]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


# -- fresh, old and too new --------------------------------------------------------------------------


def test_a_fresh_state_database_gets_the_newest_version_and_every_table(tmp_path: Path) -> None:
    State(tmp_path).close()
    path = tmp_path / schema.STATE
    assert version(path) == schema.newest(schema.STATE) >= 1
    assert names(path, "table") == STATE_TABLES
    assert names(path, "index") >= STATE_INDEXES


def test_a_fresh_ratelimit_database_gets_the_newest_version_and_every_table(tmp_path: Path) -> None:
    RateLimiter(tmp_path).close()
    path = tmp_path / schema.RATELIMIT
    assert version(path) == schema.newest(schema.RATELIMIT) >= 1
    assert names(path, "table") == RATELIMIT_TABLES


def test_a_state_database_made_before_versioning_is_adopted_with_its_rows(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    old.mkdir()
    path = old / schema.STATE
    make_old(path, OLD_STATE)
    # Rows as the old code wrote them (same tables, same columns). The key goes through Keys, whose
    # token must still verify after the upgrade; opening the file adopted it, so user_version is reset.
    keeper = State(old)
    token = Keys(keeper).create("editor", ["write"]).token
    keeper.close()
    sql(path, "PRAGMA user_version = 0")
    sql(path, "INSERT INTO webhooks (id, name, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("w1", "h", "http://x", "*", "s", "2026-01-01T00:00:00Z"))  # fmt: skip
    sql(path, "INSERT INTO schedule VALUES ('d1', 1, 'e1', 'post')")

    state = State(old)
    try:
        assert Keys(state).verify(token).name == "editor"
    finally:
        state.close()
    assert version(path) == schema.newest(schema.STATE)
    assert sql(path, "SELECT id, url FROM webhooks") == [("w1", "http://x")]
    assert sql(path, "SELECT * FROM schedule") == [("d1", 1, "e1", "post")]
    State(fresh).close()
    assert columns(path) == columns(fresh / schema.STATE)  # adopted == created new


def test_a_ratelimit_database_made_before_versioning_is_adopted_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / schema.RATELIMIT
    make_old(path, OLD_RATELIMIT)
    sql(path, "INSERT INTO windows VALUES ('key:a', 1, 7, 1, 9)")
    sql(path, "INSERT INTO hits VALUES ('key:a', 1, 3)")
    RateLimiter(tmp_path).close()
    assert version(path) == schema.newest(schema.RATELIMIT)
    assert sql(path, "SELECT * FROM windows") == [("key:a", 1, 7, 1, 9)]
    assert sql(path, "SELECT * FROM hits") == [("key:a", 1, 3)]


def test_a_state_database_with_only_some_of_the_old_tables_is_completed(tmp_path: Path) -> None:
    """`cms keys create` on the old code made api_keys and meta only (the webhook tables came with a server)."""
    path = tmp_path / schema.STATE
    make_old(path, OLD_STATE[:2])
    sql(path, "INSERT INTO meta VALUES ('pepper', x'0102')")
    State(tmp_path).close()
    assert names(path, "table") == STATE_TABLES
    assert sql(path, "SELECT value FROM meta") == [(b"\x01\x02",)]


@pytest.mark.parametrize("database", [schema.STATE, schema.RATELIMIT])
def test_a_database_from_a_newer_cms_is_refused_naming_the_file_and_versions(tmp_path: Path, database: str) -> None:
    open_and_close(database, tmp_path)
    path = tmp_path / database
    newer = schema.newest(database) + 1
    sql(path, f"PRAGMA user_version = {newer}")
    with pytest.raises(StateTooNew) as refused:
        open_and_close(database, tmp_path)
    assert refused.value.path == path
    assert (refused.value.version, refused.value.newest) == (newer, schema.newest(database))
    assert str(path) in refused.value.message
    assert str(newer) in refused.value.message and str(schema.newest(database)) in refused.value.message
    assert version(path) == newer  # untouched


def test_keys_list_on_a_too_new_state_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cms.toml").write_text('[site]\ntitle = "T"\ntimezone = "UTC"\n', encoding="utf-8")
    (tmp_path / "content").mkdir()
    State(tmp_path / ".cms").close()
    newer = schema.newest(schema.STATE) + 1
    sql(tmp_path / ".cms" / schema.STATE, f"PRAGMA user_version = {newer}")
    result = CliRunner().invoke(main, ["keys", "list", "--site", str(tmp_path)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "state.db" in lines[0] and f"version {newer}" in lines[0]
    assert isinstance(result.exception, SystemExit)


# -- appending a migration ---------------------------------------------------------------------------


def test_a_later_migration_is_applied_once_in_order_keeping_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    State(tmp_path).close()
    path = tmp_path / schema.STATE
    sql(path, "INSERT INTO meta VALUES ('k', x'00')")
    current = schema.DATABASES[schema.STATE]
    step = len(current) + 1
    later = (
        schema.Migration(step, "a test column", ("ALTER TABLE meta ADD COLUMN note TEXT",)),
        schema.Migration(step + 1, "a test table", ("CREATE TABLE extra (x INTEGER)",)),
    )
    monkeypatch.setitem(schema.DATABASES, schema.STATE, (*current, *later))
    State(tmp_path).close()
    State(tmp_path).close()  # a second start finds nothing to do (ALTER TABLE twice would fail)
    assert version(path) == step + 1
    assert sql(path, "SELECT key, value, note FROM meta") == [("k", b"\x00", None)]
    assert "extra" in names(path, "table")


def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    State(tmp_path).close()
    path = tmp_path / schema.STATE
    current = schema.DATABASES[schema.STATE]
    broken = schema.Migration(
        len(current) + 1, "fails half way", ("CREATE TABLE half (x INTEGER)", "ALTER TABLE missing ADD COLUMN y")
    )
    monkeypatch.setitem(schema.DATABASES, schema.STATE, (*current, broken))
    with pytest.raises(sqlite3.OperationalError):
        State(tmp_path)
    assert version(path) == len(current)
    assert "half" not in names(path, "table")


@pytest.mark.parametrize("database", sorted(schema.DATABASES))
def test_migrations_are_numbered_1_to_n_without_gaps(database: str) -> None:
    migrations = schema.DATABASES[database]
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.statements and m.why for m in migrations)
    assert schema.newest(database) == len(migrations)


def test_every_database_has_an_owner_that_migrates_it() -> None:
    assert set(OPENERS) == set(schema.DATABASES)


# -- two processes at once ---------------------------------------------------------------------------

_OPENER = """
import sys, time
from pathlib import Path
from cms.ratelimit import RateLimiter
from cms.state import State
folder, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
State(folder).close()
RateLimiter(folder).close()
"""


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(folder), str(tmp_path / f"ready-{i}"), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    try:
        wait_until(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(4)), message="openers ready")
        go.touch()  # all four are imported and polling: they open the missing files together
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [c.returncode for c in children] == [0] * 4, [err.decode() for _, err in outputs]
    for database, tables in ((schema.STATE, STATE_TABLES), (schema.RATELIMIT, RATELIMIT_TABLES)):
        assert version(folder / database) == schema.newest(database)
        assert names(folder / database, "table") == tables
