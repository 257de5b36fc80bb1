"""Watch uploads/: sidecars edited or removed by hand (or written by another worker) reach the
library, and images dropped there get their derivatives and a sidecar.

A `cms.folderwatch.FolderWatch`, like the content watcher: each batch of paths goes to
`MediaLibrary.sync`, which re-reads the folders involved. Re-reading is idempotent, so the
library's own writes coming back as events cost a directory listing and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from watchfiles import DefaultFilter

from cms.content.write import TEMP_PREFIX
from cms.events.bus import Bus, Event
from cms.folderwatch import FolderWatch

from .library import MediaLibrary

log = logging.getLogger("cms.media")


class _UploadsFilter(DefaultFilter):
    def __init__(self) -> None:
        super().__init__(ignore_dirs=(), ignore_entity_patterns=(rf"^{TEMP_PREFIX}", r"^\.", r"~$", r"\.sw.$"))


class UploadsWatcher(FolderWatch):
    """A daemon thread that keeps a MediaLibrary in step with uploads/ and publishes media.uploaded."""

    thread_name = "cms-media-watch"
    step_ms = 50
    rust_timeout_ms = 200

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
        self.clock = clock
        super().__init__(debounce_ms)  # a copy in progress settles before its batch is handled

    def root(self) -> Path:
        return self.library.root

    def watch_filter(self) -> DefaultFilter:
        return _UploadsFilter()

    def prepare(self) -> None:
        self.library.root.mkdir(parents=True, exist_ok=True)

    def handle(self, paths: list[Path]) -> None:
        self.apply(paths)

    def resync(self) -> None:
        self.library.scan()  # events may have been lost: re-read everything

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
