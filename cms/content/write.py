"""Writing content files: atomic and checked replacement, per-document locks, temp file recovery.

Replacement follows the durable recipe (reliability plan 3-B.1): temp file in the same folder,
the old file's mode, fsync, os.replace, fsync of the folder; a per-document `flock` shared by
processes makes "check the hash, then replace" one step for every writer on the machine.
The bytes written come from `cms.content.frontmatter` (new files and minimal-diff updates).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cms.content.model import etag_of
from cms.errors import BadRequest, Conflict

TEMP_PREFIX = ".cms-tmp-"


def ensure_inside(path: Path, root: Path) -> Path:
    """The path if it stays inside `root` after resolving links, else BadRequest."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise BadRequest("path escapes the site folder")
    return resolved


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a part."""
    _install(_write_temp(path, data), path)


def _write_temp(path: Path, data: bytes) -> str:
    """A durable temp file beside `path` holding `data`, with `path`'s mode (refuses a symlink)."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    mode = None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode):
            raise BadRequest(f"refusing to write through a symbolic link: {path.name}")
        mode = stat.S_IMODE(st.st_mode)
    fd, tmp = _create_temp(folder, path.suffix)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # keep the replaced file's own mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _install(tmp: str, path: Path) -> None:
    """Rename a temp file from `_write_temp` over `path`, then make the rename durable."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def stage(path: Path, data: bytes) -> Path:
    """A durable temp file holding `data` beside `path`, for the caller to link or rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _create_temp(folder: Path, suffix: str) -> tuple[int, str]:
    """A new temp file in `folder` with mode 0o666 minus the umask in force now.

    Not mkstemp: it makes 0600 files (every content file would turn private), and reading the
    umask to fix that up needs os.umask(), which sets it process-wide and races other threads.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        # The writer's pid in the name lets recovery in another process leave live writes alone.
        name = os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def fsync_folder(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, None if it does not exist; never follows a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # only ELOOP means a symlink; others (EACCES...) are what they say
            raise
        raise BadRequest(f"refusing to read through a symbolic link: {path.name}") from exc
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


@contextlib.contextmanager
def document_lock(lock_dir: Path, key: str) -> Iterator[None]:
    """An exclusive lock on one document, shared by every process that uses the same state folder."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock"
    fd = os.open(lock_dir / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def replace_checked(path: Path, data: bytes | None, expected_etag: str | None) -> str | None:
    """Write (or with data=None delete) `path` if it still has `expected_etag`; the new etag.

    `expected_etag=None` means the file must not exist yet. The caller holds `document_lock`.
    Raises Conflict(current_etag) when someone else (API client or person) changed the file.
    """
    # The new bytes are written and fsynced before the check (a hand edit landing during an fsync
    # used to be overwritten). The lock does not bind people: where the system allows, the file
    # goes in with link() (create: fails if a file appeared) or an atomic swap that is checked
    # afterwards (reliability plan 3-B.3), so no window is left between the check and the write.
    tmp = _write_temp(path, data) if data is not None else None
    try:
        current = read_bytes(path)
        current_etag = etag_of(current) if current is not None else None
        if current_etag != expected_etag:
            if expected_etag is None:
                raise Conflict(f"{path.name} already exists", current_etag=current_etag)
            if current is None:
                raise Conflict(f"{path.name} was deleted since it was read", current_etag=None)
            raise Conflict(f"{path.name} was changed since it was read", current_etag=current_etag)
        if tmp is None or data is None:
            os.unlink(path)
            fsync_folder(path.parent)
            return None
        new_etag = etag_of(data)
        if expected_etag is None:
            placed = _link_new(tmp, path)
        else:
            placed = _swap_checked(tmp, path, data, expected_etag)
        if not placed:  # no link()/RENAME_EXCHANGE here: the check above is the last word
            _install(tmp, path)
        tmp = None
        return new_etag
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _link_new(tmp: str, path: Path) -> bool:
    """Give the temp file its final name unless a file took that name meanwhile; False if unsupported."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        now = read_bytes(path)
        raise Conflict(f"{path.name} already exists", current_etag=etag_of(now) if now is not None else None) from None
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            return False
        raise
    os.unlink(tmp)
    fsync_folder(path.parent)
    return True


def _swap_checked(tmp: str, path: Path, data: bytes, expected_etag: str) -> bool:
    """Swap the temp file in, then check what came out; swap back on a mismatch. False if unsupported."""
    if not _exchange(tmp, path):
        return False
    swapped_out = read_bytes(Path(tmp))
    if swapped_out is not None and etag_of(swapped_out) == expected_etag:
        os.unlink(tmp)
        fsync_folder(path.parent)
        return True
    # A person saved between the check and the swap: their version goes back in place.
    _exchange(tmp, path)
    if read_bytes(Path(tmp)) != data:
        # Our file was itself replaced meanwhile (an editor renamed a newer file over it): that
        # newest file is now the temp one; swap once more so it stays and the older one goes.
        _exchange(tmp, path)
    now = read_bytes(path)
    raise Conflict(
        f"{path.name} was changed while it was being written", current_etag=etag_of(now) if now is not None else None
    )


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "renameat2", None)  # glibc >= 2.28


def _exchange(a: str, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _writer_alive(name: str) -> bool:
    """Whether the process that made this temp file still runs (then its write is in progress)."""
    pid_text = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return False  # not a name this version writes: a leftover
    if int(pid_text) == os.getpid():
        return True  # a write of this very process, in another thread
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_temp_files(root: Path) -> int:
    """Startup recovery: delete temp files a killed writer left behind; how many."""
    removed = 0
    if not root.is_dir():
        return 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(TEMP_PREFIX) and not _writer_alive(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed
