"""The build manifest: per output folder, the signature of every output and the version of every
document of the last build, in `.cms/build/`, and the rules that make trusting it safe.

Outputs a build is about to rewrite are recorded first (`.pending`), so an interrupted build is
redone rather than trusted; writes are made durable, or recorded as not yet synced in this boot
(see `_sync`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cms.config import Site
from cms.content.write import atomic_write

MANIFEST_VERSION = 1


def manifest_path(site: Site, out: Path) -> Path:
    """Where the manifest of the output folder `out` is kept."""
    return site.state_dir / "build" / (hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16] + ".json")


@dataclass
class Manifest:
    """The last build's manifest of one output folder, as this build found it."""

    path: Path
    stored: dict[str, Any]  # without the outputs an interrupted build was rewriting
    pending: set[str]  # those outputs, and the ones this build is rewriting

    @classmethod
    def load(cls, site: Site, out: Path) -> Manifest:
        path = manifest_path(site, out)
        return cls(path, *_load(path))

    @property
    def docs(self) -> dict[str, Any] | None:
        """The documents of the last build: id -> etag, type, status (None before a first build)."""
        return self.stored.get("docs")

    def trusted_outputs(self) -> dict[str, Any]:
        """The output signatures, unless they were not synced and the machine restarted since."""
        unsynced = self.stored.get("unsynced")
        if unsynced is not None and (unsynced["boot"] is None or unsynced["boot"] != _boot_id()):
            return {}
        outputs = self.stored.get("outputs")
        return outputs if isinstance(outputs, dict) else {}

    def mark_pending(self, keys: set[str]) -> None:
        """Record the outputs about to be rewritten before touching them (a small file, not the whole
        manifest): if this build is interrupted, the next one renders them again instead of trusting
        a folder whose files no longer match the manifest's signatures."""
        if keys and self.stored.get("outputs"):
            self.pending |= keys
            atomic_write(_pending_path(self.path), json.dumps(sorted(self.pending)).encode())

    def save(
        self, out: Path, written: list[str], removed: list[str], outputs: dict[str, str], docs: dict[str, Any]
    ) -> None:
        """Make this build's writes durable (or record that they are not yet), then record the build."""
        recorded = self.stored.get("unsynced")
        # (Outputs not synced in another boot were all checked again by this build: nothing left pending.)
        before = recorded if recorded is not None and recorded.get("boot") == _boot_id() else None
        unsynced = _sync(out, written, removed, before) if written or removed else before
        if self.pending or outputs != self.stored.get("outputs") or docs != self.docs or unsynced != recorded:
            _write(self.path, outputs, docs, unsynced)
        if self.pending:
            _pending_path(self.path).unlink(missing_ok=True)


def _load(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The last build's manifest, without the outputs an interrupted build was rewriting; and those."""
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        data = {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        data = {}
    try:
        pending = set(json.loads(_pending_path(path).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError, TypeError):
        pending = set()
    unsynced = data.get("unsynced")
    if unsynced is not None and not (
        isinstance(unsynced, dict)
        and isinstance(unsynced.get("boot"), str)
        and isinstance(unsynced.get("at"), int | float)
    ):
        data["unsynced"] = {"boot": None, "at": 0.0}  # unreadable: as if from another boot (all checked again)
    if pending and isinstance(data.get("outputs"), dict):
        data["outputs"] = {k: v for k, v in data["outputs"].items() if k not in pending}
    return data, pending


def _pending_path(manifest: Path) -> Path:
    """Outputs a build is rewriting, recorded before it touches them and removed once it is done."""
    return manifest.with_suffix(".pending")


# Outputs renamed into place are in the page cache, not yet on disk. Many of them are not synced at
# the end of the build (at 10,000 posts a system-wide sync took most of a second, more on a busy
# disk): the manifest says under which boot they were written instead, and is trusted only in that
# boot. Only a crash of the machine loses page-cache data, and it changes the boot id, so the next
# build then checks every output again (files whose bytes are right are left alone).
_WRITEBACK_S = 60.0  # the kernel writes dirty pages back within 30 s: a sync after this is cheap


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None  # (not Linux: every build syncs)


def _sync(out: Path, written: list[str], removed: list[str], unsynced: dict[str, Any] | None) -> dict[str, Any] | None:
    """Make this build's writes durable, or record that they are not yet; returns what the manifest
    records (None: everything is on disk). `unsynced` is the record of an earlier build."""
    boot = _boot_id()
    if len(written) + len(removed) > 64:
        if boot is not None:
            return {"boot": boot, "at": time.time()}
        os.sync()
        return None
    folders = {(out / key).parent for key in written + removed}
    for path in [*(out / key for key in written), *folders]:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if path in folders else 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    if unsynced is not None and time.time() - unsynced["at"] >= _WRITEBACK_S:
        os.sync()  # an earlier large build's files: long written back by now, so this costs little
        return None
    return unsynced


def _write(path: Path, outputs: dict[str, str], docs: dict[str, Any] | None, unsynced: dict[str, Any] | None) -> None:
    data = {"version": MANIFEST_VERSION, "outputs": outputs, "docs": docs, "unsynced": unsynced}
    atomic_write(path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))  # (at 10,000 posts, 10x json's speed)
