"""A folder watched in a daemon thread: the mechanism under the content and the uploads watchers.

watchfiles yields batches of changed paths; `FolderWatch` runs it in a thread that survives a
vanished folder or a notify error (it re-reads everything and watches on) and hands each batch to
`handle`. What a batch means is the subclass's business: `cms.watch.Watcher` refreshes the index,
`cms.media.watch.UploadsWatcher` syncs the media library.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from watchfiles import DefaultFilter, watch

log = logging.getLogger("cms.watch")  # the name both watchers have always logged under


class FolderWatch(ABC):
    """A daemon thread that hands every batch of changed paths under a folder to `handle`.

    If watching itself fails (the folder vanished, a notify error), the thread waits a second,
    re-reads everything (`resync`: events were lost meanwhile) and watches on. Subclasses say what
    to watch and what a batch means; `start()` returns once the watch is live.
    """

    thread_name = "cms-watch"
    step_ms = 10  # a batch is yielded after one quiet step: ~20 ms after a save
    rust_timeout_ms = 100  # an empty batch this often tells start() the watch is live

    def __init__(self, debounce_ms: int) -> None:
        self.debounce_ms = debounce_ms
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what subclasses define ------------------------------------------------------------------
    @abstractmethod
    def root(self) -> Path:
        """The folder to watch."""

    @abstractmethod
    def watch_filter(self) -> DefaultFilter:
        """Which paths matter."""

    @abstractmethod
    def prepare(self) -> None:
        """Run by start() before the thread: check or create the folder."""

    @abstractmethod
    def handle(self, paths: list[Path]) -> None:
        """Act on one batch of changed paths."""

    @abstractmethod
    def resync(self) -> None:
        """Re-read everything (after the watch was down)."""

    # -- the thread ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start watching; returns once the watch is live, so no change after it can be missed."""
        if self.running:
            return
        self.prepare()
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish (watchfiles checks every step) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        restarted = False
        root = self.root()
        while not self._stop.is_set():
            try:
                if restarted:
                    self.resync()
                for batch in watch(
                    root,
                    watch_filter=self.watch_filter(),
                    debounce=self.debounce_ms,
                    step=self.step_ms,
                    stop_event=self._stop,
                    rust_timeout=self.rust_timeout_ms,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                ):
                    self._ready.set()
                    try:
                        self.handle([Path(path) for _, path in batch])
                    except Exception:  # noqa: BLE001 - one bad batch must not end the watch
                        log.exception("applying changed files failed; watching on")
            except Exception:  # noqa: BLE001 - the watcher must outlive a vanished folder or a notify error
                log.exception("watching %s failed; restarting in 1 s", root)
                self._ready.set()
                restarted = True
                self._stop.wait(1.0)
