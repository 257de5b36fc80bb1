"""Scheduled publishing that really happens: while the server runs, documents whose publish date
or `expires` date passes are announced (`post.published` / `post.unpublished`) within a second.

The last state announced for each document is kept in `.cms/state.db`, so after a restart the
scheduler catches up on every schedule that passed while it was down, exactly once: its event
ids are deterministic (see `event_id_for`), and the outbox ignores an id it already holds. At
start-up it also reconciles hand edits made while no server ran (the watcher could not see them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from cms.clock import Clock, utc_now
from cms.content.index import Index
from cms.content.model import Document
from cms.events.bus import Bus, Event, event_id_for, kind_of, summary
from cms.state import State

log = logging.getLogger("cms.scheduler")

_MAX_SLEEP_S = 1.0


class Scheduler:
    def __init__(
        self,
        index: Index,
        bus: Bus,
        state: State,
        *,
        url: Callable[[Document], str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.index = index
        self.bus = bus
        self.state = state
        self.url = url
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: datetime | None = None  # when check() last looked
        # What makes the next check() worth its pass over every document: the index moved on, or
        # the soonest publish/expiry moment seen in the last pass arrived. Between those, a tick
        # costs two comparisons instead of a scan of the index and the schedule table (at 10,000
        # documents that scan held the GIL for tens of milliseconds a second: API p99 spikes).
        self._generation = -1
        self._next: datetime | None = None  # its table, `schedule`, is declared in cms/schema.py

    def check(self, *, reconcile: bool = False) -> list[Event]:
        """Announce documents whose visibility changed with time (and, reconciling, by hand edits)."""
        now = self.clock()
        self._generation = self.index.generation  # read first: a change during the pass means another
        stored = self.state.query("SELECT * FROM schedule")
        known = {r["doc_id"]: (bool(r["live"]), r["etag"]) for r in stored}
        types = {r["doc_id"]: r["type"] for r in stored}
        first_run = not known
        events: list[Event] = []
        rows: list[tuple[str, int, str, str]] = []
        docs = list(self.index.docs.values())
        soonest: datetime | None = None
        for doc in docs:
            for moment in (doc.published_at, doc.expires_at):
                if moment is not None and moment > now and (soonest is None or moment < soonest):
                    soonest = moment
            live = doc.is_live(now)
            before = known.get(doc.id)
            if before == (live, doc.etag):
                continue
            rows.append((doc.id, int(live), doc.etag, doc.type))
            if first_run:
                continue
            if before is None:
                if reconcile:
                    events += self._events(doc, now, ["created"] + (["published"] if live else []), None)
                continue
            was_live, old_etag = before
            same_file = old_etag == doc.etag
            if not same_file and not reconcile:
                # The store or the watcher announced the write itself, with the status it had then. A
                # publish or expiry moment of the new version that passed since the last look is ours
                # to announce (the writer saw the post still scheduled); its event id depends only on
                # the version, so if the writer did announce it after all, the outbox keeps one.
                if self._last is not None and doc.is_live(self._last) != live:
                    events += self._events(doc, now, ["published" if live else "unpublished"], old_etag)
                continue
            actions = [] if same_file else ["updated"]
            if live != was_live:
                actions.append("published" if live else "unpublished")
            events += self._events(doc, now, actions, old_etag)
        current = {d.id for d in docs}
        gone = [doc_id for doc_id in known if doc_id not in current]
        if reconcile and not first_run:
            for doc_id in gone:  # deleted while no server ran
                kind = kind_of(types[doc_id])
                name = f"{kind}.deleted"
                event_id = event_id_for(doc_id, None, known[doc_id][1], name)
                events.append(
                    Event(
                        name, {kind: {"id": doc_id, "type": types[doc_id]}}, id=event_id, source="scheduler", key=doc_id
                    )
                )
        if events:
            self.bus.publish(events)  # durable in the outbox before the new state is recorded
        with self.state.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO schedule (doc_id, live, etag, type) VALUES (?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM schedule WHERE doc_id = ?", [(d,) for d in gone])
        self._last = now
        self._next = soonest
        return events

    def due(self) -> bool:
        """Whether a check() could find anything: the index changed or a known moment passed."""
        if self.index.generation != self._generation:
            return True
        return self._next is not None and self.clock() >= self._next

    def _events(self, doc: Document, now: datetime, actions: list[str], old_etag: str | None) -> list[Event]:
        kind = kind_of(doc.type)
        data = {kind: summary(doc, now, self.url(doc) if self.url else None)}
        return [
            Event(
                f"{kind}.{a}",
                data,
                id=event_id_for(doc.id, doc.etag, old_etag, f"{kind}.{a}"),
                source="scheduler",
                key=doc.id,
            )
            for a in actions
        ]

    def seconds_to_next(self) -> float:
        """Seconds until the next publish or expiry moment (at most one second: new schedules appear)."""
        if self._next is None:
            return _MAX_SLEEP_S
        return max(0.01, min(_MAX_SLEEP_S, (self._next - self.clock()).total_seconds()))

    def start(self) -> None:
        self.check(reconcile=True)
        self._thread = threading.Thread(target=self._run, name="cms-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds_to_next()):
            try:
                if self.due():
                    self.check()
            except Exception:  # noqa: BLE001 - the scheduler must keep running
                log.exception("scheduler check failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
