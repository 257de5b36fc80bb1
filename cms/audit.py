"""The audit log: one JSON line per write attempt in `.cms/audit.jsonl` (who, from where, what, result).

Appends are single `write` calls of whole lines on a file opened with O_APPEND, so lines from
several workers never interleave. Reading pages through it newest first.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_READ_BYTES = 64 * 1024 * 1024  # the API pages through at most the newest 64 MiB


@dataclass(frozen=True)
class AuditEntry:
    time: str
    action: str  # e.g. "posts.create", "api-keys.rotate", "categories.delete"
    target: str  # the request path (ids and slugs, never secrets)
    result: int  # HTTP status of the answer
    key_id: str | None
    key_name: str | None
    client: str | None
    method: str


class AuditLog:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / "audit.jsonl"
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> None:
        line = (json.dumps(asdict(entry), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def read(
        self, *, page: int = 1, per_page: int = 50, action: str | None = None, key_id: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Entries newest first, filtered; (page of entries, total matching)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - MAX_READ_BYTES))
                raw = fh.read()
        except FileNotFoundError:
            return [], 0
        entries = []
        for line in reversed(raw.splitlines()):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn first line after the seek, or a hand-edited one
            if action and not str(entry.get("action", "")).startswith(action):
                continue
            if key_id and entry.get("key_id") != key_id:
                continue
            entries.append(entry)
        start = (page - 1) * per_page
        return entries[start : start + per_page], len(entries)


def action_of(method: str, path: str) -> str:
    """A readable action name from a write request: POST /api/v1/posts/x/publish -> posts.publish."""
    parts = [p for p in path.split("/") if p][2:]  # drop "api", "v1"
    if parts[:1] == ["content"] and len(parts) > 1:
        parts = parts[1:]
    resource = parts[0] if parts else "api"
    verbs = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}
    if len(parts) >= 3 and method == "POST":
        return f"{resource}.{parts[-1]}"
    if method == "POST" and len(parts) == 2 and resource in ("webhook",):
        return f"{resource}.{parts[1]}"
    return f"{resource}.{verbs.get(method, method.lower())}"
