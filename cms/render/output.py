"""Writing the built site: atomic files inside the output folder, each path written once per build.

Unchanged bytes are not rewritten (mtimes stay, so rsync and CDNs see only real changes); a path
that would leave the output folder, or pass through a symlink, is refused; writing one path twice
in a build is a bug in the plan and raises (pelican's FileOverwriteFailedError).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cms.content.write import atomic_write
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

    def path_for(self, rel: str) -> Path:
        """The file for a site path (`/posts/x/` -> posts/x/index.html), refused if it leaves the root."""
        clean = rel.lstrip("/")
        if not clean or clean.endswith("/"):
            clean += "index.html"
        parts = PurePosixPath(clean).parts
        if any(p in ("..", ".") or "\x00" in p or "\\" in p for p in parts):
            raise BadRequest(f"output path {rel!r} is not allowed")
        target = self.root.joinpath(*parts)
        root = self.root.resolve()
        parent = target.parent
        # Every existing folder on the way must be a real folder inside the root (no symlink escapes).
        probe = parent
        while probe != self.root and probe != probe.parent:
            if probe.is_symlink():
                raise BadRequest(f"output path {rel!r} passes through a symbolic link")
            probe = probe.parent
        if not (parent.resolve() if parent.exists() else root.joinpath(*parts[:-1])).is_relative_to(root):
            raise BadRequest(f"output path {rel!r} escapes the output folder")
        return target

    def key(self, rel: str) -> str:
        return str(self.path_for(rel).relative_to(self.root).as_posix())

    def write(self, rel: str, data: bytes) -> str:
        """Write one output file; returns its key (path relative to the root)."""
        path = self.path_for(rel)
        key = path.relative_to(self.root).as_posix()
        if key in self._seen:
            raise OutputError(f"two outputs of this build want the same path: {key}")
        self._seen.add(key)
        try:
            if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
                self.unchanged.append(key)
                return key
        except OSError:
            pass
        atomic_write(path, data)
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
