"""Writing the built site: atomic files inside the output folder, each path written once per build.

Unchanged bytes are not rewritten (mtimes stay, so rsync and CDNs see only real changes); a path
that would leave the output folder, or pass through a symlink, is refused; writing one path twice
in a build is a bug in the plan and raises (pelican's FileOverwriteFailedError).

Files are replaced atomically (temp file + rename) but not fsync'd one by one: two fsyncs per file
were most of the time of writing a build, and the output can always be rendered again. The build
forgets the signatures of what it is about to write before it starts, so an interrupted build is
redone, never trusted; a few files are synced before the new signatures are recorded, many are
trusted only in the boot they were written in (see `build._sync`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cms.content.write import TEMP_PREFIX
from cms.errors import BadRequest
from cms.errors import OutputError as OutputError  # (re-exported: its old home)


@dataclass
class Output:
    """The output folder of one build and what happened to it."""

    root: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _checked: set[str] = field(default_factory=set)  # folders (keys) known to be real folders inside the root
    _keys: dict[str, str] = field(default_factory=dict)  # site path -> checked key
    _made: set[str] = field(default_factory=set)  # folders this build made sure exist

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def key(self, rel: str) -> str:
        """The output file of a site path relative to the root; BadRequest for a path that could
        leave it (`..`, NUL, backslashes). The folders on the way are checked when writing."""
        key = self._keys.get(rel)
        if key is None:
            key = self._keys[rel] = _clean_key(rel)
        return key

    def _check_folders(self, rel: str, key: str) -> None:
        """Every existing folder on the way must be a real folder (no symlink escapes). With no `..`
        in the key and no link on the way, the file cannot be outside the (resolved) root. Only
        written files need this (a kept file is not touched); folders checked once per build."""
        parts = key.split("/")
        root = str(self.root)
        visited = []
        for depth in range(len(parts) - 1, 0, -1):
            folder = "/".join(parts[:depth])
            if folder in self._checked:
                break
            if os.path.islink(os.path.join(root, folder)):
                raise BadRequest(f"output path {rel!r} passes through a symbolic link")
            visited.append(folder)
        self._checked.update(visited)

    def exists(self, key: str) -> bool:
        return os.path.isfile(os.path.join(self.root, key))

    def write(self, rel: str, data: bytes) -> str:
        """Write one output file; returns its key (path relative to the root)."""
        key = self.key(rel)
        if key in self._seen:
            raise OutputError(f"two outputs of this build want the same path: {key}")
        self._seen.add(key)
        self._check_folders(rel, key)
        # Plain os calls on str paths, one lstat per file: a large build writes tens of thousands
        # of files, and pathlib plus repeated stats were two thirds of the time of writing each.
        path = os.path.join(self.root, key)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            folder = os.path.dirname(path)
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            replace_file(path, data, None)
        else:
            if stat.S_ISLNK(st.st_mode):
                raise BadRequest(f"refusing to write through a symbolic link: {os.path.basename(path)}")
            if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and _read(path) == data:
                self.unchanged.append(key)
                return key
            replace_file(path, data, stat.S_IMODE(st.st_mode))
        self.written.append(key)
        return key

    def keep(self, key: str) -> None:
        """Mark a file of the previous build as still wanted without rewriting it."""
        if key in self._seen:
            raise OutputError(f"two outputs of this build want the same path: {key}")
        self._seen.add(key)
        self.unchanged.append(key)

    def remove_stale(self, previous: set[str]) -> None:
        """Delete files of the previous build that this build did not produce (and empty folders)."""
        for key in sorted(previous - self._seen):
            path = self.root / key
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if path.is_symlink() or not path.resolve().is_relative_to(self.root.resolve()):
                    continue
                path.unlink()
                self.removed.append(key)
                folder = path.parent
                while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
                    folder = folder.parent

    @property
    def seen(self) -> set[str]:
        return set(self._seen)

    @property
    def seen_keys(self) -> set[str]:
        """The live set of keys this build produced (for writers in other processes to register theirs)."""
        return self._seen


@functools.lru_cache(maxsize=1 << 16)  # every build asks for every output's key
def _clean_key(rel: str) -> str:
    clean = rel.lstrip("/")
    if not clean or clean.endswith("/"):
        clean += "index.html"
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or "\x00" in p or "\\" in p for p in parts):
        raise BadRequest(f"output path {rel!r} is not allowed")
    return "/".join(parts)


def replace_file(path: str, data: bytes, mode: int | None) -> None:
    """Replace `path` with `data` atomically (readers see the old or the new file), without fsync;
    `mode` is the permissions of the file it replaces (None: a new file). The folder must exist."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{os.path.splitext(name)[1]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(root: Path) -> str:
    """One sha256 over a whole folder (paths and bytes), for determinism checks."""
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()
