"""Backup and restore of the site's local state (`.cms/`), the part of a site that is not in git.

What is state and what is cache (docs/operations.md says the same to operators):
- state, backed up: every SQLite database at the top of `.cms/` (`state.db`: API keys as keyed
  digests and their pepper, webhook subscriptions with their signing secrets, the outbox and the
  delivery log, the scheduler's last announcements; `ratelimit.db`: counters; any database a later
  version adds there) and the audit log `audit.jsonl`.
- cache or runtime, left out: `index/` (the index snapshot, rebuilt from content/), `build/` (build
  manifests: a missing one makes the next build check every output), `preview/`, `locks/`, and
  `journal/` (renames in flight on this machine; the content they protect is in git).

One backup is one zip file: `manifest.json` first, then one member per state file, all flat. Zip
because its central directory and per-member CRC-32 make a truncated or damaged file fail loudly
(a tar has no checksum of its contents), it is one file to copy off the machine, and SQLite pages
compress well. The manifest also holds each member's SHA-256 and size, checked before anything is
restored. Databases are copied with SQLite's online backup API in one step: a consistent snapshot
taken inside one read transaction, while a server keeps writing (WAL readers do not block writers).
Keys stay hashed: the backup holds what `state.db` holds, and that is never a plaintext key.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cms import __version__, schema
from cms.clock import iso_z, utc_now
from cms.config import Site
from cms.errors import BadRequest, Conflict, NotFound, StateTooNew

FORMAT = "cms-state-backup"
FORMAT_VERSION = 1  # raise it when a reader of the old format could not restore the new one
MANIFEST = "manifest.json"
AUDIT_LOG = "audit.jsonl"  # the one non-SQLite state file
# Member names are flat, plain file names: nothing a hostile archive could use to climb out of .cms/.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite's unix VFS: every connection to a WAL database holds a read lock on this byte of the
# -shm file for as long as it is open (the "DMS" lock), so a lock test on it sees other processes.
_SHM_DMS_BYTE = 128
_CHUNK = 1 << 20
_MAX_MANIFEST = 1 << 20
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError)


@dataclass(frozen=True)
class StateFile:
    """One member of a backup, as its manifest describes it."""

    name: str
    kind: str  # "sqlite" or "file"
    bytes: int
    sha256: str
    user_version: int | None = None  # the database's schema number (PRAGMA user_version)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "bytes": self.bytes, "sha256": self.sha256}
        if self.kind == "sqlite":
            data["user_version"] = self.user_version
        return data


@dataclass(frozen=True)
class Manifest:
    format_version: int
    cms_version: str
    created_at: str
    files: tuple[StateFile, ...]


@dataclass(frozen=True)
class Restored:
    """What a restore did: the manifest it restored and where the state it replaced was moved."""

    manifest: Manifest
    replaced: Path | None  # None when .cms/ held no state before


def state_files(site: Site) -> list[Path]:
    """The state files in `.cms/` a backup copies: top-level databases, then the audit log."""
    folder = site.state_dir
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.glob("*.db") if p.is_file() and _SAFE_NAME.match(p.name))
    audit = folder / AUDIT_LOG
    return found + ([audit] if audit.is_file() else [])


# -- backup ----------------------------------------------------------------------------------------


def backup(site: Site, target: Path) -> Manifest:
    """Write a consistent copy of every state file of `site` to the zip file `target` (safe while serving)."""
    sources = state_files(site)
    if not sources:
        raise NotFound(f"no state to back up in {site.state_dir} (no database or audit log there)")
    target = Path(target).absolute()
    if not target.parent.is_dir():
        raise NotFound(f"the folder of {target} does not exist")
    # Scratch copies inside .cms/ (owner-only, like the state itself): they hold webhook secrets.
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=site.state_dir) as scratch:
        members: list[tuple[StateFile, Path]] = []
        for source in sources:
            copy = Path(scratch) / source.name
            if source.name == AUDIT_LOG:
                members.append((_copy_log(source, copy), copy))
            else:
                members.append((_copy_database(source, copy), copy))
        manifest = Manifest(FORMAT_VERSION, __version__, iso_z(utc_now(), "seconds"), tuple(m for m, _ in members))
        _write_zip(target, manifest, members)
    return manifest


def _copy_database(source: Path, copy: Path) -> StateFile:
    """An online copy of one database: the backup API copies every page in one step, in one read
    transaction, so the copy is one committed state even while other processes write."""
    try:
        src = sqlite3.connect(source, timeout=30.0)
        try:
            src.execute("PRAGMA busy_timeout=30000")  # a checkpoint or a writer may hold a lock briefly
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
                # A self-contained file: no -wal beside it in the archive or after a restore.
                dst.execute("PRAGMA journal_mode=DELETE")
                user_version = int(dst.execute("PRAGMA user_version").fetchone()[0])
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        raise BadRequest(f"{source} could not be copied: it is not a readable SQLite database ({exc})") from None
    return StateFile(copy.name, "sqlite", copy.stat().st_size, _sha256(copy), user_version)


def _copy_log(source: Path, copy: Path) -> StateFile:
    """The audit log up to its last complete line: appends are whole lines, so that is a consistent prefix."""
    with open(source, "rb") as src, open(copy, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    with open(copy, "r+b") as fh:
        end = fh.seek(0, os.SEEK_END)
        while end > 0:  # cut a line still being appended at the moment of the copy
            start = max(0, end - _CHUNK)
            fh.seek(start)
            newline = fh.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        fh.truncate(end)
    return StateFile(copy.name, "file", end, _sha256(copy))


def _write_zip(target: Path, manifest: Manifest, members: list[tuple[StateFile, Path]]) -> None:
    """Write the archive beside `target` and rename it into place: a crash never leaves a half backup
    under the real name."""
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # webhook signing secrets are in it
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST, json.dumps(_manifest_dict(manifest), indent=2) + "\n")
                for entry, path in members:
                    archive.write(path, entry.name)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _manifest_dict(manifest: Manifest) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": manifest.format_version,
        "cms_version": manifest.cms_version,
        "created_at": manifest.created_at,
        "files": [f.as_dict() for f in manifest.files],
    }


# -- reading a backup ------------------------------------------------------------------------------


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at `path`, after checking the archive is whole and harmless."""
    with _open_archive(path) as archive:
        return _check_archive(path, archive)


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not Path(path).is_file():
        raise NotFound(f"no backup file at {path}")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest(f"{path} is not a cms state backup, or it is truncated or damaged ({exc})") from None


def _check_archive(path: Path, archive: zipfile.ZipFile) -> Manifest:
    """Validate names, manifest and every member's size and SHA-256; nothing is written."""
    names = [info.filename for info in archive.infolist()]
    for name in names:
        if not _SAFE_NAME.match(name) or name in (".", ".."):
            raise BadRequest(f"{path} holds a member named {name!r}: a backup holds only plain file names")
    if len(set(names)) != len(names):
        raise BadRequest(f"{path} holds a member name twice")
    if MANIFEST not in names:
        raise BadRequest(f"{path} is not a cms state backup (it has no {MANIFEST})")
    if archive.getinfo(MANIFEST).file_size > _MAX_MANIFEST:
        raise BadRequest(f"{path}: its {MANIFEST} is too large to be a cms state backup's")
    manifest = _parse_manifest(path, _read_member(path, archive, MANIFEST))
    listed = {f.name for f in manifest.files}
    extra = sorted(set(names) - listed - {MANIFEST})
    missing = sorted(listed - set(names))
    if extra or missing:
        raise BadRequest(f"{path} does not match its manifest (not listed: {extra}, absent: {missing})")
    for entry in manifest.files:
        _copy_member(path, archive, entry, None)
    return manifest


def _read_member(path: Path, archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except _DAMAGED as exc:
        raise BadRequest(f"{path}: {name} cannot be read, the backup is damaged ({exc})") from None


def _copy_member(path: Path, archive: zipfile.ZipFile, entry: StateFile, out: BinaryIO | None) -> None:
    """Stream one member (into `out`, if given), checking it against the manifest's size and SHA-256.

    Streamed in chunks and cut off past the announced size: a large state database or audit log
    never has to fit in memory, and a member that inflates beyond its manifest is refused early."""
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        with archive.open(entry.name) as member:
            for block in iter(lambda: member.read(_CHUNK), b""):
                size += len(block)
                if size > entry.bytes:
                    break
                head = head or block[: len(_SQLITE_MAGIC)]
                digest.update(block)
                if out is not None:
                    out.write(block)
    except _DAMAGED as exc:
        raise BadRequest(f"{path}: {entry.name} cannot be read, the backup is damaged ({exc})") from None
    if size != entry.bytes or digest.hexdigest() != entry.sha256:
        raise BadRequest(f"{path}: {entry.name} does not match its checksum in the manifest (damaged backup)")
    if entry.kind == "sqlite" and head != _SQLITE_MAGIC:
        raise BadRequest(f"{path}: {entry.name} is not a SQLite database")


def _parse_manifest(path: Path, raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRequest(f"{path}: {MANIFEST} is not JSON (damaged backup)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadRequest(f"{path} is not a cms state backup (its manifest has no format {FORMAT!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadRequest(f"{path}: the manifest's format_version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise BadRequest(
            f"{path} is a backup in format {version} (made by cms {data.get('cms_version', '?')}); this is cms "
            f"{__version__}, which reads formats up to {FORMAT_VERSION}: restore it with a newer cms"
        )
    try:
        files = tuple(
            StateFile(
                str(f["name"]),
                str(f["kind"]),
                int(f["bytes"]),
                str(f["sha256"]),
                int(f["user_version"]) if f.get("user_version") is not None else None,
            )
            for f in data["files"]
        )
    except (KeyError, TypeError, ValueError):
        raise BadRequest(f"{path}: the manifest's file list is malformed") from None
    for entry in files:
        if not _SAFE_NAME.match(entry.name) or entry.name == MANIFEST or entry.kind not in ("sqlite", "file"):
            raise BadRequest(f"{path}: the manifest lists a file {entry.name!r} of kind {entry.kind!r}")
        if entry.kind == "file" and entry.name != AUDIT_LOG:
            raise BadRequest(f"{path}: the manifest lists {entry.name!r}, which is not a state file")
        if entry.kind == "sqlite" and not entry.name.endswith(".db"):
            raise BadRequest(f"{path}: the manifest lists a database named {entry.name!r} (not *.db)")
    return Manifest(version, str(data.get("cms_version", "?")), str(data.get("created_at", "?")), files)


# -- restore ---------------------------------------------------------------------------------------


def restore(site: Site, source: Path) -> Restored:
    """Replace the state in `.cms/` with the backup at `source`; the old state is moved aside, never deleted.

    Refused while another process (a server) has a state database open: a running server would keep
    writing into the files being replaced, or keep the old ones open and lose the restored state."""
    folder = site.state_dir
    with _open_archive(source) as archive:
        manifest = _check_archive(source, archive)
        _check_schemas(source, manifest)
        busy = [p.name for p in state_files(site) if p.suffix == ".db" and _open_elsewhere(p)]
        if busy:
            raise Conflict(
                f"{', '.join(busy)} in {folder} is open in another process: stop `cms serve` (and any other cms "
                "command) on this site before restoring"
            )
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(prefix=".restoring-", dir=folder))
        try:
            for entry in manifest.files:
                _extract(source, archive, entry, staging / entry.name)
            _fsync_dir(staging)
            replaced = _move_aside(site, _aside_folder(folder))
            for entry in manifest.files:
                os.replace(staging / entry.name, folder / entry.name)
            _fsync_dir(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Restored(manifest, replaced)


def _check_schemas(source: Path, manifest: Manifest) -> None:
    """Refuse a database whose schema is newer than this cms knows (StateTooNew); an older one is fine:
    it is migrated when the server or a command next opens it. A database this cms does not declare
    (one a later version added) is restored as it is: nothing here opens it."""
    for entry in manifest.files:
        if entry.kind != "sqlite" or entry.user_version is None or entry.name not in schema.DATABASES:
            continue
        known = schema.newest(entry.name)
        if entry.user_version > known:
            raise StateTooNew(
                f"{source}: {entry.name} in the backup has schema version {entry.user_version} (made by cms "
                f"{manifest.cms_version}), but this cms ({__version__}) knows {entry.name} only up to version "
                f"{known}: restore it with that cms or a newer one, or restore an older backup",
                path=source,
                version=entry.user_version,
                newest=known,
            )


def _extract(source: Path, archive: zipfile.ZipFile, entry: StateFile, path: Path) -> None:
    """One member to `path` (owner-only, synced); a database must pass SQLite's integrity check."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        _copy_member(source, archive, entry, fh)  # checked again: the file may have changed since
        fh.flush()
        os.fsync(fh.fileno())
    if entry.kind != "sqlite":
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
            user_version = int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise BadRequest(f"{entry.name} in the backup is not a usable SQLite database ({exc})") from None
    if verdict != "ok":
        raise BadRequest(f"{entry.name} in the backup fails SQLite's integrity check: {verdict}")
    if user_version != entry.user_version:
        raise BadRequest(f"{entry.name} has schema {user_version}, its manifest says {entry.user_version}")


def _move_aside(site: Site, aside: Path) -> Path | None:
    """Move the current state files (each database with its -wal and -shm) into `aside`."""
    moving = []
    for path in state_files(site):
        moving.append(path)
        if path.suffix == ".db":
            moving += [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if not moving:
        return None
    aside.mkdir(mode=0o700)
    for path in moving:
        os.replace(path, aside / path.name)
    _fsync_dir(aside)
    return aside


def _aside_folder(folder: Path) -> Path:
    """`replaced-<UTC time>` (with `-2`, `-3`... for a second restore within the same second)."""
    base = folder / ("replaced-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _open_elsewhere(database: Path) -> bool:
    """Whether another process has `database` open (its -shm file's DMS byte is read-locked).

    Call it only while this process has no connection to the database: closing the descriptor
    opened here would drop this process's own SQLite locks on the file (POSIX lock semantics)."""
    shm = Path(f"{database}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False  # no -shm: no connection has the database open in WAL mode
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE)
    finally:
        os.close(fd)
    return False


# -- small things ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make renames in `folder` durable (a rename is in the directory, not in the file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
