"""The live preview of `cms serve`: the site as `cms build` would make it, from the live index,
refreshed after every change, with live reload in open browser tabs.

The preview is an incremental build into `.cms/preview/` (the same code as `cms build`, so what
you preview is what you deploy), re-run a moment after any event (API write, hand edit, schedule)
or theme/config change; a server-sent event then tells open tabs to reload. The reload script is
a file, not inline code, so the preview can send a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import threading
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import Scope

from cms.config import Site
from cms.content.index import Index
from cms.events.bus import Bus, Event
from cms.render.build import BuildCache, build
from cms.render.theme import theme_dirs

log = logging.getLogger("cms.preview")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
RELOAD_JS = b"""// cms serve live reload: reload this tab when the preview was rebuilt.
(function () {
  var source = new EventSource("/_cms/livereload");
  source.addEventListener("reload", function () { window.location.reload(); });
})();
"""
_DEBOUNCE_S = 0.05
FIRST_BUILD_WAIT_S = 120.0  # a page asked for during the first build waits for it, this long at most


def is_site_path(rel: str) -> bool:
    """Whether the website may answer for the path `rel` (without its leading "/"): never for the
    API's paths nor for uploads/.

    Those belong to the API app beside the preview in `cms serve` (uploads/ files are served there,
    images only), which answers them as the API declares them: its 405 with `Allow`, its JSON 404."""
    return not (rel == "api" or rel.startswith(("api/", "uploads/")))


class SiteRoute(Route):
    """A route of the website: it matches no path that `is_site_path` refuses.

    Refused while routing, not by the page handler: a route that matched an API path would take a GET
    on a POST-only endpoint (the preview's 404 where the API says 405) and add GET and HEAD to the
    `Allow` of every API path (errors.allowed_methods asks each route whether the path is its own)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        # (only the catch-all `/{path:path}` can match such a path; its `path` is the whole of it)
        if match is not Match.NONE and not is_site_path(child_scope["path_params"].get("path", "")):
            return Match.NONE, {}
        return match, child_scope


class Preview:
    """Keeps `.cms/preview/` built from the live index and tells browsers when it changed."""

    def __init__(self, site: Site, index: Index, bus: Bus, *, drafts: bool = False) -> None:
        self.site = site
        self.index = index
        self.drafts = drafts
        self.out = site.state_dir / "preview"
        self.version = 0
        # One cache across the rebuilds of this preview: a rebuild after one edit brings the last
        # plan up to date instead of planning the site again (milliseconds, not a second at 10,000 posts).
        self._cache = BuildCache()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._theme_watch: threading.Thread | None = None
        self._waiters: set[asyncio.Queue[int]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set once the first build is over: until then the folder is half written (a post's page
        # without its stylesheet), so page requests wait for it instead of showing that.
        self._first_build = threading.Event()
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.name != "build.completed":
            self._dirty.set()

    def rebuild(self) -> None:
        started = time.perf_counter()
        try:
            # (a shutdown stops it between two pages: the server exits within seconds, not a build later)
            result = build(
                self.site,
                self.index,
                out=self.out,
                drafts=self.drafts,
                base_url="",
                stop=self._stop.is_set,
                cache=self._cache,
            )
        finally:
            self._first_build.set()  # (a failed first build still ends the wait: the 404 page says why)
        if result.errors:
            for error in result.errors:
                log.error("preview: %s", error)
        if result.written or result.removed or self.version == 0:
            self.version += 1
            self._notify()
        log.info("preview rebuilt in %.0f ms: %s", (time.perf_counter() - started) * 1000, result.summary())

    def _notify(self) -> None:
        loop = self._loop
        if loop is None:
            return
        for queue in list(self._waiters):
            loop.call_soon_threadsafe(queue.put_nowait, self.version)

    def start(self) -> None:
        self._dirty.set()  # the first build runs in the thread: the API is up at once
        self._thread = threading.Thread(target=self._run, name="cms-preview", daemon=True)
        self._thread.start()
        self._theme_watch = threading.Thread(target=self._watch_theme, name="cms-preview-theme", daemon=True)
        self._theme_watch.start()

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            # Index changes (API writes, hand edits) show in `generation` at once; events cover the
            # rest (schedules passing). Polling an int every 50 ms costs nothing and keeps reloads fast.
            changed = self._dirty.wait(_DEBOUNCE_S) or self.index.generation != seen
            if changed:
                time.sleep(_DEBOUNCE_S)  # let a burst of writes settle into one rebuild
                self._dirty.clear()
                seen = self.index.generation
                try:
                    self.rebuild()
                except Exception:  # noqa: BLE001 - a broken template must not stop the preview
                    if not self._stop.is_set():  # (stopping kills the render workers: an expected failure)
                        log.exception("preview rebuild failed")

    def _watch_theme(self) -> None:
        """Theme files and cms.toml are not content: watch them here."""
        from watchfiles import watch

        paths = [str(d) for d in theme_dirs(self.site)] + [str(self.site.root / "cms.toml")]
        try:
            for _changes in watch(
                *paths,
                stop_event=self._stop,
                debounce=50,
                step=20,
                rust_timeout=200,
                yield_on_timeout=False,
                raise_interrupt=False,
            ):
                if (self.site.root / "cms.toml").exists():
                    try:
                        self.site = Site.load(self.site.root)
                    except Exception:  # noqa: BLE001 - keep the last good config while the file is being edited
                        log.exception("cms.toml has an error; the preview keeps the last good settings")
                self._dirty.set()
        except Exception:  # noqa: BLE001
            log.exception("theme watcher stopped")

    def request_stop(self) -> None:
        """Ask the threads to finish (a rebuild under way finishes or fails first); do not wait."""
        self._stop.set()
        self._dirty.set()
        self._first_build.set()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the threads to finish; whether they have."""
        deadline = time.monotonic() + timeout
        for thread in (self._thread, self._theme_watch):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread is not None and thread.is_alive() for thread in (self._thread, self._theme_watch))

    def stop(self) -> None:
        self.request_stop()
        self.join(5)

    # -- HTTP ------------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        self._loop = asyncio.get_running_loop()
        rel = request.path_params.get("path", "")  # (never the API's: see SiteRoute)
        # Polled on the event loop, not waited for in a thread: a shutdown cancels this request at
        # once, where a thread blocked in wait() would hold the loop's closing for the whole wait.
        deadline = time.monotonic() + FIRST_BUILD_WAIT_S
        while not self._first_build.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        target = self._file(rel)
        if target is None:
            missing = self.out / "404.html"
            if missing.is_file():
                return self._html(missing.read_bytes(), 404)
            return PlainTextResponse("not found", status_code=404)
        if target.suffix == ".html":
            return self._html(target.read_bytes(), 200)
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(
            target, media_type=media, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        )

    def _file(self, rel: str) -> Path | None:
        if "\x00" in rel or ".." in Path(rel).parts:
            return None
        root = self.out.resolve()
        candidate = (self.out / rel).resolve()
        if not candidate.is_relative_to(root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _html(self, body: bytes, status: int) -> Response:
        tag = b'<script src="/_cms/livereload.js" defer></script>'
        body = body.replace(b"</body>", tag + b"</body>", 1) if b"</body>" in body else body + tag
        return Response(
            body,
            status_code=status,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP},
        )

    async def reload_script(self, request: Request) -> Response:
        return Response(RELOAD_JS, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def events(self, request: Request) -> Response:
        """Server-sent events: `reload` whenever the preview was rebuilt with changes."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._waiters.add(queue)

        async def stream() -> Any:
            try:
                yield b"retry: 500\n\n"
                while True:
                    try:
                        version = await asyncio.wait_for(queue.get(), timeout=15)
                        yield f"event: reload\ndata: {version}\n\n".encode()
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                    if await request.is_disconnected():
                        break
            finally:
                self._waiters.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def routes(self) -> list[Route]:
        """The site's pages and the live reload: the website, so not part of the API's OpenAPI document,
        and never matching an API path (see SiteRoute), though `cms serve` puts them in the API's router."""
        return [
            SiteRoute("/_cms/livereload.js", self.reload_script, methods=["GET"], include_in_schema=False),
            SiteRoute("/_cms/livereload", self.events, methods=["GET"], include_in_schema=False),
            SiteRoute("/", self.page, methods=["GET", "HEAD"], include_in_schema=False),
            SiteRoute("/{path:path}", self.page, methods=["GET", "HEAD"], include_in_schema=False),
        ]
