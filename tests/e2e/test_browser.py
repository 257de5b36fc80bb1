"""The built site and the live preview in a real browser (Chromium through Playwright's sync API).

(a) The demo site is built and served from its output folder by http.server on 127.0.0.1: home, a
post, a category and the search page load with no console error and no failed request, the search
page finds a known post, and screenshots (desktop and phone, light and dark) go to tests/artifacts/.
(b) A real `python -m cms serve` previews a copy of the demo site: a post open in the browser
reloads by itself after the rebuild that follows an edit of its file (the delay is printed, not
asserted: a busy machine may take longer; bench/ measures it).

Chromium comes from Debian (`.ci/run` installs it); a machine without it fails these tests rather
than skipping them, so CI cannot pass without having looked.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.api import serve_command
from tests.render import REPO, build_site, copy_demo
from tests.support import WAIT_TIMEOUT_S, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "tests" / "artifacts"
VIEWPORTS = {"desktop": (1280, 900), "mobile": (390, 844)}
SEARCH_WORD = "Kenya"
SEARCH_HIT = "/posts/kenya-and-colombia-side-by-side/"
POST = "pour-over-basics"
POST_TITLE = "Pour-over basics: five variables that actually matter"
WAIT_MS = int(WAIT_TIMEOUT_S * 1000)  # Playwright counts in ms; generous, like every wait here


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; .ci/run does it)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Problems:
    """Console errors, page errors, failed requests and HTTP errors of one page, as strings."""

    def __init__(self, page: Any) -> None:
        self.found: list[str] = []
        page.on("console", lambda m: self.found.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.found.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.found.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.found.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def static_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo site built and served by a plain static file server; yields its base URL."""
    site = copy_demo(tmp_path_factory.mktemp("browser"))
    out = site.root / "public"
    _, result = build_site(site, out)
    assert result.ok, result.errors
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("path", ["/", f"/posts/{POST}/", "/categories/brewing/", "/search/"])
def test_pages_load_cleanly(browser: Any, static_site: str, path: str) -> None:
    page = browser.new_page()
    try:
        problems = Problems(page)
        response = page.goto(static_site + path, wait_until="load")
        assert response is not None and response.status == 200
        assert page.locator("main").count() == 1 and page.title()
        assert problems.found == []
    finally:
        page.close()


def test_search_finds_a_known_post(browser: Any, static_site: str) -> None:
    page = browser.new_page()
    try:
        problems = Problems(page)
        page.goto(static_site + "/search/", wait_until="load")
        page.locator("#search-input").press_sequentially(SEARCH_WORD, delay=20)
        # results follow typing (debounced): wait for the ones of the whole word
        page.locator("#search-status").filter(has_text=f"for “{SEARCH_WORD}”").wait_for(timeout=WAIT_MS)
        hit = page.locator(f'#search-results a[href="{SEARCH_HIT}"]')
        hit.wait_for(timeout=WAIT_MS)
        assert "Kenya" in hit.inner_text()
        assert page.url.endswith(f"?q={SEARCH_WORD}")  # the query is kept in the address
        hit.click()
        page.wait_for_url(static_site + SEARCH_HIT)
        assert problems.found == []
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", sorted(VIEWPORTS))
def test_screenshots_in_both_color_schemes(browser: Any, static_site: str, device: str, scheme: str) -> None:
    width, height = VIEWPORTS[device]
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    try:
        page = context.new_page()
        problems = Problems(page)
        ARTIFACTS.mkdir(exist_ok=True)
        for name, path in (("home", "/"), ("post", f"/posts/{POST}/")):
            page.goto(static_site + path, wait_until="load")
            shot = ARTIFACTS / f"{name}-{device}-{scheme}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            # the colour scheme took effect, and nothing is wider than a phone's screen
            dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
            assert dark == (scheme == "dark")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            rgb = [int(x) for x in background[background.index("(") + 1 : background.index(")")].split(",")[:3]]
            assert (sum(rgb) < 3 * 128) == (scheme == "dark"), background
            # the menu's items line up: each row of the (wrapping) menu has one top edge
            tops = page.evaluate(
                "[...document.querySelectorAll('.site-nav li')].map(li => li.getBoundingClientRect().top)"
            )
            assert len(tops) >= 5
            for top in tops:
                assert all(abs(top - other) < 0.5 or abs(top - other) > 20 for other in tops), tops
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px"
        assert problems.found == []
    finally:
        context.close()


# -- (b) the live preview of `cms serve` ---------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, ""
    except OSError:
        return 0, ""


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m cms serve` on a copy of the demo site (no key: the preview needs none)."""
    site = copy_demo(tmp_path / "site")
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            serve_command(site.root, port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _get(f"{base}/posts/{POST}/")[0] != 200:
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the preview did not come up in 30 s:\n" + log.read_text()
            time.sleep(0.05)
        yield base, site.root
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_the_preview_reloads_an_open_post_after_an_edit(browser: Any, preview: tuple[str, Path]) -> None:
    base, root = preview
    url = f"{base}/posts/{POST}/"
    page = browser.new_page()
    try:
        problems = Problems(page)
        # The server registers a tab's listener before it answers /_cms/livereload: once the answer's
        # headers are in, no rebuild can be missed (a fixed pause here would only hope so).
        with page.expect_response(lambda r: r.url.endswith("/_cms/livereload"), timeout=WAIT_MS):
            page.goto(url, wait_until="load", timeout=WAIT_MS)
        assert page.title().startswith(POST_TITLE)
        loads: list[float] = []
        page.on("load", lambda _: loads.append(time.monotonic()))

        # Watch the server for the rebuilt page from another thread (plain HTTP, not the browser).
        new_title = f"Pour-over, edited {time.time_ns()}"
        rebuilt: list[float] = []

        def watch() -> None:
            stop = time.monotonic() + WAIT_TIMEOUT_S
            while time.monotonic() < stop and not rebuilt:
                if new_title in _get(url)[1]:
                    rebuilt.append(time.monotonic())
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        post = root / "content" / "posts" / f"{POST}.md"
        edited = time.monotonic()
        post.write_text(post.read_text(encoding="utf-8").replace(POST_TITLE, new_title), encoding="utf-8")
        watcher.start()
        # (a function, not an expression: the preview's CSP forbids the eval() Playwright uses for those)
        page.wait_for_function("title => document.title.startsWith(title)", arg=new_title, timeout=WAIT_MS)
        watcher.join(WAIT_TIMEOUT_S + 5)
        assert rebuilt, "the server never served the edited post"
        assert loads, "the page did not fire a new load event"  # it reloaded by itself: nothing else reloads it
        # How fast is for bench/ to measure; printed here for a person reading the log, never asserted.
        print(f"preview: rebuilt {rebuilt[0] - edited:.2f} s after the edit, reloaded {loads[0] - edited:.2f} s")
        assert page.locator("h1").inner_text().startswith(new_title)
        assert [p for p in problems.found if "_cms/livereload" not in p] == []
        assert not [p for p in problems.found if p.startswith(("console", "page error"))]
    finally:
        page.close()
