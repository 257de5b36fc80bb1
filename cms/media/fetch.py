"""Remote images into the library: vetted, pinned, bounded downloads and `localize(content, ...)`.

Every hop is checked by `cms.net.vet_url` (scheme, credentials, port, every DNS answer) and the
connection goes to the vetted address (pinned URL + Host header + TLS server name), so DNS cannot
change between the check and the connect. Redirects are followed by hand (at most 3), the body is
streamed and cut at the size cap and at an overall deadline, and the bytes must sniff as an image:
the server's Content-Type is never trusted.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from cms.config import NetworkSection
from cms.errors import BlockedTarget, CMSError
from cms.errors import FetchFailed as FetchFailed  # (re-exported: its old home)
from cms.net import Resolver, system_resolver, vet_url

from .convert import check_kind
from .item import MediaItem

MAX_REDIRECTS = 3
MAX_IMAGES = 20  # per document: each may take up to the deadline
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 10.0  # one download, all hops and the whole body
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "cms-localize/1 (+image localization)"

# ![alt](<url> "title") and ![alt](url 'title'): the URL group is replaced in place.
_MARKDOWN_IMAGE = re.compile(
    r"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\(\s*<?(?P<url>https?://[^\s<>)]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)",
    re.IGNORECASE,
)
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_HTML_SRC = re.compile(r"""\bsrc\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'>]+))""", re.IGNORECASE)
_HTML_ALT = re.compile(r"""\balt\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'>]+))""", re.IGNORECASE)


@dataclass(frozen=True)
class Fetched:
    data: bytes
    url: str  # the URL the bytes came from, after redirects
    hops: int


def fetch_image(
    url: str,
    *,
    client: httpx.Client,
    network: NetworkSection,
    resolver: Resolver = system_resolver,
    allowed_ports: tuple[int, ...] = (80, 443),
    max_bytes: int = 10 * 1024 * 1024,
    max_redirects: int = MAX_REDIRECTS,
    total_timeout: float = TOTAL_TIMEOUT_S,
) -> Fetched:
    """GET an image, hop by vetted hop; FetchFailed or BlockedTarget says why not."""
    deadline = time.monotonic() + total_timeout
    current = url
    for hop in range(max_redirects + 1):
        target = vet_url(
            current,
            network,
            resolver=resolver,
            allowed_ports=allowed_ports,
        )
        default_port = 443 if current.lower().startswith("https") else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        headers = {
            "Host": host if target.port == default_port else f"{host}:{target.port}",
            "User-Agent": USER_AGENT,
            "Accept": "image/avif,image/webp,image/png,image/jpeg;q=0.9,*/*;q=0.1",
            "Accept-Encoding": "identity",  # the bytes counted against the cap are the image itself
        }
        extensions = {"sni_hostname": target.host} if current.lower().startswith("https") else {}
        try:
            with client.stream("GET", target.pinned_url, headers=headers, extensions=extensions) as response:
                if response.status_code in REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"HTTP {response.status_code} without a Location header")
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"HTTP {response.status_code}")
                data = _read_capped(response, max_bytes, deadline)
        except httpx.TimeoutException:
            raise FetchFailed("timed out") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"download failed: {type(exc).__name__}: {str(exc)[:120]}") from None
        check_kind(data[:64])  # 415 (UnsupportedMediaType) for HTML, SVG, GIF... whatever the header said
        return Fetched(data=data, url=current, hops=hop)
    raise FetchFailed(f"more than {max_redirects} redirects")


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"the image is larger than {max_bytes} bytes (Content-Length {declared})")
    chunks: list[bytes] = []
    size = 0
    # Raw bytes as they arrive (no re-chunking, so the deadline is checked at every read; a server
    # that stops sending is ended by the read timeout).
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"the image is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchFailed("the download took too long")
        chunks.append(chunk)
    if time.monotonic() > deadline:
        raise FetchFailed("the download took too long")
    return b"".join(chunks)


# -- localize ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    url: str
    alt: str


def remote_images(content: str) -> list[_Found]:
    """Remote image URLs in Markdown (`![alt](url)`) and HTML (`<img src>`), first occurrence first."""
    found: dict[str, _Found] = {}
    for m in _MARKDOWN_IMAGE.finditer(content):
        found.setdefault(m.group("url"), _Found(m.group("url"), m.group("alt").replace("\\", "")))
    for tag in _HTML_IMG.finditer(content):
        src = _attr(_HTML_SRC, tag.group(0))
        if src and re.match(r"https?://", html.unescape(src), re.IGNORECASE):
            alt = _attr(_HTML_ALT, tag.group(0)) or ""
            found.setdefault(src, _Found(src, html.unescape(alt)))
    return sorted(found.values(), key=lambda f: content.find(f.url))


def _attr(pattern: re.Pattern[str], tag: str) -> str | None:
    m = pattern.search(tag)
    if m is None:
        return None
    return next(v for v in (m.group("dq"), m.group("sq"), m.group("bare")) if v is not None)


def _rewrite(content: str, local: dict[str, str]) -> str:
    """Replace each localized URL inside image syntax only (not in prose or code spans elsewhere)."""

    def markdown(m: re.Match[str]) -> str:
        url = m.group("url")
        if url not in local:
            return m.group(0)
        start, end = m.span("url")
        return m.group(0)[: start - m.start()] + local[url] + m.group(0)[end - m.start() :]

    def img(m: re.Match[str]) -> str:
        tag = m.group(0)
        src = _HTML_SRC.search(tag)
        if src is None:
            return tag
        group = next(g for g in ("dq", "sq", "bare") if src.group(g) is not None)
        value = src.group(group)
        if value not in local:
            return tag
        start, end = src.span(group)
        return tag[:start] + html.escape(local[value], quote=True) + tag[end:]

    return _HTML_IMG.sub(img, _MARKDOWN_IMAGE.sub(markdown, content))


Ingest = Callable[[bytes, str, str], MediaItem]  # (data, file name, alt) -> stored item


def localize(
    content: str,
    ingest: Ingest,
    *,
    network: NetworkSection,
    resolver: Resolver = system_resolver,
    allowed_ports: tuple[int, ...] = (80, 443),
    max_bytes: int = 10 * 1024 * 1024,
    skip_prefixes: tuple[str, ...] = (),
    transport: httpx.BaseTransport | None = None,
    total_timeout: float = TOTAL_TIMEOUT_S,
    max_images: int = MAX_IMAGES,
) -> tuple[str, list[dict[str, Any]]]:
    """Download the remote images `content` shows, store each through `ingest`, point the content at them.

    Returns the new content and one report entry per remote URL: `{"url", "status": "ok",
    "media_id", "local_url"}` or `{"url", "status": "failed", "error"}`. A failed URL stays as it was.
    """
    report: list[dict[str, Any]] = []
    local: dict[str, str] = {}
    found = [f for f in remote_images(content) if not f.url.startswith(skip_prefixes)]
    if not found:
        return content, report
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False, transport=transport) as client:
        for n, image in enumerate(found):
            url = html.unescape(image.url)
            if n >= max_images:
                report.append({"url": url, "status": "failed", "error": f"more than {max_images} images"})
                continue
            try:
                fetched = fetch_image(
                    url,
                    client=client,
                    network=network,
                    resolver=resolver,
                    allowed_ports=allowed_ports,
                    max_bytes=max_bytes,
                    total_timeout=total_timeout,
                )
                item = ingest(fetched.data, _file_name(fetched.url), image.alt)
            except BlockedTarget as exc:
                report.append({"url": url, "status": "failed", "error": f"refused: {exc.message}"})
                continue
            except CMSError as exc:
                report.append({"url": url, "status": "failed", "error": exc.message})
                continue
            local[image.url] = "/uploads/" + item.rel(item.file)
            report.append({"url": url, "status": "ok", "media_id": item.id, "local_url": local[image.url]})
    return _rewrite(content, local), report


def _file_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or "image"
