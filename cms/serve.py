"""`cms serve`: one process that loads the index, keeps it live with the watcher, and runs uvicorn.

For several workers (`--workers N`) uvicorn needs an importable factory: `app_from_env` builds the
app for the site named by the CMS_SITE environment variable, each worker with its own index and
watcher; keys and (later) rate limits live in the shared SQLite state, so workers agree.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from cms import workers as processes
from cms.api.app import create_app
from cms.config import Site
from cms.content.index import Index
from cms.content.store import Store
from cms.events.bus import Bus
from cms.ratelimit import RateLimiter
from cms.state import State

log = logging.getLogger("cms.serve")

# `cms serve` exits within 5 s of SIGTERM or Ctrl-C: requests get this long to finish, the threads
# beside the API (a preview build stops between two pages) and the worker processes the rest.
GRACEFUL_SHUTDOWN_S = 2.0
STOP_WAIT_S = 2.8
# Imported once in the fork server, so a render or image worker starts without importing them.
WORKER_MODULES = ("cms.render.parallel", "cms.media.convert")


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("cms")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class Background:
    """The threads that run beside the API: watcher, uploads watcher, scheduler, webhook delivery."""

    def __init__(self, app: Starlette, watcher: Any, preview: Any = None) -> None:
        from cms.api.media import library_of
        from cms.events.scheduler import Scheduler
        from cms.events.webhooks import Deliverer
        from cms.media import UploadsWatcher

        svc = app.state.services
        self.watcher = watcher
        self.preview = preview
        self.scheduler = Scheduler(svc.index, svc.bus, svc.state, url=svc.store.url, clock=svc.clock)
        self.deliverer = Deliverer(svc.webhooks)
        self.media = library_of(app)  # scanned now rather than on the first media request
        self.limiter = svc.limiter
        # Images dropped into uploads/ get derivatives and a sidecar; sidecars other workers write show up.
        self.uploads = UploadsWatcher(self.media, svc.bus) if watcher is not None else None

    def start(self) -> None:
        if self.watcher is not None:
            self.watcher.start()
        self.media.start()
        if self.uploads is not None:
            self.uploads.start()
        self.scheduler.start()
        self.deliverer.start()
        if self.preview is not None:
            self.preview.start()

    def stop(self) -> None:
        """Stop them all within a few seconds, even with a preview build in flight.

        What must reach disk goes first (coalesced events into the outbox, rate-limit counts), the
        waits for threads and pools after, so the exit backstop of `serve` never cuts the first short."""
        if self.preview is not None:
            self.preview.request_stop()  # its build stops between two pages while the rest stop
        for part in (self.watcher, self.uploads, self.scheduler):
            if part is not None:
                part.stop()
        self.limiter.flush()  # in-process rate-limit counts of the last second
        if self.watcher is not None and hasattr(self.watcher.bus, "stop"):
            self.watcher.bus.stop()  # flush coalesced events into the outbox before exiting
        for part in (self.deliverer, self.preview):
            if part is not None:
                part.stop()
        self.media.close()
        # Every pool has been shut down: what is left is a worker a signal cut off while it was being
        # started. Killed only now, never while a pool reads its results (half a message would hang it).
        processes.stop_all()


def add_preview(app: Starlette, *, drafts: bool) -> Any:
    """Serve the live preview at / (after every API route; its routes match no API path)."""
    from cms.preview import Preview

    svc = app.state.services
    preview = Preview(svc.site, svc.index, svc.bus, drafts=drafts)
    app.router.routes.extend(preview.routes())
    return preview


def build_app(site: Site, *, watch: bool = True, shared_limits: bool = False) -> tuple[Starlette, Any]:
    """The app and its watcher (None when watching is off), both for one site.

    The watcher publishes through a Coalescer: a burst of saves of one file within two seconds
    becomes one event, while its index update stays immediate.
    """
    index = Index.load(site, use_snapshot=True)
    # Millions of long-lived objects (the documents) made every full garbage collection a pause of
    # 100+ ms in the middle of requests; frozen, the collector no longer walks them.
    gc.collect()
    gc.freeze()
    bus = Bus()
    removed = Store(site, index, bus).recover()
    if removed:
        log.info("removed %d temp file(s) left by an interrupted write", removed)
    app = create_app(site, index=index, bus=bus, log_requests=True, shared_limits=shared_limits)
    watcher = None
    if watch:
        from cms.events.bus import Coalescer
        from cms.watch import Watcher

        watcher = Watcher(site, index, Coalescer(bus), url=app.state.services.store.url)  # type: ignore[arg-type]
    if index.problems:
        log.warning("%d content file(s) have problems; run `cms check` to list them", len(index.problems))
    return app, watcher


def app_from_env() -> Starlette:
    """uvicorn factory for multi-worker runs: the site comes from CMS_SITE."""
    site = Site.load(os.environ["CMS_SITE"])
    app, watcher = build_app(site, watch=os.environ.get("CMS_WATCH", "1") == "1", shared_limits=True)  # one of several
    preview = (
        add_preview(app, drafts=os.environ.get("CMS_DRAFTS") == "1") if os.environ.get("CMS_PREVIEW") == "1" else None
    )
    Background(app, watcher, preview).start()
    return app


def serve(
    site: Site,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    watch: bool = True,
    workers: int = 1,
    log_level: str = "info",
    limit_concurrency: int = 256,
    preview: bool = True,
    drafts: bool = False,
) -> None:
    """Run the server (API, preview, watcher, scheduler, webhook delivery) until Ctrl-C."""
    configure_logging(log_level)
    common: dict[str, Any] = {
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": 5,
        "limit_concurrency": limit_concurrency,
    }
    if workers > 1:
        os.environ["CMS_SITE"] = str(site.root)
        os.environ["CMS_WATCH"] = "1" if watch else "0"
        os.environ["CMS_PREVIEW"] = "0"  # one preview builder per site: run it with a single worker
        os.environ["CMS_DRAFTS"] = "1" if drafts else "0"
        # Migrate the .cms/ databases here, once, before any worker: a database from a newer cms is then
        # refused with one line from the CLI, not with a traceback from every worker.
        State(site.state_dir).close()
        RateLimiter(site.state_dir).close()
        uvicorn.run("cms.serve:app_from_env", factory=True, workers=workers, **common)
        return
    sigterm = _stop_on_sigterm()
    # Before the first thread and before the socket is bound (the fork server is clean whenever it
    # starts: this only spares the first render its start-up).
    processes.start_forkserver(WORKER_MODULES)
    app, watcher = build_app(site, watch=watch)
    index = app.state.services.index
    log.info("serving %s: %d documents; API at http://%s:%d/api/v1", site.site.title, len(index), host, port)
    site_preview = add_preview(app, drafts=drafts) if preview else None
    if site_preview is not None:
        log.info("preview at http://%s:%d/%s", host, port, " (drafts shown)" if drafts else "")
    background = Background(app, watcher, site_preview)
    try:
        background.start()
        if sigterm.is_set():  # a SIGTERM whose SystemExit was swallowed while starting
            raise SystemExit(0)
        uvicorn.Server(uvicorn.Config(app, **common)).run()
    finally:
        _exit_after(STOP_WAIT_S)
        background.stop()
        processes.stop_forkserver()


def _exit_after(seconds: float) -> None:
    """The backstop of the 5 s promise: end the process if its shutdown has not within `seconds`.

    Its workers do not outlive it (they die with their parent), but whatever cleanup was left
    undone stays undone, so this is for a stop that hangs, never the way a stop goes."""

    def exit_now() -> None:
        log.error("shutdown took longer than %g s; exiting now. Where each thread was:", seconds)
        faulthandler.dump_traceback(all_threads=True)  # (to stderr: a hang is a bug, this says where)
        os._exit(1)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True  # (runs on while the interpreter waits for other threads at exit)
    timer.start()


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM stops the server as Ctrl-C does: cleanly, with status 0. Returns the event it sets.

    Without a handler of ours, SIGTERM ends the process where it stands (while it loads the index)
    or, once uvicorn has shut down and sent it again, before `background.stop()`: no cleanup runs,
    worker processes are left behind and the resource tracker warns of leaked semaphores.
    uvicorn handles it while it runs; this handler covers the start before and the stop after.
    The SystemExit it raises can be swallowed (Python ignores exceptions in at-fork callbacks, and a
    signal can land in logging's right after a fork): the caller checks the event before serving."""
    requested = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if requested.is_set():
            return  # already stopping: a second SIGTERM must not cut the cleanup short
        requested.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    return requested
