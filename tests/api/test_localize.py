"""`localize_images: true` against a real HTTP server on 127.0.0.1, and the SSRF refusals (0 hits)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.http import Services
from cms.config import NetworkSection, Site
from cms.events.bus import Event
from cms.media import MediaItem, MediaLibrary, localize
from tests.media import images

from .conftest import assert_error, unlimited, with_upload

PNG = images.png_alpha((320, 200))
JPEG = images.jpeg((900, 600))
BIG = 50 * 1024 * 1024

PRIVATE = NetworkSection(allow_private_addresses=True)  # the origin server is on 127.0.0.1


class Origin(ThreadingHTTPServer):
    """A tiny image host that logs every request it receives (path and Host header)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.hits]


class _Handler(BaseHTTPRequestHandler):
    server: Origin

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the hits list is the log
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        with self.server.lock:
            self.server.hits.append((self.path, self.headers.get("Host", "")))
        route = {
            "/img.png": lambda: self._send(200, PNG, "image/png"),
            "/photo.jpg": lambda: self._send(200, JPEG, "image/jpeg"),
            "/missing.png": lambda: self._send(404, b"not here", "text/plain"),
            "/fake.png": lambda: self._send(200, images.HTML, "image/png"),
            "/loop": lambda: self._redirect("/loop"),
            "/hop1": lambda: self._redirect("/hop2"),
            "/hop2": lambda: self._redirect("/hop3"),
            "/hop3": lambda: self._redirect("/img.png"),
            "/hop0": lambda: self._redirect("/hop1"),
            "/creds": lambda: self._redirect(f"http://user:pw@127.0.0.1:{self.server.server_address[1]}/img.png"),
            "/big.png": self._big,
            "/drip.png": self._drip,
        }.get(self.path.split("?")[0])
        if route is None:
            self._send(404, b"no route", "text/plain")
        else:
            route()

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _big(self) -> None:  # no Content-Length: only counting can stop it
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        chunk = b"\x00" * (1024 * 1024)
        try:
            self.wfile.write(PNG[:64])
            for _ in range(BIG // len(chunk)):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        try:
            for byte in PNG[:40]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def site(demo_site: Site) -> Site:
    """The demo site with [network] allow_private_addresses = true (the origin is on 127.0.0.1)."""
    path = demo_site.root / "cms.toml"
    path.write_text(path.read_text() + "\n[network]\nallow_private_addresses = true\n")
    return unlimited(with_upload(Site.load(demo_site.root)))


@pytest.fixture(autouse=True)
def _close_library(app: Starlette) -> Iterator[None]:
    yield
    library = app.state.services.media
    if library is not None:
        library.close()


@pytest.fixture
def events(svc: Services) -> list[Event]:
    seen: list[Event] = []
    svc.bus.subscribe(seen.append)
    return seen


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def create(writer: TestClient, content: str, **extra: Any) -> Any:
    return writer.post(
        "/api/v1/posts",
        json={"title": f"Post {time.monotonic_ns()}", "content": content, "localize_images": True, **extra},
    )


# -- with allow_private_addresses = true -----------------------------------------------------------


def test_remote_images_are_stored_and_the_content_rewritten(
    writer: TestClient, svc: Services, origin: Origin, events: list[Event]
) -> None:
    content = (
        f'Intro\n\n![A cup]({origin.base}/img.png "title")\n\n'
        f'<p><img alt="Beans" src="{origin.base}/photo.jpg" width="300"></p>\n\n'
        f"Again: ![same]({origin.base}/img.png)\n`{origin.base}/img.png` in code stays.\n"
    )
    r = create(writer, content)
    assert r.status_code == 201, r.text
    body = r.json()
    report = body["localized"]
    assert [(e["url"], e["status"]) for e in report] == [
        (f"{origin.base}/img.png", "ok"),
        (f"{origin.base}/photo.jpg", "ok"),
    ]
    saved = body["data"]["content"]
    png_url, jpg_url = report[0]["local_url"], report[1]["local_url"]
    assert png_url.startswith("/uploads/images/") and png_url.endswith("/img.png")
    assert f'![A cup]({png_url} "title")' in saved and f"![same]({png_url})" in saved
    assert f'<img alt="Beans" src="{jpg_url}" width="300">' in saved
    assert f"`{origin.base}/img.png`" in saved  # only image syntax is rewritten
    item = svc.site.uploads_dir / png_url.removeprefix("/uploads/")
    assert item.read_bytes() == PNG
    library = svc_library(svc, writer)
    assert library.get(report[0]["media_id"]).alt == "A cup"
    assert library.get(report[1]["media_id"]).alt == "Beans"
    assert sorted(origin.paths()) == ["/img.png", "/photo.jpg"]  # one download per URL
    assert [e.name for e in events].count("media.uploaded") == 2


def svc_library(svc: Services, c: TestClient) -> MediaLibrary:
    library: MediaLibrary | None = c.app.state.services.media  # type: ignore[attr-defined]
    assert library is not None  # loaded by the first media request
    return library


@pytest.mark.parametrize(
    ("path", "error", "hits"),
    [
        ("/missing.png", "HTTP 404", ["/missing.png"]),
        ("/loop", "more than 3 redirects", ["/loop"] * 4),
        ("/hop0", "more than 3 redirects", ["/hop0", "/hop1", "/hop2", "/hop3"]),
        ("/fake.png", "not a JPEG, PNG, WebP or AVIF image", ["/fake.png"]),
        ("/creds", "refused: URLs with credentials are not allowed", ["/creds"]),
    ],
)
def test_a_failed_download_leaves_the_url_and_is_reported(
    writer: TestClient, svc: Services, origin: Origin, path: str, error: str, hits: list[str]
) -> None:
    before = snapshot(svc.site.uploads_dir)
    content = f"![x]({origin.base}{path})\n"
    r = create(writer, content)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["content"] == content
    (entry,) = r.json()["localized"]
    assert entry["status"] == "failed" and error in entry["error"], entry
    assert "media_id" not in entry
    assert origin.paths() == hits
    assert snapshot(svc.site.uploads_dir) == before


def test_three_redirects_are_followed(writer: TestClient, origin: Origin) -> None:
    r = create(writer, f"![x]({origin.base}/hop1)")
    assert r.json()["localized"][0]["status"] == "ok", r.text
    assert origin.paths() == ["/hop1", "/hop2", "/hop3", "/img.png"]


def test_a_50_mb_body_is_cut_at_10_mib(writer: TestClient, svc: Services, origin: Origin) -> None:
    before = snapshot(svc.site.uploads_dir)
    r = create(writer, f"![x]({origin.base}/big.png)")
    (entry,) = r.json()["localized"]
    assert entry["status"] == "failed" and "larger than 10485760 bytes" in entry["error"]
    assert snapshot(svc.site.uploads_dir) == before


def test_patch_localizes_too_and_a_refused_document_takes_its_images_back(
    writer: TestClient, svc: Services, origin: Origin
) -> None:
    post = writer.post("/api/v1/posts", json={"title": "Plain", "content": "x"}).json()["data"]
    r = writer.patch(
        f"/api/v1/posts/{post['id']}", json={"content": f"![x]({origin.base}/img.png)", "localize_images": True}
    )
    assert r.status_code == 200 and r.json()["localized"][0]["status"] == "ok", r.text
    before = snapshot(svc.site.uploads_dir)
    refused = create(writer, f"![x]({origin.base}/photo.jpg)", status="bogus")
    assert_error(refused, 422, "VALIDATION_ERROR")
    assert snapshot(svc.site.uploads_dir) == before  # the download was stored, then removed again
    assert_error(create(writer, "x", localize_images="yes"), 422, "VALIDATION_ERROR")
    plain = writer.post("/api/v1/posts", json={"title": "No flag", "content": f"![x]({origin.base}/img.png)"})
    assert "localized" not in plain.json()
    assert origin.paths().count("/photo.jpg") == 1 and origin.paths().count("/img.png") == 1


# -- the service directly: pinning, refusals with 0 hits, the drip ----------------------------------


@pytest.fixture
def library(site: Site) -> Iterator[MediaLibrary]:
    lib = MediaLibrary.load(site)
    yield lib
    lib.close()


def _ingest(library: MediaLibrary) -> Any:
    def ingest(data: bytes, name: str, alt: str) -> MediaItem:
        return library.ingest(data, name, alt=alt)

    return ingest


def test_the_connection_is_pinned_to_the_vetted_address(library: MediaLibrary, origin: Origin) -> None:
    port = origin.server_address[1]
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    content, report = localize(
        f"![x](http://images.test:{port}/img.png)", _ingest(library), network=PRIVATE, resolver=resolver
    )
    assert report[0]["status"] == "ok", report
    assert resolved == ["images.test"]  # resolved once, by the vetting resolver; no other DNS
    assert origin.hits == [("/img.png", f"images.test:{port}")]


def test_loopback_in_every_spelling_is_refused_with_no_connection(library: MediaLibrary, origin: Origin) -> None:
    port = origin.server_address[1]
    hosts = [
        "127.0.0.1",
        "[::1]",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "localhost",
        "public.test",
        "169.254.169.254",
        "0.0.0.0",
    ]
    stub = {"localhost": ["127.0.0.1"], "public.test": ["93.184.216.34", "127.0.0.1"]}
    content = "\n".join(f"![x](http://{h}:{port}/img.png)" for h in hosts)
    content += f"\n![x](http://user:pw@example.com:{port}/img.png)\n"
    new, report = localize(
        content,
        _ingest(library),
        network=NetworkSection(),
        resolver=lambda host, _port: stub[host],
        allowed_ports=(80, 443, port),  # the port is allowed, so only the address can refuse
    )
    assert new == content
    assert len(report) == len(hosts) + 1
    assert all(e["status"] == "failed" and e["error"].startswith("refused:") for e in report), report
    assert origin.hits == []  # not one connection reached the server
    assert len(library) == 0


def test_a_drip_feed_stops_at_the_deadline(library: MediaLibrary, origin: Origin) -> None:
    # pytest's timeout guards the hang; the report says the project's deadline, not a read timeout, ended it
    _, report = localize(f"![x]({origin.base}/drip.png)", _ingest(library), network=PRIVATE, total_timeout=1.0)
    assert report[0]["status"] == "failed" and "too long" in report[0]["error"]


def test_own_uploads_are_not_downloaded_again(library: MediaLibrary, origin: Origin) -> None:
    content = f"![x]({origin.base}/img.png)"
    new, report = localize(content, _ingest(library), network=PRIVATE, skip_prefixes=(origin.base,))
    assert (new, report, origin.hits) == (content, [], [])
