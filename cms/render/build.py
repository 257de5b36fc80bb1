"""`build(site, index, ...)`: one entry point for full and incremental static builds.

Plan -> sign -> render what changed -> write -> remove what is gone -> report the change set.
Every planned output carries a signature: a hash of everything its page shows (the documents'
ETags, neighbours, terms, templates, settings). The manifest in `.cms/` keeps the signatures of
the last build, so a rebuild renders only outputs whose signature changed: an edited post
re-renders its page, the lists and feeds it appears on, the sitemap and the search index, and
nothing else. Signatures come from data, never from clocks, so the same input gives
byte-identical output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import multiprocessing
import os
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import orjson
from jinja2 import Environment
from markupsafe import Markup

from cms import __version__
from cms.config import Site
from cms.content.index import Index, Term
from cms.content.markdown import render_markdown
from cms.content.model import Document, Status, url_path
from cms.content.write import atomic_write
from cms.errors import CMSError
from cms.events.bus import Event, document_events, event_id_for
from cms.render.output import Output, digest
from cms.render.theme import ThemeError, make_environment, render_template, static_files, template_digest

MANIFEST_VERSION = 1
RELATED = 3
FEED_ITEMS = 20
PARALLEL_THRESHOLD = 400  # below this many bodies to render, a process pool costs more than it saves


# index -> {post id: (its tags' newest-200 id lists, its best related candidates with their scores)}
# post id -> (its tags' newest lists, best-scored candidates, (those documents, the chosen ones))
_Related = tuple[Any, list[tuple[str, int]], tuple[list[Document], list[Document]]]
_RELATED_CACHE: weakref.WeakKeyDictionary[Index, dict[str, _Related]] = weakref.WeakKeyDictionary()


@dataclass
class Planned:
    """One output file of the build."""

    path: str  # site path: "/posts/x/" or "/feed.xml"
    template: str | None  # None: `data` holds the bytes (static files)
    signature: str
    context: Callable[[], dict[str, Any]] = field(default=lambda: {})
    data: Callable[[], bytes] | None = None
    needs_html: tuple[str, ...] = ()  # ids of the documents whose rendered body this output shows


@dataclass
class BuildResult:
    written: list[str]
    unchanged: list[str]
    removed: list[str]
    errors: list[str]
    seconds: float
    changed_urls: list[str]
    events: list[Event]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, {len(self.removed)} removed"
            f"{f', {len(self.errors)} error(s)' if self.errors else ''} in {self.seconds:.2f} s"
        )


def _h(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()


_SIGNED: dict[tuple[Any, ...], str] = {}  # parts -> _h(*parts), across the builds of this process


def _h_kept(*parts: Hashable) -> str:
    """`_h` of hashable parts, remembered: a preview rebuild signs 10,000 pages whose parts did not
    change, and hashing their text again was a third of its planning. (Parts are strings, numbers,
    None and tuples of those, so equal keys have equal text.)"""
    sig = _SIGNED.get(parts)
    if sig is None:
        if len(_SIGNED) > _MAX_SIGNED:
            _SIGNED.clear()
        sig = _SIGNED[parts] = _h(*parts)
    return sig


_MAX_SIGNED = 200_000


def _render_body(doc: Document, site: Site) -> Markup:
    """The one place Markdown output becomes trusted markup: after the raw-HTML policy ran."""
    return Markup(
        render_markdown(
            doc.body, raw_html=site.render.raw_html, highlight=site.render.highlight, engine=site.render.engine
        )
    )


def _render_many(items: list[tuple[str, str]], raw_html: str, highlight: bool, engine: str) -> list[tuple[str, str]]:
    return [
        (doc_id, render_markdown(body, raw_html=raw_html, highlight=highlight, engine=engine)) for doc_id, body in items
    ]


class _Site:
    """Everything the templates see about the site, computed once per build."""

    def __init__(self, site: Site, index: Index, *, now: datetime, drafts: bool, base_url: str) -> None:
        self.site = site
        self.index = index
        self.now = now
        self.base_url = base_url.rstrip("/")
        statuses = {Status.PUBLISHED} | ({Status.DRAFT, Status.SCHEDULED} if drafts else set())
        self.docs = sorted(
            (d for d in index.docs.values() if d.status_at(now) in statuses and d.lang in (None, site.site.language)),
            key=lambda d: (-(d.published_at.timestamp() if d.published_at else 0), d.id),
        )
        self.by_type: dict[str, list[Document]] = {}
        for doc in self.docs:
            self.by_type.setdefault(doc.type, []).append(doc)
        self.posts = self.by_type.get("posts", [])
        self.pages = sorted(self.by_type.get("pages", []), key=lambda d: (d.meta.get("weight", 0), d.title.casefold()))
        self.html: dict[str, Markup] = {}
        self.per_page = site.defaults.per_page
        self.menu = [{"title": p.title, "url": self.url_of(p)} for p in self.pages]
        self.terms = {t: index.all_terms(t) for t in (*site.taxonomy_names, "authors")}
        self.members: dict[str, dict[str, list[Document]]] = {}
        live_ids = {d.id for d in self.docs}
        for taxonomy in (*site.taxonomy_names, "authors"):
            self.members[taxonomy] = {
                slug: [d for d in docs if d.id in live_ids and d.type == "posts"]
                for slug, docs in index.term_members(taxonomy).items()
            }
        position = {d.id: i for i, d in enumerate(self.docs)}  # self.docs is newest first already
        for members in self.members.values():  # newest first, like every list
            for docs in members.values():
                docs.sort(key=lambda d: position[d.id])
        self.globals_sig = _h(
            __version__,
            template_digest(site),
            self.base_url,
            drafts,
            site.site,
            site.defaults,
            site.render,
            site.taxonomies,
            [(p.id, p.title, p.slug) for p in self.pages],
        )
        self._views: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []  # content the plan had to skip, reported as build errors
        self._recent: dict[str, tuple[str, ...]] = {}  # tag -> ids of its newest 200 posts
        self._sigs: dict[str, str] = {}
        self._doc_terms: dict[tuple[str, str], tuple[str, ...]] = {}
        # The best related candidates of each post, kept from build to build of the same index:
        # they change only when the newest-200 lists of the post's tags change.
        self._related_cache = _RELATED_CACHE.setdefault(index, {})

    def url_of(self, doc: Document) -> str:
        return url_path(doc.type, doc.slug, doc.lang, self.site.site.language)

    def body(self, doc: Document) -> Markup:
        """The document's rendered body, rendered once per build (a post's page and its feeds share it)."""
        html = self.html.get(doc.id)
        if html is None:
            html = self.html[doc.id] = _render_body(doc, self.site)
        return html

    def terms_of(self, doc: Document, taxonomy: str) -> tuple[str, ...]:
        """`index.doc_terms`, once per document and taxonomy in a build (the plan asks often)."""
        key = (doc.id, taxonomy)
        found = self._doc_terms.get(key)
        if found is None:
            found = self._doc_terms[key] = self.index.doc_terms(doc, taxonomy)
        return found

    def sig(self, doc: Document) -> str:
        sig = self._sigs.get(doc.id)
        if sig is None:
            sig = self._sigs[doc.id] = f"{doc.id}:{doc.etag}:{doc.status_at(self.now).value}"
        return sig

    def term_name(self, taxonomy: str, slug: str) -> str:
        term = self.terms.get(taxonomy, {}).get(slug)
        return term.name if term is not None else slug

    def term_view(self, taxonomy: str, slug: str) -> dict[str, Any]:
        term = self.terms.get(taxonomy, {}).get(slug) or Term(taxonomy, slug, slug)
        return {
            "slug": slug,
            "name": term.name,
            "description": term.description,
            "taxonomy": taxonomy,
            "url": f"/{taxonomy}/{slug}/",
            "parent": term.parent,
            "count": len(self.members[taxonomy].get(slug, ())),
        }

    def view(self, doc: Document) -> dict[str, Any]:
        """A document as templates see it (no HTML body: that is added for its own page)."""
        cached = self._views.get(doc.id)
        if cached is not None:
            return cached
        author = None
        if doc.author:
            term = self.terms["authors"].get(doc.author)
            author = {
                "slug": doc.author,
                "name": term.name if term else doc.author,
                "url": f"/authors/{doc.author}/",
                "bio": term.body.strip() if term else "",
                "role": term.meta.get("role") if term else None,
            }
        view = {
            "id": doc.id,
            "hash": doc.hash,
            "type": doc.type,
            "slug": doc.slug,
            "title": doc.title,
            "url": self.url_of(doc),
            "permalink": self.base_url + self.url_of(doc),
            "excerpt": doc.excerpt,
            "date": doc.published_at,
            "updated": doc.updated_at,
            "status": doc.status_at(self.now).value,
            "draft": doc.status_at(self.now) is not Status.PUBLISHED,
            "reading_time": doc.reading_minutes,
            "words": doc.words,
            "tags": [self.term_view("tags", s) for s in self.terms_of(doc, "tags")],
            "categories": [self.term_view("categories", s) for s in self.terms_of(doc, "categories")],
            "author": author,
            "image": doc.featured_image,
            "seo_title": doc.meta.get("seo_title") or doc.title,
            "seo_description": doc.meta.get("seo_description") or doc.excerpt,
            "data": doc.data,
            "aliases": list(doc.aliases),
        }
        self._views[doc.id] = view
        return view

    def related(self, doc: Document) -> list[Document]:
        """Other posts sharing the most tags (among each tag's newest 200), newest first among equals."""
        lists = []
        for slug in self.terms_of(doc, "tags"):
            recent = self._recent.get(slug)
            if recent is None:
                recent = self._recent[slug] = tuple(d.id for d in self.members["tags"].get(slug, ())[:200])
            lists.append(recent)
        key = tuple(lists)
        cached = self._related_cache.get(doc.id)
        if cached is not None and cached[0] == key:
            best = cached[1]
            candidates, chosen = cached[2]
            # The same candidates, each still the same document object (so the same date): the same
            # answer, without sorting them again.
            if all(self.index.docs.get(d.id) is d for d in candidates):
                return chosen
        else:
            scores: Counter[str] = Counter()
            for recent in lists:
                scores.update(recent)  # counted in C: every post of a 10,000-post site asks this
            scores.pop(doc.id, None)
            # Most shared tags first, then by id: two C sorts (the second is stable) instead of a key function.
            ranked = sorted(scores.items())
            ranked.sort(key=itemgetter(1), reverse=True)
            best = ranked[: RELATED * 4]
        shared = dict(best)
        candidates = [self.index.docs[i] for i, _ in best if i in self.index.docs]
        docs = sorted(
            candidates, key=lambda d: (-shared[d.id], -(d.published_at.timestamp() if d.published_at else 0), d.id)
        )[:RELATED]
        self._related_cache[doc.id] = (key, best, (candidates, docs))
        return docs


T = TypeVar("T")


def _fixed(value: T) -> Callable[[], T]:
    """A context or body known when planning (typed, unlike a lambda with a default argument)."""
    return lambda: value


def _paginate(base: str, items: list[Document], per_page: int) -> list[tuple[int, str, list[Document], int]]:
    total_pages = max(1, -(-len(items) // per_page))
    out = []
    for number in range(1, total_pages + 1):
        path = base if number == 1 else f"{base}page/{number}/"
        out.append((number, path, items[(number - 1) * per_page : number * per_page], total_pages))
    return out


def _page_url(base: str, number: int) -> str:
    return base if number == 1 else f"{base}page/{number}/"


def plan(s: _Site) -> list[Planned]:
    """Every output of the site, each with its signature and a lazy context."""
    site, out = s.site, []
    g = s.globals_sig
    common = {
        "site": {
            "title": site.site.title,
            "description": site.site.description,
            "base_url": s.base_url,
            "language": site.site.language,
        },
        "menu": s.menu,
    }

    def list_outputs(base: str, items: list[Document], title: str, template: str, extra: dict[str, Any]) -> None:
        for number, path, page_items, total in _paginate(base, items, s.per_page):

            def ctx(
                page_items: list[Document] = page_items, number: int = number, total: int = total, path: str = path
            ) -> dict[str, Any]:
                return {
                    **common,
                    **extra,
                    "title": title,
                    "items": [s.view(d) for d in page_items],
                    "canonical": s.base_url + path,
                    "pagination": {
                        "page": number,
                        "total_pages": total,
                        "prev_url": _page_url(base, number - 1) if number > 1 else None,
                        "next_url": _page_url(base, number + 1) if number < total else None,
                    },
                }

            term = extra.get("term")
            sig = _h_kept(
                g,
                template,
                path,
                title,
                number,
                total,
                tuple(term.items()) if term else None,
                tuple(s.sig(d) for d in page_items),
            )
            out.append(Planned(path, template, sig, ctx))

    list_outputs("/", s.posts, site.site.title, "index.html", {"is_home": True})
    wanted_aliases: list[tuple[Document, str]] = []

    position = {d.id: i for i, d in enumerate(s.posts)}
    for doc in s.docs:
        ctype = s.index.types.get(doc.type)
        if ctype is not None and not ctype.pages:
            continue
        siblings = s.by_type.get(doc.type, [])
        i = position.get(doc.id, -1)
        newer = siblings[i - 1] if i > 0 else None
        older = siblings[i + 1] if 0 <= i < len(siblings) - 1 else None
        related = s.related(doc) if doc.type == "posts" else []
        template = {"posts": "single.html", "pages": "page.html"}.get(doc.type) or (
            ctype.template if ctype and ctype.template else "entry.html"
        )
        author_term = s.terms["authors"].get(doc.author or "")
        sig = _h_kept(
            g,
            template,
            s.sig(doc),
            tuple(s.sig(d) for d in (newer, older, *related) if d),
            tuple((slug, s.term_name(t, slug)) for t in ("tags", "categories") for slug in s.terms_of(doc, t)),
            author_term.etag if author_term else None,
        )

        def ctx(
            doc: Document = doc,
            newer: Document | None = newer,
            older: Document | None = older,
            related: list[Document] = related,
        ) -> dict[str, Any]:
            view = dict(s.view(doc))
            view["html"] = s.body(doc)
            json_ld = {
                "@context": "https://schema.org",
                "@type": "Article" if doc.type == "posts" else "WebPage",
                "headline": doc.title,
                "url": view["permalink"],
                "description": view["seo_description"],
                "datePublished": doc.published_at.isoformat() if doc.published_at else None,
                "dateModified": doc.updated_at.isoformat() if doc.updated_at else None,
                "author": {"@type": "Person", "name": view["author"]["name"]} if view["author"] else None,
            }
            return {
                **common,
                "page": view,
                "title": view["seo_title"],
                "canonical": view["permalink"],
                "newer": s.view(newer) if newer else None,
                "older": s.view(older) if older else None,
                "related": [s.view(r) for r in related],
                "json_ld": json_ld,
            }

        out.append(Planned(s.url_of(doc), template, sig, ctx, needs_html=(doc.id,)))
        wanted_aliases += [(doc, alias) for alias in doc.aliases if alias != s.url_of(doc)]

    for type_name, docs in sorted(s.by_type.items()):
        ctype = s.index.types.get(type_name)
        if type_name in ("posts", "pages") or (ctype is not None and not ctype.pages):
            continue
        label = ctype.label if ctype and ctype.label else type_name.title()
        list_outputs(
            f"/{type_name}/", sorted(docs, key=lambda d: d.title.casefold()), label, "list.html", {"kind": "type"}
        )

    for taxonomy in (*site.taxonomy_names, "authors"):
        members = s.members[taxonomy]
        slugs = sorted((slug for slug, docs in members.items() if docs), key=str.casefold)
        for slug in slugs:
            term = s.term_view(taxonomy, slug)
            list_outputs(
                f"/{taxonomy}/{slug}/", members[slug], term["name"], "list.html", {"kind": taxonomy, "term": term}
            )
            if taxonomy == "categories":
                out += _feeds(s, f"/categories/{slug}/", members[slug], f"{site.site.title}: {term['name']}", common)
        views = [s.term_view(taxonomy, slug) for slug in slugs]
        out.append(
            Planned(
                f"/{taxonomy}/",
                "terms.html",
                _h(g, "terms", taxonomy, [(v["slug"], v["name"], v["count"]) for v in views]),
                _fixed(
                    {
                        **common,
                        "terms": views,
                        "taxonomy": taxonomy,
                        "title": taxonomy.title(),
                        "canonical": f"{s.base_url}/{taxonomy}/",
                    }
                ),
            )
        )

    out += _feeds(s, "/", s.posts, site.site.title, common)
    every = [d for d in s.docs if (s.index.types.get(d.type) is None or s.index.types[d.type].pages)]
    # The sitemap and the search index are signed by what they show, not by each document's ETag:
    # an edit of a post's body (most edits) leaves both as they are, and they are the two largest
    # outputs of a site.
    urls = sorted((s.url_of(d), d.updated_at) for d in every)
    out.append(
        Planned(
            "/sitemap.xml",
            "sitemap.xml",
            _h(g, "sitemap", urls),
            lambda: {**common, "urls": [{"loc": s.base_url + url, "lastmod": updated} for url, updated in urls]},
        )
    )
    entries = _search_entries(s, every)
    out.append(Planned("/search.json", None, _h(g, "search.json", entries), data=lambda: _search_index(entries)))
    out.append(
        Planned(
            "/search/",
            "search.html",
            _h(g, "search"),
            lambda: {**common, "title": "Search", "canonical": s.base_url + "/search/"},
        )
    )
    out.append(
        Planned(
            "/404.html",
            "404.html",
            _h(g, "404"),
            lambda: {**common, "title": "Not found", "canonical": s.base_url + "/404.html"},
        )
    )
    out.append(
        Planned(
            "/robots.txt",
            None,
            _h(g, "robots"),
            data=lambda: f"User-agent: *\nAllow: /\n\nSitemap: {s.base_url}/sitemap.xml\n".encode(),
        )
    )
    for rel, path in static_files(site).items():
        content = path.read_bytes()
        out.append(Planned("/" + rel, None, _h("static", digest(content)), data=_fixed(content)))
    out += _uploads(site)

    # Aliases last: a page of the site always wins over an old URL that happens to equal its path.
    taken = {_plain_key(p.path) for p in out} | {"_redirects"} if wanted_aliases else set()
    folders = {f for key in taken for f in _folders(key)}
    redirects: list[tuple[str, str]] = []
    for doc, alias in wanted_aliases:
        alias_path = alias if isinstance(alias, str) and alias.endswith((".html", "/")) else f"{alias}/"
        key = _site_key(alias_path)
        problem = _alias_problem(alias, key, taken, folders)
        if problem or key is None:
            s.problems.append(f"{site.paths.content}/{doc.path}:{_line_of_key(site, doc, 'aliases')}: {problem}")
            continue
        taken.add(key)
        folders.update(_folders(key))
        target = s.url_of(doc)
        redirects.append((alias, target))
        out.append(
            Planned(
                alias_path,
                "alias.html",
                _h(g, "alias", alias, target),
                _fixed({**common, "target": target, "canonical": s.base_url + target}),
            )
        )
    redirects.sort()
    out.append(
        Planned(
            "/_redirects", None, _h(g, redirects), data=lambda: "".join(f"{a} {t} 301\n" for a, t in redirects).encode()
        )
    )
    return out


def _plain_key(path: str) -> str:
    """The output file of a site path the plan made itself (no checks: see `_site_key`)."""
    clean = path.lstrip("/")
    return clean + "index.html" if not clean or clean.endswith("/") else clean


def _site_key(path: str) -> str | None:
    """The output file of a site path (`/a/` -> `a/index.html`), None if it is no clean path inside the site."""
    clean = path.lstrip("/")
    if not clean or clean.endswith("/"):
        clean += "index.html"
    parts = clean.split("/")
    if any(p in ("", ".", "..") or p != p.strip() or any(c in p for c in "\\?#") for p in parts):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in clean):
        return None
    return clean


def _folders(key: str) -> list[str]:
    """The folders an output file lives in: `a/b/index.html` -> [`a`, `a/b`]."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _alias_problem(alias: object, key: str | None, taken: set[str], folders: set[str]) -> str | None:
    """Why an alias gets no redirect page (None: it is fine). `taken`: output files; `folders`: their folders."""
    if not isinstance(alias, str) or not alias.startswith("/") or alias.startswith("//"):
        return f"alias {alias!r} is not a site path (it must start with one /); skipped"
    if key is None:
        return f"alias {alias!r} is not allowed (.. or empty segments, \\, ?, # or control characters); skipped"
    if key in taken or key in folders or any(f in taken for f in _folders(key)):
        return f"alias {alias!r} is already the path of another output; skipped"
    return None


def _line_of_key(site: Site, doc: Document, key: str) -> int:
    """The line of `key:` in a document's frontmatter (1 when not found): for messages only."""
    try:
        lines = (site.content_dir / doc.path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 1
    return next((n for n, line in enumerate(lines, 1) if line.startswith(f"{key}:")), 1)


PUBLISHED_UPLOADS = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".svg", ".pdf", ".mp4", ".webm", ".mp3")


def _uploads(site: Site) -> list[Planned]:
    """The media library's files (originals and derivatives, never the YAML sidecars) under /uploads/.

    Signed by size and mtime so an unchanged library costs a stat per file, not a read."""
    root = site.uploads_dir
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in PUBLISHED_UPLOADS:
            continue
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        st = path.stat()
        rel = path.relative_to(root).as_posix()
        out.append(
            Planned(
                f"/uploads/{rel}",
                None,
                _h("upload", rel, st.st_size, st.st_mtime_ns),
                data=path.read_bytes,
            )
        )
    return out


def _feeds(s: _Site, base: str, items: list[Document], title: str, common: dict[str, Any]) -> list[Planned]:
    newest = items[:FEED_ITEMS]
    sig = _h(s.globals_sig, "feed", base, title, [s.sig(d) for d in newest])

    def ctx() -> dict[str, Any]:
        entries = []
        for doc in newest:
            view = dict(s.view(doc))
            view["html"] = s.body(doc)
            entries.append(view)
        moments = [m for d in newest if (m := d.updated_at or d.published_at) is not None]
        updated = max(moments, default=datetime(1970, 1, 1, tzinfo=UTC))  # the newest entry, never the build time
        return {
            **common,
            "title": title,
            "entries": entries,
            "updated": updated,
            "feed_url": s.base_url + base + "feed.xml",
            "atom_url": s.base_url + base + "atom.xml",
            "home_url": s.base_url + base,
        }

    ids = tuple(d.id for d in newest)
    return [
        Planned(base + "feed.xml", "rss.xml", sig, ctx, needs_html=ids),
        Planned(base + "atom.xml", "atom.xml", sig, ctx, needs_html=ids),
    ]


def _search_entries(s: _Site, docs: Iterable[Document]) -> list[tuple[str, str, str, str | None, list[str]]]:
    """What /search.json holds of each document: title, url, excerpt, date, tags and categories."""
    return [
        (
            d.title,
            s.url_of(d),
            d.excerpt,
            d.published_at.date().isoformat() if d.published_at else None,
            [*d.tags, *d.categories],
        )
        for d in docs
    ]


def _search_index(entries: list[tuple[str, str, str, str | None, list[str]]]) -> bytes:
    rows = [{"t": t, "u": u, "e": e, "d": d, "k": k} for t, u, e, d, k in entries]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


# -- the build -------------------------------------------------------------------------------


def manifest_path(site: Site, out: Path) -> Path:
    return site.state_dir / "build" / (hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16] + ".json")


def _load_manifest(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The last build's manifest, without the outputs an interrupted build was rewriting; and those."""
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        data = {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        data = {}
    try:
        pending = set(json.loads(_pending_path(path).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError, TypeError):
        pending = set()
    if pending and isinstance(data.get("outputs"), dict):
        data["outputs"] = {k: v for k, v in data["outputs"].items() if k not in pending}
    return data, pending


def _pending_path(manifest: Path) -> Path:
    """Outputs a build is rewriting, recorded before it touches them and removed once it is done."""
    return manifest.with_suffix(".pending")


def build(
    site: Site,
    index: Index,
    *,
    out: Path | None = None,
    drafts: bool = False,
    base_url: str | None = None,
    clean: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> BuildResult:
    """Build the site into `out` (default: paths.output), re-rendering only what changed."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    out = (out or site.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    mpath = manifest_path(site, out)
    stored, was_pending = _load_manifest(mpath)
    old_outputs: dict[str, str] = {} if clean else stored.get("outputs", {})
    old_docs: dict[str, Any] | None = stored.get("docs")  # --clean re-renders, but changes are still changes
    s = _Site(site, index, now=now, drafts=drafts, base_url=base_url or site.site.base_url)
    env = make_environment(site)
    output = Output(out)
    planned = plan(s)

    errors: list[str] = list(s.problems)

    todo = []
    for item in planned:
        try:
            key = output.key(item.path)
        except CMSError as exc:  # a path that would leave the output folder or pass a symlink
            errors.append(f"{item.path}: {exc}")
            continue
        if old_outputs.get(key) == item.signature and output.exists(key):
            output.keep(key)
        else:
            todo.append((key, item))
    if todo and stored.get("outputs"):
        # Record the outputs about to be rewritten before touching them (a small file, not the whole
        # manifest): if this build is interrupted, the next one renders them again instead of
        # trusting a folder whose files no longer match the manifest's signatures.
        was_pending |= {key for key, _ in todo}
        atomic_write(_pending_path(mpath), json.dumps(sorted(was_pending)).encode())
    signatures: dict[str, str] = {}
    changed_urls: list[str] = []
    n = workers or min(4, os.cpu_count() or 1)
    forked = len(todo) >= PARALLEL_THRESHOLD and n > 1 and _can_fork()
    outcomes: Iterable[tuple[str, str]]
    if forked:
        outcomes = _render_forked(s, env, output, todo, n, progress)
    else:
        _prerender(s, [item for _, item in todo], workers)
        outcomes = (_render_one(s, env, output, key, item) for key, item in todo)
    for done, ((key, item), (status, message)) in enumerate(zip(todo, outcomes, strict=True), 1):
        if status == "error":
            errors.append(message)
            continue
        signatures[key] = item.signature
        if status == "written":
            changed_urls.append(s.base_url + "/" + key.removesuffix("index.html"))
        if progress and not forked:  # (the forked workers report their own progress)
            progress(done, len(todo))
    for key in output.unchanged:
        signatures.setdefault(key, old_outputs.get(key, ""))
    output.remove_stale(set(old_outputs) | was_pending | (_existing_files(out) if clean else set()))
    changed_urls += [s.base_url + "/" + k.removesuffix("index.html") for k in output.removed]

    docs_now = {d.id: {"etag": d.etag, "type": d.type, "status": d.status_at(now).value} for d in s.docs}
    events = _change_events(old_docs, docs_now, index, now, s)
    seconds = time.perf_counter() - started
    events.append(
        Event(
            "build.completed",
            {
                "build": {
                    "written": len(output.written),
                    "unchanged": len(output.unchanged),
                    "removed": len(output.removed),
                    "errors": len(errors),
                    "seconds": round(seconds, 3),
                    "changed_urls": sorted(set(changed_urls)),
                }
            },
            source="build",
        )
    )
    if output.written or output.removed:
        _sync(out, output.written, output.removed)  # renamed into place without fsync: made durable once
    if was_pending or signatures != stored.get("outputs") or docs_now != old_docs:
        _write_manifest(mpath, signatures, docs_now)
    if was_pending:
        _pending_path(mpath).unlink(missing_ok=True)
    return BuildResult(
        output.written, output.unchanged, output.removed, errors, seconds, sorted(set(changed_urls)), events
    )


def _sync(out: Path, written: list[str], removed: list[str]) -> None:
    """Make this build's writes durable: each file and folder for a few, one system-wide sync for many."""
    if len(written) + len(removed) > 64:
        os.sync()
        return
    folders = {(out / key).parent for key in written + removed}
    for path in [*(out / key for key in written), *folders]:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if path in folders else 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_manifest(path: Path, outputs: dict[str, str], docs: dict[str, Any] | None) -> None:
    data = {"version": MANIFEST_VERSION, "outputs": outputs, "docs": docs}
    atomic_write(path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))  # (at 10,000 posts, 10x json's speed)


def _existing_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink()}


def _render_one(s: _Site, env: Environment, output: Output, key: str, item: Planned) -> tuple[str, str]:
    """Render and write one output: ("written" | "unchanged" | "error", the error's message)."""
    try:
        data = (
            item.data() if item.data is not None else render_template(env, item.template or "", item.context()).encode()
        )
    except (ThemeError, CMSError) as exc:
        return "error", str(exc)
    before = len(output.written)
    try:
        output.write(item.path, data)
    except (CMSError, OSError) as exc:  # e.g. a symlink or a file where a folder must go
        return "error", f"{key}: {exc}"
    return ("written" if len(output.written) > before else "unchanged"), ""


def _can_fork() -> bool:
    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


# What forked render workers inherit: the plan and everything it refers to, shared copy-on-write
# (contexts are closures over the index, so they cannot be pickled; a fork needs no pickling).
_FORKED: tuple[_Site, Environment, Path, list[tuple[str, Planned]]] | None = None


def _render_chunk(indices: list[int]) -> list[tuple[int, str, str, str]]:
    """In a forked worker: render and write these outputs of the plan; (index, status, message, key)."""
    assert _FORKED is not None
    s, env, root, todo = _FORKED
    output = Output(root)
    results = []
    for i in indices:
        key, item = todo[i]
        status, message = _render_one(s, env, output, key, item)
        results.append((i, status, message, key))
    return results


def _render_forked(
    s: _Site,
    env: Environment,
    output: Output,
    todo: list[tuple[str, Planned]],
    n: int,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[str, str]]:
    """Render and write `todo` in `n` forked processes (Markdown, highlighting, templates and writes
    all in parallel); outcomes in plan order, so the build's report does not depend on timing."""
    global _FORKED
    outcomes: list[tuple[str, str]] = [("error", "")] * len(todo)
    wanted = []
    for i, (key, _) in enumerate(todo):
        if key in output.seen_keys:  # two outputs of the plan want one path: a bug, reported like Output.write
            outcomes[i] = ("error", f"two outputs of this build want the same path: {key}")
        else:
            output.seen_keys.add(key)
            wanted.append(i)
    batches = [wanted[i :: n * 8] for i in range(n * 8)]
    for name in env.list_templates(filter_func=lambda name: name.endswith((".html", ".xml"))):
        env.get_template(name)  # compiled once here, not once per worker
    _FORKED = (s, env, output.root, todo)
    gc.freeze()  # workers share the parent's objects copy-on-write: keep their collector off those pages
    try:
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
            done = 0
            for future in as_completed([pool.submit(_render_chunk, batch) for batch in batches if batch]):
                for i, status, message, key in future.result():
                    outcomes[i] = (status, message)
                    if status == "written":
                        output.written.append(key)
                    elif status == "unchanged":
                        output.unchanged.append(key)
                    done += 1
                if progress:
                    progress(done, len(todo))
    finally:
        _FORKED = None
        gc.unfreeze()
    order = {key: i for i, (key, _) in enumerate(todo)}
    output.written.sort(key=order.__getitem__)
    output.unchanged.sort(key=lambda key: order.get(key, -1))  # kept outputs (not in todo) first, as before
    return outcomes


def _prerender(s: _Site, items: list[Planned], workers: int | None) -> None:
    """Render the Markdown of every document whose page or feed entry will be rendered, in parallel."""
    wanted = {doc_id: s.index.docs[doc_id] for item in items for doc_id in item.needs_html}
    site = s.site
    pending = [(d.id, d.body) for d in wanted.values() if d.id not in s.html]
    if len(pending) >= PARALLEL_THRESHOLD and (workers or os.cpu_count() or 1) > 1:
        n = workers or min(4, os.cpu_count() or 1)
        chunks = [pending[i :: n * 4] for i in range(n * 4)]
        with ProcessPoolExecutor(n) as pool:
            results = pool.map(
                _render_many,
                chunks,
                [site.render.raw_html] * len(chunks),
                [site.render.highlight] * len(chunks),
                [site.render.engine] * len(chunks),
            )
            for chunk in results:
                for doc_id, html in chunk:
                    s.html[doc_id] = Markup(html)  # rendered under the raw-HTML policy in the worker
    else:
        for doc_id, _ in pending:
            s.html[doc_id] = _render_body(s.index.docs[doc_id], site)


def _change_events(
    before: dict[str, Any] | None, now_docs: dict[str, Any], index: Index, now: datetime, s: _Site
) -> list[Event]:
    """Documents published, updated or removed since the previous build (none on a first build)."""
    if before is None:
        return []
    events: list[Event] = []
    url = lambda d: s.base_url + s.url_of(d)  # noqa: E731
    for doc_id, info in sorted(now_docs.items()):
        doc = index.docs[doc_id]
        old = before.get(doc_id)
        if old is None:
            events += [
                e for e in document_events(None, doc, now, source="build", url=url) if e.name.endswith(".published")
            ]
        elif old["etag"] != info["etag"]:
            # Only the new version is at hand; the id is made from both ETags, as the store and
            # the watcher make it, so a receiver that got this change from them deduplicates it.
            events += [
                dataclasses.replace(e, id=event_id_for(doc_id, info["etag"], old["etag"], e.name))
                for e in document_events(doc, doc, now, source="build", url=url)
            ]
    for doc_id, old in sorted(before.items()):
        if doc_id not in now_docs:
            gone = index.docs.get(doc_id)
            kind = {"posts": "post", "pages": "page"}.get(old.get("type", ""), "entry")
            data = {
                kind: {
                    "id": doc_id,
                    "type": old.get("type"),
                    "title": gone.title if gone else None,
                    "slug": gone.slug if gone else None,
                    "status": gone.status_at(now).value if gone else "deleted",
                }
            }
            # Still a file, only no longer public (draft, scheduled again, expired): unpublished.
            # Trashed or gone: deleted.
            status = gone.status_at(now) if gone else None
            action = "unpublished" if status in (Status.DRAFT, Status.SCHEDULED, Status.EXPIRED) else "deleted"
            name = f"{kind}.{action}"
            new_etag = gone.etag if gone and action == "unpublished" else None
            events.append(
                Event(name, data, id=event_id_for(doc_id, new_etag, old.get("etag"), name), source="build", key=doc_id)
            )
    return events
