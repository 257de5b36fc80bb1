"""`cms state backup` / `cms state restore` (cms/backup.py): a site's `.cms/` state moved to a fresh copy.

Unit tests use the services and the CliRunner on sites in tmp_path; the last test backs up a real
`cms serve` under API write load and restores it on a fresh copy of the site (see its docstring).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook as Verifier

from bench.webhooks import Hit, Receiver, Reply
from cms import backup as state_backup
from cms import schema
from cms.audit import AuditEntry, AuditLog
from cms.auth import Keys
from cms.cli import main
from cms.config import Site
from cms.errors import BadRequest, Conflict, NotFound, StateTooNew, Unauthorized
from cms.events.bus import Event
from cms.events.webhooks import Webhooks
from cms.ratelimit import RateLimiter
from cms.state import State
from tests.e2e.conftest import create_key, launch
from tests.support import wait_until

CONFIG = '[site]\ntitle = "Backup"\ntimezone = "UTC"\n\n[network]\nallow_private_addresses = true\n'
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def new_site(root: Path, config: str = CONFIG) -> Site:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cms.toml").write_text(config, encoding="utf-8")
    (root / "content" / "posts").mkdir(parents=True, exist_ok=True)
    return Site.load(root)


def fresh_copy(site: Site, root: Path) -> Site:
    """What a clone of the site's git repository holds: cms.toml and content/, no .cms/."""
    root.mkdir(parents=True)
    shutil.copy(site.root / "cms.toml", root / "cms.toml")
    shutil.copytree(site.content_dir, root / "content")
    return Site.load(root)


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[tuple[Site, list[str], list[str]]]:
    """A site with two keys, one subscription, three pending deliveries, rate-limit counts, an audit line.

    Yields (site, tokens, pending event ids); every connection is closed before the test body runs."""
    site = new_site(tmp_path / "site")
    state = State(site.state_dir)
    keys = Keys(state)
    tokens = [keys.create("editor", ["write"]).token, keys.create("reader", ["read"]).token]
    hooks = Webhooks(site, state)
    hook, _ = hooks.create({"name": "down", "url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": SECRET})
    events = [Event("post.created", {"post": {"id": f"p{i}", "type": "post"}}, source="test") for i in range(3)]
    for event in events:
        assert hooks.enqueue(event)
    state.close()
    limiter = RateLimiter(site.state_dir)
    limiter.hit("key:x", 60, 1000)
    limiter.close()
    AuditLog(site.state_dir).append(
        AuditEntry("2026-01-01T00:00:00Z", "posts.create", "/api/v1/posts", 201, "k", "editor", "127.0.0.1", "POST")
    )
    yield site, tokens, [e.id for e in events]


def pending_ids(site: Site) -> list[str]:
    db = sqlite3.connect(site.state_dir / "state.db")
    try:
        return [r[0] for r in db.execute("SELECT event_id FROM outbox WHERE status = 'pending' ORDER BY id")]
    finally:
        db.close()


# -- backup and restore ----------------------------------------------------------------------------


def test_restore_on_a_fresh_copy_brings_keys_webhooks_and_pending_deliveries(
    populated: tuple[Site, list[str], list[str]], tmp_path: Path
) -> None:
    site, tokens, pending = populated
    manifest = state_backup.backup(site, tmp_path / "state.zip")
    assert {f.name for f in manifest.files} == {"state.db", "ratelimit.db", "audit.jsonl"}

    fresh = fresh_copy(site, tmp_path / "fresh")
    done = state_backup.restore(fresh, tmp_path / "state.zip")
    assert done.replaced is None  # nothing was there to keep aside
    state = State(fresh.state_dir)
    try:
        keys = Keys(state)
        assert {keys.verify(t).name for t in tokens} == {"editor", "reader"}
        hooks = Webhooks(fresh, state)
        assert [h.secret for h in hooks.list()] == [SECRET]
        assert hooks.pending_count() == 3
    finally:
        state.close()
    assert pending_ids(fresh) == pending
    assert AuditLog(fresh.state_dir).read()[1] == 1
    assert (fresh.state_dir / "state.db").stat().st_mode & 0o777 == 0o600


def test_the_cli_backs_up_and_restores(populated: tuple[Site, list[str], list[str]], tmp_path: Path) -> None:
    site, tokens, _ = populated
    runner = CliRunner()
    made = runner.invoke(main, ["state", "backup", str(tmp_path / "s.zip"), "--site", str(site.root)])
    assert made.exit_code == 0, made.output
    assert "state.db" in made.output
    fresh = fresh_copy(site, tmp_path / "fresh")
    done = runner.invoke(main, ["state", "restore", str(tmp_path / "s.zip"), "--site", str(fresh.root)])
    assert done.exit_code == 0, done.output
    state = State(fresh.state_dir)
    try:
        assert Keys(state).verify(tokens[0]).name == "editor"
    finally:
        state.close()


def test_restore_keeps_the_old_state_aside(populated: tuple[Site, list[str], list[str]], tmp_path: Path) -> None:
    site, tokens, _ = populated
    state_backup.backup(site, tmp_path / "before.zip")
    state = State(site.state_dir)
    later = Keys(state).create("made after the backup", ["read"]).token
    state.close()

    done = state_backup.restore(site, tmp_path / "before.zip")

    assert done.replaced is not None and done.replaced.parent == site.state_dir
    assert done.replaced.name.startswith("replaced-")
    assert {p.name for p in done.replaced.iterdir()} >= {"state.db", "ratelimit.db", "audit.jsonl"}
    old, restored = State(done.replaced), State(site.state_dir)
    try:
        assert Keys(old).verify(later).name == "made after the backup"  # the replaced state is intact
        with pytest.raises(Unauthorized):
            Keys(restored).verify(later)
        assert Keys(restored).verify(tokens[1]).name == "reader"
    finally:
        old.close()
        restored.close()
    again = state_backup.restore(site, tmp_path / "before.zip")  # a second restore keeps both older states
    assert again.replaced is not None and again.replaced != done.replaced and done.replaced.is_dir()


def test_a_backup_never_holds_a_plaintext_key(populated: tuple[Site, list[str], list[str]], tmp_path: Path) -> None:
    site, tokens, _ = populated
    state_backup.backup(site, tmp_path / "state.zip")
    with zipfile.ZipFile(tmp_path / "state.zip") as archive:
        blobs = [archive.read(n) for n in archive.namelist()]
    blobs.append((tmp_path / "state.zip").read_bytes())
    for token in tokens:
        # `cms_<12-character id>_<secret>`: the secret is token_urlsafe, which may hold "_" itself
        secret_part = token.removeprefix("cms_")[13:]
        assert len(secret_part) >= 40
        for blob in blobs:
            assert token.encode() not in blob
            assert secret_part.encode() not in blob
    assert (tmp_path / "state.zip").stat().st_mode & 0o777 == 0o600  # it holds webhook signing secrets


def test_a_backup_is_a_consistent_copy_while_another_process_writes(tmp_path: Path) -> None:
    """Keys are inserted by a second connection during the backups; each backup is one committed state."""
    site = new_site(tmp_path / "site")
    State(site.state_dir).close()
    stop = threading.Event()

    def writer() -> None:
        db = sqlite3.connect(site.state_dir / "state.db", isolation_level=None, timeout=30)
        try:
            n = 0
            while not stop.is_set():
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO meta (key, value) VALUES (?, x'00')", (f"a{n}",))
                db.execute("INSERT INTO meta (key, value) VALUES (?, x'00')", (f"b{n}",))
                db.execute("COMMIT")
                n += 1
        finally:
            db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(5):
            state_backup.backup(site, tmp_path / f"b{i}.zip")
    finally:
        stop.set()
        thread.join(30)
    for i in range(5):
        with zipfile.ZipFile(tmp_path / f"b{i}.zip") as archive:
            (tmp_path / f"b{i}.db").write_bytes(archive.read("state.db"))
        db = sqlite3.connect(tmp_path / f"b{i}.db")
        try:
            a = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'a%'").fetchone()[0]
            b = db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'b%'").fetchone()[0]
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
        assert a == b  # never half a transaction


def test_the_manifest_names_format_versions_and_checksums(
    populated: tuple[Site, list[str], list[str]], tmp_path: Path
) -> None:
    site, _, _ = populated
    state_backup.backup(site, tmp_path / "state.zip")
    with zipfile.ZipFile(tmp_path / "state.zip") as archive:
        assert archive.namelist()[0] == "manifest.json"
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(archive.read(entry["name"])).hexdigest() == entry["sha256"]
    assert manifest["format"] == "cms-state-backup"
    assert manifest["format_version"] == state_backup.FORMAT_VERSION
    assert manifest["created_at"].endswith("Z")
    assert {f["name"]: f.get("user_version") for f in manifest["files"]} == {
        "state.db": schema.newest("state.db"),
        "ratelimit.db": schema.newest("ratelimit.db"),
        "audit.jsonl": None,
    }


def test_caches_and_runtime_files_are_left_out(populated: tuple[Site, list[str], list[str]], tmp_path: Path) -> None:
    site, _, _ = populated
    for rel in ("index/snapshot.pickle", "build/abc.json", "preview/index.html", "locks/x.lock", "journal/j.json"):
        (site.state_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (site.state_dir / rel).write_text("cache")
    state_backup.backup(site, tmp_path / "state.zip")
    with zipfile.ZipFile(tmp_path / "state.zip") as archive:
        assert sorted(archive.namelist()) == ["audit.jsonl", "manifest.json", "ratelimit.db", "state.db"]


def test_the_audit_log_is_copied_up_to_its_last_whole_line(
    populated: tuple[Site, list[str], list[str]], tmp_path: Path
) -> None:
    site, _, _ = populated
    whole = (site.state_dir / "audit.jsonl").read_bytes()
    with open(site.state_dir / "audit.jsonl", "ab") as fh:
        fh.write(b'{"time": "2026-01-01T00:00:01Z", "act')  # an append caught half written
    state_backup.backup(site, tmp_path / "state.zip")
    with zipfile.ZipFile(tmp_path / "state.zip") as archive:
        assert archive.read("audit.jsonl") == whole


def test_nothing_to_back_up_is_an_error(tmp_path: Path) -> None:
    site = new_site(tmp_path / "site")
    result = CliRunner().invoke(main, ["state", "backup", str(tmp_path / "s.zip"), "--site", str(site.root)])
    assert result.exit_code == 1
    assert result.output.startswith("error: no state to back up")
    assert not (tmp_path / "s.zip").exists()


# -- refusals --------------------------------------------------------------------------------------


def rewrite(source: Path, target: Path, change: Any) -> None:
    """Copy a backup member by member, letting `change(name, data)` return new (name, data) pairs."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            for new_name, data in change(name, old.read(name)):
                new.writestr(new_name, data)


@pytest.fixture
def made(populated: tuple[Site, list[str], list[str]], tmp_path: Path) -> tuple[Site, Path]:
    """A backup of `populated`, and a fresh copy of the site to restore into."""
    site, _, _ = populated
    state_backup.backup(site, tmp_path / "state.zip")
    return fresh_copy(site, tmp_path / "fresh"), tmp_path / "state.zip"


def refused(site: Site, path: Path) -> str:
    """The CLI's answer to restoring `path`: exit 1, one line, no traceback, and .cms/ untouched."""
    result = CliRunner().invoke(main, ["state", "restore", str(path), "--site", str(site.root)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not (site.state_dir / "state.db").exists()
    return result.output


def test_a_newer_format_is_refused_naming_both_versions(made: tuple[Site, Path], tmp_path: Path) -> None:
    fresh, path = made

    def newer(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest.update(format_version=state_backup.FORMAT_VERSION + 1, cms_version="9.0.0")
            data = json.dumps(manifest).encode()
        return [(name, data)]

    rewrite(path, tmp_path / "newer.zip", newer)
    message = refused(fresh, tmp_path / "newer.zip")
    assert f"format {state_backup.FORMAT_VERSION + 1}" in message and "cms 9.0.0" in message
    assert f"up to {state_backup.FORMAT_VERSION}" in message


def set_schema_version(site: Site, name: str, version: int) -> None:
    """Set a database's user_version by hand (every connection to it is closed)."""
    db = sqlite3.connect(site.state_dir / name, isolation_level=None)
    try:
        db.execute(f"PRAGMA user_version = {version}")
    finally:
        db.close()


def test_a_database_newer_than_this_cms_is_refused(
    populated: tuple[Site, list[str], list[str]], tmp_path: Path
) -> None:
    site, _, _ = populated
    newer = schema.newest("state.db") + 1
    set_schema_version(site, "state.db", newer)  # as a newer cms would have left it
    state_backup.backup(site, tmp_path / "newer.zip")
    fresh = fresh_copy(site, tmp_path / "fresh")
    with pytest.raises(StateTooNew) as refused_with:
        state_backup.restore(fresh, tmp_path / "newer.zip")
    assert (refused_with.value.version, refused_with.value.newest) == (newer, schema.newest("state.db"))
    message = refused(fresh, tmp_path / "newer.zip")  # and the CLI says so in one line
    assert "state.db" in message and f"version {newer}" in message and len(message.strip().splitlines()) == 1


def test_an_older_database_is_restored_and_migrated_at_the_next_start(
    populated: tuple[Site, list[str], list[str]], tmp_path: Path
) -> None:
    site, tokens, _ = populated
    set_schema_version(site, "state.db", 0)  # a backup from before versioned schemas
    manifest = state_backup.backup(site, tmp_path / "older.zip")
    assert {f.name: f.user_version for f in manifest.files}["state.db"] == 0
    fresh = fresh_copy(site, tmp_path / "fresh")
    state_backup.restore(fresh, tmp_path / "older.zip")
    state = State(fresh.state_dir)
    try:
        assert Keys(state).verify(tokens[0]).name == "editor"
        assert state.query("PRAGMA user_version")[0][0] == schema.newest("state.db")
    finally:
        state.close()


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_a_truncated_backup_is_refused(made: tuple[Site, Path], tmp_path: Path, keep: float) -> None:
    fresh, path = made
    data = path.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: int(len(data) * keep)])
    assert "damaged" in refused(fresh, tmp_path / "cut.zip")


def test_a_damaged_member_is_refused(made: tuple[Site, Path], tmp_path: Path) -> None:
    fresh, path = made

    def flip(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "state.db":
            data = data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]
        return [(name, data)]

    rewrite(path, tmp_path / "flipped.zip", flip)
    assert "checksum" in refused(fresh, tmp_path / "flipped.zip")


def test_a_database_that_fails_the_integrity_check_is_refused(made: tuple[Site, Path], tmp_path: Path) -> None:
    """Damage the manifest's checksums cannot see (the backup was made from a damaged database)."""
    fresh, path = made
    with zipfile.ZipFile(path) as archive:
        original = archive.read("state.db")
    page = 4096
    broken = original[:page] + b"\xff" * page + original[2 * page :]

    def damage(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "state.db":
            data = broken
        elif name == "manifest.json":
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if entry["name"] == "state.db":
                    entry.update(bytes=len(broken), sha256=hashlib.sha256(broken).hexdigest())
            data = json.dumps(manifest).encode()
        return [(name, data)]

    rewrite(path, tmp_path / "broken.zip", damage)
    assert "state.db in the backup" in refused(fresh, tmp_path / "broken.zip")
    assert not list(fresh.state_dir.glob(".restoring-*"))  # the staging folder is gone too


def test_a_file_that_is_not_a_backup_is_refused(made: tuple[Site, Path], tmp_path: Path) -> None:
    fresh, _ = made
    (tmp_path / "notes.zip").write_bytes(b"just some text, not a zip")
    assert "not a cms state backup" in refused(fresh, tmp_path / "notes.zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    (tmp_path / "other.zip").write_bytes(buffer.getvalue())
    assert "not a cms state backup" in refused(fresh, tmp_path / "other.zip")
    assert "no backup file" in refused(fresh, tmp_path / "missing.zip")


@pytest.mark.parametrize("hostile", ["../state.db", "/etc/state.db", "sub/state.db", "..", ".cms-evil.db"])
def test_hostile_member_names_are_refused(made: tuple[Site, Path], tmp_path: Path, hostile: str) -> None:
    """A member that could land outside .cms/ (or in a folder) is refused before anything is written."""
    fresh, path = made

    def rename(name: str, data: bytes) -> list[tuple[str, bytes]]:
        if name == "manifest.json":
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if entry["name"] == "state.db":
                    entry["name"] = hostile
            data = json.dumps(manifest).encode()
        return [(hostile if name == "state.db" else name, data)]

    rewrite(path, tmp_path / "hostile.zip", rename)
    assert hostile in refused(fresh, tmp_path / "hostile.zip")
    assert not (tmp_path / "state.db").exists() and not (fresh.root / "state.db").exists()


def test_a_member_the_manifest_does_not_list_is_refused(made: tuple[Site, Path], tmp_path: Path) -> None:
    fresh, path = made
    rewrite(path, tmp_path / "extra.zip", lambda n, d: [(n, d)] + ([("extra.db", d)] if n == "state.db" else []))
    assert "extra.db" in refused(fresh, tmp_path / "extra.zip")


def test_restore_is_refused_while_a_process_has_the_state_open(
    made: tuple[Site, Path], populated: tuple[Site, list[str], list[str]]
) -> None:
    """Another process (here a child holding a connection, as `cms serve` does) blocks the restore."""
    site, tokens, _ = populated
    _, path = made
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA journal_mode=WAL');"
            " db.execute('SELECT COUNT(*) FROM api_keys').fetchall(); print('open', flush=True); sys.stdin.read()",
            str(site.state_dir / "state.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(Conflict, match="stop `cms serve`"):
            state_backup.restore(site, path)
        assert not list(site.state_dir.glob("replaced-*"))
    finally:
        holder.communicate("", timeout=30)
    done = state_backup.restore(site, path)  # once it is closed, the restore goes ahead
    assert done.replaced is not None


def test_errors_are_named_errors(tmp_path: Path) -> None:
    site = new_site(tmp_path / "site")
    with pytest.raises(NotFound):
        state_backup.restore(site, tmp_path / "nope.zip")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BadRequest):
        state_backup.read_manifest(tmp_path / "bad.zip")


# -- end to end ------------------------------------------------------------------------------------

E2E_CONFIG = (
    '[site]\ntitle = "Moved"\ntimezone = "UTC"\nbase_url = "https://moved.example"\n\n'
    "[network]\nallow_private_addresses = true\n\n"
    "[api]\nrate_limit_per_minute = 100000\nrate_limit_per_day = 1000000\n\n"
    # One-second retries for a long while: the down receiver keeps every delivery pending (not failed)
    # for the whole test, and after the restore each one is due again within a second or so.
    f"[delivery]\ntimeout = 1.0\njitter = 0.0\nretry_schedule = {[1] * 500}\n"
)
DEADLINE_S = 90.0  # generous: a delivery claimed just before the backup waits out its lease (~12 s)


def backed_up(path: Path, scratch: Path) -> tuple[set[str], set[str]]:
    """(key ids, event ids of unfinished deliveries) inside a backup file."""
    with zipfile.ZipFile(path) as archive:
        (scratch / "peek.db").write_bytes(archive.read("state.db"))
    db = sqlite3.connect(scratch / "peek.db")
    try:
        keys = {r[0] for r in db.execute("SELECT id FROM api_keys")}
        pending = {r[0] for r in db.execute("SELECT event_id FROM outbox WHERE status IN ('pending', 'sending')")}
    finally:
        db.close()
    return keys, pending


def test_backup_of_a_running_server_under_load_restores_on_a_fresh_copy(tmp_path: Path) -> None:
    """A site moved to a new machine keeps every key and delivers every pending webhook.

    A real `cms serve` takes posts from a writer thread and queues their webhooks for a receiver
    that answers 503 (down): the deliveries stay pending. `cms state backup` runs during the load.
    The server stops; a fresh copy of cms.toml and content/ (what git holds) gets `cms state
    restore`, and a server on it, with the receiver now up, must accept every key that was in the
    backup and deliver every delivery the backup held as pending, signed with the restored secret.
    """
    live = threading.Event()

    def respond(hit: Hit) -> Reply:
        return Reply(200) if live.is_set() else Reply(503)

    site = new_site(tmp_path / "site", E2E_CONFIG)
    tokens = [create_key(site.root, "admin")] + [create_key(site.root, "read") for _ in range(3)]
    with Receiver(respond) as receiver:
        server = launch(site.root, tmp_path / "old.log", "--no-preview")
        try:
            http = httpx.Client(base_url=server.base, headers={"X-API-Key": tokens[0]}, timeout=30)
            made = http.post("/api/v1/webhooks", json={"name": "receiver", "url": receiver.url, "events": ["*"]})
            assert made.status_code == 201, made.text
            secret = made.json()["data"]["secret"]
            stop, written, errors = threading.Event(), [0], []

            def write_load() -> None:
                with httpx.Client(base_url=server.base, headers={"X-API-Key": tokens[0]}, timeout=30) as writer:
                    n = 0
                    while not stop.is_set():
                        r = writer.post(
                            "/api/v1/posts", json={"title": f"Load {n}", "content": "x", "status": "published"}
                        )
                        if r.status_code == 201:
                            written[0] += 1
                        else:
                            errors.append(f"{r.status_code} {r.text}")
                            return
                        if n % 10 == 0:  # keys made during the load too
                            r = writer.post("/api/v1/api-keys", json={"name": f"load {n}", "scopes": ["read"]})
                            if r.status_code == 201:
                                tokens.append(r.json()["data"]["key"])
                        n += 1

            thread = threading.Thread(target=write_load)
            thread.start()
            try:
                wait_until(
                    lambda: written[0] >= 20 and len(receiver.hits) >= 5,
                    DEADLINE_S,
                    message=lambda: (
                        f"{written[0]} posts, {len(receiver.hits)} hits, {errors[:2]}\n{server.stderr()[-3000:]}"
                    ),
                )
                backup = subprocess.run(
                    [sys.executable, "-m", "cms", "state", "backup", str(tmp_path / "s.zip"), "--site", str(site.root)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                after = written[0]
                wait_until(lambda: written[0] >= after + 10, DEADLINE_S, message="writes after the backup")
            finally:
                stop.set()
                thread.join(60)
            assert backup.returncode == 0, backup.stderr
            assert not errors, errors
            busy = subprocess.run(  # a restore under a running server is refused, and changes nothing
                [sys.executable, "-m", "cms", "state", "restore", str(tmp_path / "s.zip"), "--site", str(site.root)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert busy.returncode == 1 and "stop `cms serve`" in busy.stderr, busy.stderr
            assert not list(site.state_dir.glob("replaced-*"))
        finally:
            http.close()
            code, _ = server.stop()
        assert code is not None, server.stderr()

        key_ids, pending = backed_up(tmp_path / "s.zip", tmp_path)
        assert len(pending) >= 5, "the backup should hold pending deliveries"
        in_backup = [t for t in tokens if t.split("_")[1] in key_ids]
        after_backup = [t for t in tokens if t.split("_")[1] not in key_ids]
        assert len(in_backup) >= 4 and after_backup

        fresh = fresh_copy(site, tmp_path / "fresh")
        restored = subprocess.run(
            [sys.executable, "-m", "cms", "state", "restore", str(tmp_path / "s.zip"), "--site", str(fresh.root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restored.returncode == 0, restored.stderr
        live.set()
        since = time.monotonic()  # hits from here on were answered 200
        moved = launch(fresh.root, tmp_path / "new.log", "--no-preview")
        try:
            for token in in_backup:
                assert httpx.get(f"{moved.base}/api/v1/posts", headers={"X-API-Key": token}).status_code == 200
            for token in after_backup:  # negative control: keys made after the backup are not there
                assert httpx.get(f"{moved.base}/api/v1/posts", headers={"X-API-Key": token}).status_code == 401

            def delivered() -> list[Hit]:
                with receiver.lock:
                    return [h for h in receiver.hits if h.at >= since and h.headers.get("webhook-id") in pending]

            wait_until(
                lambda: pending <= {h.headers["webhook-id"] for h in delivered()},
                DEADLINE_S,
                message=lambda: f"{len(pending - {h.headers['webhook-id'] for h in delivered()})} not delivered",
            )
            verifier = Verifier(secret)  # signed with the subscription's secret, restored from the backup
            for hit in delivered():
                verifier.verify(
                    hit.body, {k: hit.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
                )
        finally:
            code, _ = moved.stop()
        assert code is not None, moved.stderr()
