"""`cms serve`: one process that loads the index, keeps it live with the watcher, and runs uvicorn.

For several workers (`--workers N`) uvicorn needs an importable factory: `app_from_env` builds the
app for the site named by the CMS_SITE environment variable, each worker with its own index and
watcher; keys and (later) rate limits live in the shared SQLite state, so workers agree.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette

from cms.api.app import create_app
from cms.config import Site
from cms.content.index import Index
from cms.content.store import Store
from cms.events.bus import Bus

log = logging.getLogger("cms.serve")


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
        self.deliverer = Deliverer(app.state.webhooks)
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
        for part in (self.watcher, self.uploads, self.scheduler, self.deliverer, self.preview):
            if part is not None:
                part.stop()
        self.media.close()
        self.limiter.flush()  # in-process rate-limit counts of the last second
        if self.watcher is not None and hasattr(self.watcher.bus, "stop"):
            self.watcher.bus.stop()  # flush coalesced events into the outbox before exiting


def add_preview(app: Starlette, *, drafts: bool) -> Any:
    """Serve the live preview at / (after every API route)."""
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
        uvicorn.run("cms.serve:app_from_env", factory=True, workers=workers, **common)
        return
    app, watcher = build_app(site, watch=watch)
    index = app.state.services.index
    log.info("serving %s: %d documents; API at http://%s:%d/api/v1", site.site.title, len(index), host, port)
    site_preview = add_preview(app, drafts=drafts) if preview else None
    if site_preview is not None:
        log.info("preview at http://%s:%d/%s", host, port, " (drafts shown)" if drafts else "")
    background = Background(app, watcher, site_preview)
    background.start()
    try:
        uvicorn.Server(uvicorn.Config(app, **common)).run()
    finally:
        background.stop()
