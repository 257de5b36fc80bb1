"""A snapshot of the loaded index in `.cms/`, so a restart re-reads only the files that changed.

Each entry is keyed by the file's path and its stat signature (size, mtime, inode, ctime): a file
whose signature is unchanged is taken from the snapshot instead of being read and parsed again.
The snapshot as a whole is keyed by everything else a document's meaning depends on (the CMS
version, the site's timezone and taxonomies, the content type schemas); any change there and it
is ignored. It is a cache: deleting it only makes the next start slower. It lives in `.cms/`
(owner-only, never in git), and is read only from there.

The entries are plain tuples (the index packs a document as the tuple of its field values, and a
problem as path, line and message): they unpickle faster than dataclasses, and a ParseError, whose
__init__ takes more than its message, would not unpickle at all and so made the whole file unreadable.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

FORMAT = 2  # 2: entries are (signature, (document values | None, (path, line, message) | None))
Signature = tuple[int, int, int, int]


def signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def key_of(*parts: Any) -> str:
    return hashlib.sha256(repr((FORMAT, *parts)).encode()).hexdigest()


def read(path: Path, key: str) -> dict[str, Any]:
    """The entries of a snapshot written with the same key; empty when missing, stale or unreadable."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - our own file in the owner-only state folder
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError):
        return {}
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]  # type: ignore[no-any-return]


def write(path: Path, key: str, entries: dict[str, Any]) -> None:
    """Replace the snapshot atomically, streaming the pickle to a temp file (no second copy in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump({"key": key, "entries": entries}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # a cache: atomic is enough, no fsync
    finally:
        tmp.unlink(missing_ok=True)
