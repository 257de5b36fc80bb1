"""What every write of one site shares: the site, index, bus, clock and locks; events; recovery.

Each write (documents, content types, taxonomy terms) runs under a cross-process lock in
`lock_dir` and ends with `emit`, so the events of one document reach the outbox in write order. A
rename is two directory entries, so it leaves a journal entry that `recover` finishes or forgets
after a kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cms.config import Site
from cms.content.index import Change, Index
from cms.content.model import ContentType, Document, etag_of, url_path
from cms.content.names import check_type_name
from cms.content.parse import MAX_DOCUMENT_BYTES
from cms.content.write import document_lock, ensure_inside, read_bytes, remove_temp_files
from cms.errors import Invalid, NotFound, PreconditionFailed
from cms.events.bus import Bus, Event, document_events
from cms.history.actor import current_actor
from cms.history.git import FileChange, GitHistory

log = logging.getLogger("cms.history")
HISTORY_LOCK = "\x00history"  # the lock every writing process takes around a commit (never a file path)
# The most telling action of a write, for its commit message (a publish is also an update).
_ACTIONS = ("deleted", "restored", "trashed", "published", "unpublished", "created", "updated")


class WriteSession:
    """The state and steps the document, type and term writes of one site have in common."""

    def __init__(
        self,
        site: Site,
        index: Index,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.site = site
        self.index = index
        self.bus = bus or Bus()
        self.clock = clock
        self.lock_dir = site.state_dir / "locks"
        self.history = GitHistory.open(site.content_dir) if site.history.commit and site.content_dir.is_dir() else None

    def url(self, doc: Document) -> str:
        """The public URL of a document."""
        return self.site.site.base_url.rstrip("/") + url_path(doc.type, doc.slug, doc.lang, self.site.site.language)

    def content_type(self, name: str) -> ContentType:
        """A content type by name; a folder of Markdown without a schema is a free-form type."""
        check_type_name(name)
        ctype = self.index.types.get(name)
        if ctype is None:
            if (self.site.content_dir / name).is_dir() and name not in self.site.reserved_folders:
                return ContentType(name)  # a folder of Markdown without a schema: free-form
            raise NotFound(f"no content type {name!r}")
        return ctype

    def path_of(self, type_name: str, slug: str, lang: str | None = None) -> tuple[str, Path]:
        """The path of a document file, relative to content/ and in full (refused outside content/)."""
        rel = f"{type_name}/{slug}{'.' + lang if lang else ''}.md"
        full = self.site.content_dir / rel
        ensure_inside(full.parent if full.parent.exists() else self.site.content_dir, self.site.content_dir)
        return rel, full

    def now_text(self) -> datetime:
        """Now, as a date-time written into frontmatter: the site's timezone, whole seconds."""
        return self.clock().astimezone(self.site.tz).replace(microsecond=0)

    def emit(
        self,
        changes: list[Change],
        source: str,
        extra: list[Event] | None = None,
        files: list[FileChange] | None = None,
        subject: str = "",
        action: str | None = None,
    ) -> list[Event]:
        """Commit the written `files` and publish the events of these index changes (call it under
        the document's lock, after the write): the commit comes first, so an event's write is in git."""
        now = self.clock()
        events: list[Event] = []
        for change in changes:
            events += document_events(change.old, change.new, now, source=source, fields=change.fields, url=self.url)
        events += extra or []
        if files:
            self.commit(files, action or _action(events), subject or files[0].rel)
        if events:
            self.bus.publish(events)
        return events

    def commit(self, files: list[FileChange], action: str, subject: str) -> None:
        """One commit of the files a write changed, when content/ is in a git work tree.

        A failed commit never undoes the write: it is logged, and the file shows as a hand edit
        to the next write of it (committed then as an `external edit`)."""
        if self.history is None:
            return
        actor = current_actor()
        message = f"{action} {subject}" + (f"\n\nKey: {actor.key_id}" if actor and actor.key_id else "")
        try:
            with document_lock(self.lock_dir, HISTORY_LOCK):
                self.history.commit(files, message, actor)
        except Exception:  # a broken repository must not turn a saved write into an error
            log.exception("could not commit %s", ", ".join(f.rel for f in files))

    def read_current(self, doc: Document, full: Path, if_match: str | None = None) -> bytes:
        """The document's file as it is on disk, checked against If-Match; call it under the file's lock.

        NotFound when the file went away since the index last saw it (a hand delete, another writer)."""
        current = read_bytes(full)
        if current is None:
            raise NotFound(f"{doc.type} {doc.slug!r} no longer exists on disk")
        self.check_match(current, if_match)
        return current

    @staticmethod
    def check_match(current: bytes, if_match: str | None) -> None:
        """PreconditionFailed unless `if_match` (an If-Match header) names the file as it is."""
        if if_match is not None:
            etag = etag_of(current)
            wanted = {t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")}
            if "*" not in wanted and etag not in wanted:
                raise PreconditionFailed("the document changed since you read it", current_etag=etag)

    @staticmethod
    def check_size(data: bytes) -> None:
        """Invalid when a file would be larger than the parser reads."""
        if len(data) > MAX_DOCUMENT_BYTES:
            raise Invalid({"content": [f"the document would be {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}"]})

    # -- the rename journal ------------------------------------------------------------------
    def journal_path(self, old_rel: str) -> Path:
        """The journal entry of a rename away from `old_rel`."""
        return self.site.state_dir / "journal" / (hashlib.sha256(old_rel.encode()).hexdigest()[:24] + ".json")

    def recover(self) -> int:
        """Startup recovery: finish renames a kill interrupted, remove temp files dead writers left.

        Returns how many leftovers were cleaned up."""
        cleaned = 0
        folder = self.site.state_dir / "journal"
        for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                plan = json.loads(entry.read_text())
                old, new = self.site.content_dir / plan["old"], self.site.content_dir / plan["new"]
                written = read_bytes(new)
                if written is not None and etag_of(written) == plan["etag"] and old.exists():
                    os.unlink(old)  # the new file holds everything, the old URL in its aliases
                    cleaned += 1
            except (ValueError, KeyError, OSError):
                pass  # an unreadable journal entry: the files are left as they are
            entry.unlink(missing_ok=True)
        return cleaned + remove_temp_files(self.site.content_dir) + remove_temp_files(self.site.uploads_dir)


def _action(events: list[Event]) -> str:
    """The most telling action among a write's events (a publish is also an update)."""
    done = {e.name.rsplit(".", 1)[-1] for e in events}
    return next((a for a in _ACTIONS if a in done), "updated")
