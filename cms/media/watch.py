"""Watch uploads/: sidecars edited or removed by hand (or written by another worker) reach the
library, and images dropped there get their derivatives and a sidecar.

The same daemon-thread shape as `cms.watch.Watcher`, kept small: each batch of paths goes to
`MediaLibrary.sync`, which re-reads the folders involved. Re-reading is idempotent, so the
library's own writes coming back as events cost a directory listing and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from watchfiles import DefaultFilter, watch

from cms.content.write import TEMP_PREFIX
from cms.events.bus import Bus, Event

from .library import MediaLibrary

log = logging.getLogger("cms.media")


class _UploadsFilter(DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=(), ignore_entity_patterns=(rf"^{TEMP_PREFIX}", r"^\.", r"~$", r"\.sw.$"))


class UploadsWatcher:
    """A daemon thread that keeps a MediaLibrary in step with uploads/ and publishes media.uploaded."""

    def __init__(
        self,
        library: MediaLibrary,
        bus: Bus | None = None,
        *,
        debounce_ms: int = 400,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.library = library
        self.bus = bus or Bus()
        self.debounce_ms = debounce_ms  # a copy in progress settles before its batch is handled
        self.clock = clock
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start watching (creating uploads/ if needed); returns once the watch is live."""
        if self.running:
            return
        self.library.root.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="cms-media-watch", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5.0)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def apply(self, paths: list[Path]) -> list[Event]:
        """Sync the library with these paths; publish one media.uploaded per image taken in."""
        if not paths:
            return []
        base = self.library.site.site.base_url
        events = [
            Event("media.uploaded", {"media": item.as_dict(base)}, source="watch", key=item.id)
            for item in self.library.sync(paths)
        ]
        if events:
            self.bus.publish(events)
        return events

    def _run(self) -> None:
        restarted = False
        root = self.library.root
        while not self._stop.is_set():
            try:
                if restarted:  # events may have been lost: re-read everything
                    self.library.scan()
                for batch in watch(
                    root,
                    watch_filter=_UploadsFilter(),
                    debounce=self.debounce_ms,
                    step=50,
                    stop_event=self._stop,
                    rust_timeout=200,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                ):
                    self._ready.set()
                    try:
                        self.apply([Path(p) for _, p in batch])
                    except Exception:  # noqa: BLE001 - one bad batch must not end the watch
                        log.exception("syncing uploads failed; watching on")
            except Exception:  # noqa: BLE001 - outlive a vanished folder or a notify error
                log.exception("watching %s failed; restarting in 1 s", root)
                self._ready.set()
                restarted = True
                self._stop.wait(1.0)
