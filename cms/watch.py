"""The watcher: keeps the live index in step with edits made by hand, in an editor or by git.

The files are the truth, so a saved file must reach the index in milliseconds (watchfiles' default
debounce alone is 1.6 s). A daemon thread hands each batch of paths to `apply`, the pure step:
paths -> `Index.refresh` -> document events. Re-reading a path is always safe, which keeps the rest
simple: a rename is a delete and an add refreshed together, a `git checkout` converges because each
later write brings a later batch, and the store's own writes come back with an unchanged etag.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from watchfiles import Change as FileChange
from watchfiles import DefaultFilter

from cms.config import Site
from cms.content.index import Change, Index
from cms.content.model import Document
from cms.content.parse import locate
from cms.content.write import TEMP_PREFIX, document_lock
from cms.events.bus import Bus, document_events
from cms.folderwatch import FolderWatch

log = logging.getLogger("cms.watch")

IGNORED_NAMES = (  # locate() refuses most of these too; naming them here keeps them out of every batch
    f"^{re.escape(TEMP_PREFIX)}",  # the store's own atomic-write temp files
    r"\.sw.$|^4913$|~$",  # vim: swap files (.swp, .swx), its writability probe, backups
    r"^\.#|^#.*#$",  # emacs: lock and auto-save files
    r"^\.DS_Store$|___jb_(tmp|old)___$|^\.",  # macOS Finder, JetBrains safe write, anything else hidden
)


class ContentFilter(DefaultFilter):
    """watchfiles filter: only paths under content/ that the index reads, and folders holding them."""

    def __init__(self, site: Site, index: Index) -> None:
        # ignore_dirs=(): DefaultFilter tests every part of the absolute path (a site under ~/.venv/ would go blind)
        super().__init__(ignore_dirs=(), ignore_entity_patterns=IGNORED_NAMES)
        self.root = Path(os.path.abspath(site.content_dir))
        self.reserved = site.reserved_folders
        self.index = index

    def __call__(self, change: FileChange, path: str) -> bool:
        if change is FileChange.modified and os.path.isdir(path):
            return False  # a folder's own mtime or mode: nothing the index reads changed
        return self.relevant(path) is not None

    def relevant(self, path: str | Path) -> str | None:
        """The path relative to content/ if the index cares about it (`""` for content/ itself)."""
        rel = self.candidate(path)
        if not rel or locate(rel, self.reserved) is not None:
            return rel
        private = rel.rpartition("/")[2].startswith("_")  # `_drafts/` and the like, as Index.load
        return rel if not private and ((self.root / rel).is_dir() or self.known_under(rel)) else None

    def candidate(self, path: str | Path) -> str | None:
        """The path relative to content/, or None: outside it, an ignored name, in a hidden or `_` folder."""
        full = Path(os.path.abspath(path))
        if full == self.root:
            return ""
        if not full.is_relative_to(self.root) or not super().__call__(FileChange.modified, str(full)):
            return None
        rel = full.relative_to(self.root).as_posix()
        if any(p.startswith((".", "_")) for p in rel.split("/")[:-1]):
            return None  # Index.load skips these folders too
        return rel

    def known_under(self, rel: str) -> list[str]:
        """Paths the index holds (documents, terms, schemas, problems) inside the folder `rel`."""
        prefix, ix = (rel + "/" if rel else ""), self.index
        return [k for k in (*ix.by_path, *ix.term_files, *ix.type_paths.values(), *ix.problems) if k.startswith(prefix)]

    def inside(self, rel: str) -> set[str]:
        """What the index holds under a folder plus the files now in it (a new folder's files had no events)."""
        found = set(self.known_under(rel))
        for base, dirs, names in os.walk(self.root / rel):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            rels = (self.candidate(os.path.join(base, name)) for name in names)
            found.update(r for r in rels if r and locate(r, self.reserved) is not None)
        return found


class Watcher(FolderWatch):
    """Watches content/ in a daemon thread and applies each batch of changed paths to the index."""

    def __init__(
        self,
        site: Site,
        index: Index,
        bus: Bus | None = None,
        *,
        url: Callable[[Document], str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        debounce_ms: int = 50,
    ) -> None:
        self.site = site
        self.index = index
        self.bus = bus or Bus()
        self.url = url
        self.clock = clock
        self.filter = ContentFilter(site, index)
        super().__init__(debounce_ms)

    def root(self) -> Path:
        return Path(self.filter.root)

    def watch_filter(self) -> DefaultFilter:
        return self.filter

    def prepare(self) -> None:
        if not self.site.content_dir.is_dir():
            raise FileNotFoundError(f"cannot watch {self.site.content_dir}: no such folder")

    def handle(self, paths: list[Path]) -> None:
        self.apply(paths)

    def resync(self) -> None:
        self.apply([self.filter.root])  # events were lost while the watch was down: re-read everything

    def apply(self, paths: Iterable[str | Path]) -> list[Change]:
        """Refresh the index for these paths (folders: everything in them) and publish the changes."""
        rels: set[str] = set()
        for path in paths:
            rel = self.filter.relevant(path)
            if rel and locate(rel, self.filter.reserved) is not None:
                rels.add(rel)
            elif rel is not None:  # a folder (or content/ itself): new, moved in or out, deleted or replaced
                rels.update(self.filter.inside(rel))
        if not rels:
            return []  # the empty batch watchfiles yields on every timeout, or only ignored paths
        self._settle(rels)
        changes = self.index.refresh(rels)  # one call: a move (delete + add) is one "updated"
        now = self.clock()
        events = []
        for c in changes:
            events += document_events(c.old, c.new, now, source="watch", fields=c.fields, url=self.url)
        self.bus.publish(events)
        return changes

    def _settle(self, rels: Iterable[str]) -> None:
        """Wait out store writes in progress: the store writes and refreshes the index under these locks."""
        try:
            for rel in sorted(rels):
                with document_lock(self.site.state_dir / "locks", rel):
                    pass  # one lock at a time, never two: no lock-order deadlock with Store.rename
        except OSError as exc:  # a read-only state folder: no store writes to wait for
            log.debug("cannot take document locks: %s", exc)
