"""The event bus: one `Event` record for every change, whatever caused it, and its subscribers.

Three sources publish here: the store (API and CLI writes), the watcher (hand edits) and the
build (its change set). Subscribers (the webhook outbox, live reload, logs) are called in order;
one that raises is logged and does not stop the others or the write that caused the event.

Event names are declared once, in `EVENTS` (name -> when it happens): document events are
`<kind>.<action>` for each of `DOCUMENT_KINDS` and `DOCUMENT_ACTIONS`; the others are listed after
them. Subscription checks, the published schemas and the test of `docs/webhooks.md` read it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cms.clock import iso_z, utc_now
from cms.content.model import Document, Status
from cms.content.names import new_id

log = logging.getLogger("cms.events")

# The event prefix of a document: its content type's, `entry` for every custom type.
DOCUMENT_KINDS = {"posts": "post", "pages": "page"}
OTHER_KIND = "entry"
# What happens to a document -> when (the events of a change are chosen by `document_events`).
DOCUMENT_ACTIONS = {
    "created": "a document file appears",
    "updated": "a document changes; the payload lists the changed fields in `changes`",
    "published": "a document becomes visible (published, a draft flag removed, its scheduled date passes)",
    "unpublished": "a visible document becomes a draft, or its `expires` date passes",
    "deleted": "a document is moved to the trash, deleted for good, or its file removed",
    "restored": "a document is taken out of the trash",
}
# Every event name -> when it happens: the one list of events, in the order schemas publish them.
EVENTS: dict[str, str] = {
    **{
        f"{kind}.{action}": when
        for kind in (*DOCUMENT_KINDS.values(), OTHER_KIND)
        for action, when in DOCUMENT_ACTIONS.items()
    },
    "media.uploaded": "an upload is stored",
    "media.deleted": "an upload is removed",
    "category.created": "a category term file is written through the API",
    "category.updated": "a category term file is changed through the API",
    "category.deleted": "a category term file is removed through the API",
    "build.completed": "`cms build` finished: counts, duration and `changed_urls`",
    "webhook.test": "`POST /api/v1/webhooks/{id}/test` or `cms webhooks test`",
}


def kind_of(type_name: str) -> str:
    """`post`, `page` or `entry`: the event prefix of a content type."""
    return DOCUMENT_KINDS.get(type_name, OTHER_KIND)


@dataclass(frozen=True)
class Event:
    """Something that happened to the site, as subscribers and webhook receivers see it."""

    name: str  # e.g. "post.published"
    data: dict[str, Any]  # a thin summary: what a receiver needs to act, not the whole document
    id: str = field(default_factory=lambda: "evt_" + new_id())
    timestamp: datetime = field(default_factory=utc_now)
    source: str = "api"  # "api", "cli", "watch", "build", "scheduler"
    key: str | None = None  # ordering key: events of one document are delivered in order

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.name,
            "id": self.id,
            "timestamp": iso_z(self.timestamp),
            "source": self.source,
            **self.data,
        }


def summary(doc: Document, now: datetime, url: str | None = None) -> dict[str, Any]:
    """The document summary carried by document events."""
    return {
        "id": doc.id,
        "hash": doc.hash,
        "type": doc.type,
        "title": doc.title,
        "slug": doc.slug,
        "url": url,
        "status": doc.status_at(now).value,
        "category": doc.categories[0] if doc.categories else None,
        "tags": list(doc.tags),
        "image": doc.featured_image,
    }


def document_events(
    old: Document | None,
    new: Document | None,
    now: datetime,
    *,
    source: str,
    fields: Iterable[str] = (),
    url: Callable[[Document], str] | None = None,
) -> list[Event]:
    """The events a change from `old` to `new` (either may be None) amounts to."""
    doc = new or old
    if doc is None:
        return []
    kind = kind_of(doc.type)
    was = old.status_at(now) if old else None
    now_status = new.status_at(now) if new else None
    names: list[str] = []
    if old is None:
        names.append("created")
        if now_status is Status.PUBLISHED:
            names.append("published")
    elif new is None:
        names.append("deleted")
    else:
        if was is Status.TRASH and now_status is not Status.TRASH:
            names.append("restored")
        elif now_status is Status.TRASH and was is not Status.TRASH:  # an edit in the trash is no new deletion
            names.append("deleted")
        else:
            names.append("updated")
        if was is not Status.PUBLISHED and now_status is Status.PUBLISHED:
            names.append("published")
        elif was is Status.PUBLISHED and now_status in (Status.DRAFT, Status.SCHEDULED, Status.EXPIRED):
            names.append("unpublished")
    data = {kind: summary(doc, now, url(doc) if url else None)}
    changed = list(fields)
    events = []
    for action in names:
        payload: dict[str, Any] = dict(data)
        if action == "updated" and changed:
            payload["changes"] = changed
        name = f"{kind}.{action}"
        event_id = event_id_for(doc.id, new.etag if new else None, old.etag if old else None, name)
        events.append(Event(name, payload, id=event_id, source=source, key=doc.id))
    return events


def event_id_for(doc_id: str, new_etag: str | None, old_etag: str | None, name: str) -> str:
    """A deterministic event id: the same change seen by two sources (the scheduler and a cron build,
    or a re-emit after a crash) gets the same id, so the outbox and receivers deduplicate it.
    Going live or offline depends only on the version that went live; other events on both versions."""
    parts = [doc_id, new_etag or "-", name]
    if not name.endswith((".published", ".unpublished")):
        parts.append(old_etag or "-")
    return "evt_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:26]


Subscriber = Callable[[Event], None]


class Bus:
    """Publish events to subscribers, in order, in the publisher's thread."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, events: Iterable[Event]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for event in events:
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:  # noqa: BLE001 - a broken subscriber must not undo a saved write
                    log.exception("event subscriber failed on %s", event.name)


class Coalescer:
    """Holds events of each document until it has been quiet for `window` seconds, then publishes
    one event per name (editors save a file several times in a row; receivers want one event).

    Used for the watcher's events only: API writes are explicit and published at once.
    """

    def __init__(self, bus: Bus, window: float = 2.0) -> None:
        self.bus = bus
        self.window = window
        self._pending: dict[str, tuple[float, dict[str, Event]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cms-coalescer", daemon=True)
        self._thread.start()

    def publish(self, events: Iterable[Event]) -> None:
        now = time.monotonic()
        with self._lock:
            for event in events:
                key = event.key or event.id
                _, held = self._pending.get(key, (now, {}))
                previous = held.get(event.name)
                if previous is not None and ("changes" in event.data or "changes" in previous.data):
                    # a later save that changed no field (a comment, whitespace) keeps the earlier changes
                    merged = sorted(set(previous.data.get("changes", [])) | set(event.data.get("changes", [])))
                    event = Event(
                        event.name,
                        {**event.data, "changes": merged},
                        id=event.id,
                        timestamp=event.timestamp,
                        source=event.source,
                        key=event.key,
                    )
                held.pop(event.name, None)
                held[event.name] = event  # the latest version of each event name, in order of arrival
                self._pending[key] = (now, held)

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = [k for k, (t, _) in self._pending.items() if force or now - t >= self.window]
            batches = [list(self._pending.pop(k)[1].values()) for k in due]
        for batch in batches:
            self.bus.publish(batch)

    def _run(self) -> None:
        while not self._stop.wait(min(0.1, self.window / 4)):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.flush(force=True)
