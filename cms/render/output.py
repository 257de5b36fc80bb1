"""Writing the built site: atomic files inside the output folder, each path written once per build.

Unchanged bytes are not rewritten (mtimes stay, so rsync and CDNs see only real changes); a path
that would leave the output folder, or pass through a symlink, is refused; writing one path twice
in a build is a bug in the plan and raises (pelican's FileOverwriteFailedError).

Files are replaced atomically (temp file + rename) but not fsync'd one by one: two fsyncs per file
were most of the time of writing a build, and the output can always be rendered again. The build
forgets the signatures of what it is about to write before it starts, and syncs once before it
records the new ones, so an interrupted build is redone, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cms.content.write import TEMP_PREFIX
from cms.errors import BadRequest, CMSError


class OutputError(CMSError):
    code = "OUTPUT_ERROR"


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
    _made: set[Path] = field(default_factory=set)  # folders this build made sure exist

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def path_for(self, rel: str) -> Path:
        """The file for a site path (`/posts/x/` -> posts/x/index.html), refused if it leaves the root."""
        return self.root / self.key(rel)

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
        path = self.root / key
        if key in self._seen:
            raise OutputError(f"two outputs of this build want the same path: {key}")
        self._seen.add(key)
        self._check_folders(rel, key)
        try:
            if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
                self.unchanged.append(key)
                return key
        except OSError:
            pass
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        replace_file(path, data)
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


def _clean_key(rel: str) -> str:
    clean = rel.lstrip("/")
    if not clean or clean.endswith("/"):
        clean += "index.html"
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or "\x00" in p or "\\" in p for p in parts):
        raise BadRequest(f"output path {rel!r} is not allowed")
    return "/".join(parts)


def replace_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (readers see the old or the new file), without fsync.

    The folder must exist."""
    folder = path.parent
    mode = None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode):
            raise BadRequest(f"refusing to write through a symbolic link: {path.name}")
        mode = stat.S_IMODE(st.st_mode)
    tmp = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{path.suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
