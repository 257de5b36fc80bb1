"""Shared helpers of the static build tests: an HTML fact collector, a link checker over a built
site, an executable-sink audit (T14), and a fixed clock.

The clock is 2026-11-24 12:00 UTC, like tests/api: the demo site's `winter-blend-2027` is then
scheduled, and `grinder-buying-guide` and `home-roasting-first-steps` are drafts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from cms.config import Site
from cms.content.index import Index
from cms.render.build import BuildResult, build
from tests.support import DEMO_DRAFTS, DEMO_SCHEDULED

REPO = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BASE_URL = "https://cinder-and-crema.example"  # the demo's site.base_url
DRAFTS = DEMO_DRAFTS
SCHEDULED = DEMO_SCHEDULED
# A post with two tags' neighbours, related posts, one category and one author; an edit of its body
# changes its page and the feeds that carry its body, nothing else.
DEMO_POST = "water-chemistry-for-coffee"
BODY_EDIT_OUTPUTS = frozenset(
    {
        f"posts/{DEMO_POST}/index.html",
        "feed.xml",
        "atom.xml",
        "categories/brewing/feed.xml",
        "categories/brewing/atom.xml",
    }
)


def copy_demo(root: Path) -> Site:
    """The demo site (content/ and cms.toml) copied into `root`, like the `demo_site` fixture."""
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "cms.toml", root / "cms.toml")
    return Site.load(root)


def build_site(site: Site, out: Path | None = None, **options: object) -> tuple[Index, BuildResult]:
    """Load a fresh index and build with the fixed clock (`options` go to `build`)."""
    index = Index.load(site, fill_search=False)
    options.setdefault("now", NOW)
    return index, build(site, index, out=out, **options)  # type: ignore[arg-type]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root (symlinks not followed): its bytes and mtime in ns."""
    out: dict[str, tuple[bytes, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(folder, name)
            st = path.lstat()
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            out[path.relative_to(root).as_posix()] = (data, st.st_mtime_ns)
    return out


def html_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


# -- HTML facts ------------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    """What the tests need to know of one HTML document, collected with the standard html.parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.ids: set[str] = set()
        self.title: str | None = None
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k.lower(): v or "" for k, v in attrs})
        self.elements.append(element)
        for key in ("id", "name"):
            if key in element.attrs and (key == "id" or tag == "a"):
                self.ids.add(element.attrs[key])
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self._open:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def close(self) -> None:
        super().close()
        titles = [e for e in self.elements if e.tag == "title"]
        self.title = titles[0].text if titles else None

    def find(self, tag: str, **attrs: str) -> list[Element]:
        """Elements of `tag` whose attributes include `attrs` (underscores in names become dashes)."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.elements if e.tag == tag and all(e.attrs.get(k) == v for k, v in want.items())]

    def meta(self, name: str) -> str | None:
        for e in self.elements:
            if e.tag == "meta" and name in (e.attrs.get("property"), e.attrs.get("name")):
                return e.attrs.get("content")
        return None

    def has_class(self, cls: str) -> list[Element]:
        return [e for e in self.elements if cls in e.attrs.get("class", "").split()]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def parse_html(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


# -- links -----------------------------------------------------------------------------------------

URL_ATTRS = ("href", "src", "action", "poster", "cite", "data")
ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"


def srcset_urls(value: str) -> list[str]:
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


def page_urls(page: Page) -> list[str]:
    """Every URL an HTML document references: href/src/srcset/..., meta refresh and Open Graph URLs."""
    urls: list[str] = []
    for e in page.elements:
        for attr in URL_ATTRS:
            if attr in e.attrs and not (e.tag == "object" and attr != "data"):
                urls.append(e.attrs[attr])
        if "srcset" in e.attrs:
            urls += srcset_urls(e.attrs["srcset"])
        if e.tag == "meta":
            content = e.attrs.get("content", "")
            if e.attrs.get("http-equiv", "").lower() == "refresh" and "url=" in content.lower():
                urls.append(content[content.lower().index("url=") + 4 :].strip())
            if e.attrs.get("property") in ("og:url", "og:image") or e.attrs.get("name") == "twitter:image":
                urls.append(content)
    return urls


def _xml_urls(path: Path) -> list[tuple[str, str]]:
    """(url, base) pairs of a feed or sitemap, with the HTML inside feed entries."""
    root = ET.parse(path).getroot()
    found: list[tuple[str, str]] = []
    if root.tag == "rss":
        channel = root.find("channel")
        assert channel is not None
        found.append((channel.findtext("link") or "", ""))
        for link in channel.iter(ATOM + "link"):
            found.append((link.get("href") or "", ""))
        for item in channel.iter("item"):
            link = item.findtext("link") or ""
            found.append((link, ""))
            guid = item.find("guid")
            if guid is not None and guid.get("isPermaLink", "true") == "true":
                found.append((guid.text or "", ""))
            for url in page_urls(parse_html(item.findtext(CONTENT_ENCODED) or "")):
                found.append((url, link))
    elif root.tag == ATOM + "feed":
        base = root.get(XML_BASE) or ""
        for el in root.iter():
            if el.tag == ATOM + "link":
                found.append((el.get("href") or "", base))
            elif el.tag in (ATOM + "icon", ATOM + "uri"):
                found.append((el.text or "", base))
        for entry in root.iter(ATOM + "entry"):
            found.append((entry.findtext(ATOM + "id") or "", base))
            content = entry.find(ATOM + "content")
            if content is not None:  # xml:base on <content> (relative to the feed's) resolves its links
                own = urljoin(base, content.get(XML_BASE) or "")
                for url in page_urls(parse_html(content.text or "")):
                    found.append((url, own))
    elif root.tag == SITEMAP + "urlset":
        found += [(loc.text or "", "") for loc in root.iter(SITEMAP + "loc")]
    return found


@dataclass
class LinkChecker:
    """Resolves every internal URL of a built site to a file (and a fragment to an id) in `out`."""

    out: Path
    base_url: str
    checked: int = 0
    _ids: dict[Path, set[str]] = field(default_factory=dict)

    def site_url(self, path: Path) -> str:
        rel = path.relative_to(self.out).as_posix()
        return self.base_url + "/" + (rel.removesuffix("index.html") if rel.endswith("index.html") else rel)

    def target(self, url: str, base: str) -> tuple[Path | None, str] | None:
        """(file or None if missing, fragment) for an internal URL; None for an external one."""
        absolute = urljoin(base or self.base_url + "/", url)
        parts = urlsplit(absolute)
        home = urlsplit(self.base_url)
        if parts.scheme in ("mailto", "tel") or (parts.scheme, parts.netloc) != (home.scheme, home.netloc):
            return None
        path = unquote(parts.path) or "/"
        rel = path.lstrip("/")
        candidate = self.out / (rel + "index.html" if rel == "" or rel.endswith("/") else rel)
        return (candidate if candidate.is_file() else None), parts.fragment

    def ids_of(self, path: Path) -> set[str]:
        if path not in self._ids:
            self._ids[path] = parse_html(path.read_text(encoding="utf-8")).ids
        return self._ids[path]

    def check(self, source: Path, url: str, base: str) -> str | None:
        if not url:
            return f"{source.relative_to(self.out)}: empty URL"
        hit = self.target(url, base)
        if hit is None:
            return None
        self.checked += 1
        file, fragment = hit
        where = source.relative_to(self.out).as_posix()
        if file is None:
            return f"{where}: {url} -> no such file"
        if fragment and file.suffix == ".html" and unquote(fragment) not in self.ids_of(file):
            return f"{where}: {url} -> no element with id {fragment!r}"
        return None

    def run(self) -> list[str]:
        broken: list[str] = []
        for path in sorted(p for p in self.out.rglob("*") if p.is_file()):
            if path.suffix == ".html":
                page_url = self.site_url(path)
                for url in page_urls(parse_html(path.read_text(encoding="utf-8"))):
                    broken.append(self.check(path, url, page_url) or "")
            elif path.suffix == ".xml":
                for url, base in _xml_urls(path):
                    broken.append(self.check(path, url, base) or "")
            elif path.name == "robots.txt":
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.lower().startswith("sitemap:"):
                        broken.append(self.check(path, line.split(":", 1)[1].strip(), "") or "")
            elif path.name == "_redirects":
                for line in path.read_text(encoding="utf-8").splitlines():
                    old, new, _code = line.split()
                    broken.append(self.check(path, new, "") or "")
                    broken.append(self.check(path, old, "") or "")  # each old path also has its alias page
            elif path.name == "search.json":
                for entry in json.loads(path.read_bytes()):
                    broken.append(self.check(path, entry["u"], "") or "")
        return [b for b in broken if b]


def check_links(out: Path, base_url: str = BASE_URL) -> tuple[list[str], int]:
    """(broken links, number of internal links checked) over a built site."""
    checker = LinkChecker(out, base_url)
    broken = checker.run()
    return broken, checker.checked


# -- executable sinks (T14) ------------------------------------------------------------------------

THEME_SCRIPT_PREFIXES = ("/static/", "/_cms/")
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:text", "data:application", "livescript:")
_URLISH = (*URL_ATTRS, "formaction", "background", "xlink:href", "ping", "longdesc", "lowsrc", "dynsrc", "codebase")
_SPACE = re.compile(r"[\x00-\x20\x7f-\xa0\u1680\u180e\u2000-\u200f\u2028\u2029\u202f\u205f\u3000\ufeff]+")


def _scheme_is_bad(value: str) -> bool:
    return _SPACE.sub("", value).lower().startswith(_BAD_SCHEMES)


def audit(page: Page) -> list[str]:
    """Executable sinks in a parsed document: foreign scripts, on* handlers, script URLs, srcdoc."""
    problems: list[str] = []
    for e in page.elements:
        if e.tag == "script":
            src = e.attrs.get("src")
            if src is not None and src.startswith(THEME_SCRIPT_PREFIXES) and not e.text.strip():
                continue
            if src is None and e.attrs.get("type") == "application/ld+json":
                continue
            problems.append(f"<script {e.attrs}>{e.text[:60]!r}")
        if e.tag in ("iframe", "frame", "frameset", "object", "embed", "applet", "base"):
            problems.append(f"<{e.tag} {e.attrs}>")
        for name, value in e.attrs.items():
            if name.startswith("on"):
                problems.append(f"<{e.tag} {name}={value!r}>")
            elif name == "srcdoc":
                problems.append(f"<{e.tag} srcdoc={value!r}>")
            elif name in _URLISH and _scheme_is_bad(value):
                problems.append(f"<{e.tag} {name}={value!r}>")
            elif name == "srcset" and any(_scheme_is_bad(u) for u in srcset_urls(value)):
                problems.append(f"<{e.tag} srcset={value!r}>")
            elif name == "style" and re.search(r"javascript:|expression\s*\(|url\s*\(", _SPACE.sub("", value), re.I):
                problems.append(f"<{e.tag} style={value!r}>")
        if e.tag == "meta" and e.attrs.get("http-equiv", "").lower() == "refresh":
            content = e.attrs.get("content", "")
            url = content[content.lower().index("url=") + 4 :] if "url=" in content.lower() else ""
            if _scheme_is_bad(url) or not url.strip().startswith("/"):
                problems.append(f"<meta refresh {content!r}>")
    return problems


def json_ld_blocks(text: str) -> list[str]:
    """The raw text of every <script type="application/ld+json"> (before any unescaping)."""
    return re.findall(r'<script type="application/ld\+json">(.*?)</script>', text, re.DOTALL)
