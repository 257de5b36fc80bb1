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
import functools
import gc
import hashlib
import json
import os
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, as_completed
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from jinja2 import Environment
from markupsafe import Markup

from cms import __version__
from cms import workers as processes
from cms.config import Site
from cms.content.index import Index, Term
from cms.content.markdown import render_markdown
from cms.content.model import Document, Status, url_path
from cms.content.write import atomic_write
from cms.errors import CMSError
from cms.events.bus import Event, document_events, event_id_for
from cms.render.output import Output, digest
from cms.render.theme import PartialCache, ThemeError, make_environment, render_template, static_files, template_digest

MANIFEST_VERSION = 1
RELATED = 3
FEED_ITEMS = 20
PARALLEL_THRESHOLD = 400  # below this many bodies to render, a process pool costs more than it saves


RELATED_POOL = 200  # related posts come from each of the post's tags' newest 200 posts

# A tag's newest posts as the related ranking reads them: (ids, publication stamps), newest first.
_Recent = tuple[tuple[str, ...], tuple[float, ...]]
# index -> {post id: (its tags' newest lists, the ids of its related posts)}. The lists hold every
# input of the ranking, so an equal key gives the same answer in any later build of that index.
_RELATED_CACHE: weakref.WeakKeyDictionary[Index, dict[str, tuple[tuple[_Recent, ...], tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


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
    plan_reused: bool = False  # the previous plan of this index was brought up to date, not redone

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

    def __init__(
        self, site: Site, index: Index, env: Environment, *, now: datetime, drafts: bool, base_url: str
    ) -> None:
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
        self.globals_sig = _globals_sig(site, self.base_url, drafts, self.pages)
        self._views: dict[str, dict[str, Any]] = {}
        self.partials = PartialCache(env)
        self.versions: dict[str, Document] = index.docs  # where `current` looks documents up
        self.problems: list[str] = []  # content the plan had to skip, reported as build errors
        self._recent_lists: dict[str, _Recent] = {}
        self._recent_sets: dict[str, frozenset[str]] = {}
        self._stamps: dict[str, float] | None = None
        self._sigs: dict[str, str] = {}
        self._term_sigs: dict[tuple[str, str], str] = {}
        self._doc_terms: dict[tuple[str, str], tuple[str, ...]] = {}
        # Each post's related posts, kept from build to build of the same index: they change only
        # when the newest lists of the post's tags change.
        self._related_cache = _RELATED_CACHE.setdefault(index, {})

    def current(self, value: Any) -> Any:
        """`value` with each Document in it (alone or in a tuple) replaced by its version in the index."""
        if isinstance(value, Document):
            return self.versions.get(value.id, value)
        if isinstance(value, tuple):
            return tuple(self.current(v) for v in value)
        return value

    def swap(self, old: Document, new: Document) -> None:
        """Put `new` in `old`'s place in this build's lists, and forget what was derived from `old`.
        Only for a document whose place in the site is the same (see `_shape`)."""
        lists = [self.docs, self.by_type.get(old.type, []), self.pages]
        for taxonomy, members in self.members.items():
            lists += [members[slug] for slug in self.terms_of(old, taxonomy) if slug in members]
        for found in lists:
            for i, doc in enumerate(found):
                if doc is old:
                    found[i] = new
                    break
        for cache in (self._views, self._sigs, self.html):
            cache.pop(old.id, None)
        for taxonomy in self.members:
            self._doc_terms.pop((old.id, taxonomy), None)

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
        """What a document's view shows, as a short string: its version and status, and the terms
        and authors it names (their names, counts and bios are in the view too)."""
        sig = self._sigs.get(doc.id)
        if sig is None:
            terms = ",".join(
                self._term_sig(t, slug) for t in ("tags", "categories", "authors") for slug in self.terms_of(doc, t)
            )
            sig = self._sigs[doc.id] = f"{doc.id}:{doc.etag}:{doc.status_at(self.now).value}:{terms}"
        return sig

    def _term_sig(self, taxonomy: str, slug: str) -> str:
        found = self._term_sigs.get((taxonomy, slug))
        if found is None:
            term = self.terms.get(taxonomy, {}).get(slug)
            view = self.term_view(taxonomy, slug)
            found = self._term_sigs[(taxonomy, slug)] = _h(sorted(view.items()), term.etag if term else None)[:16]
        return found

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
        """Up to RELATED other posts sharing the most tags with `doc` (among each tag's newest
        RELATED_POOL), newest first among equals."""
        tags = self.terms_of(doc, "tags")
        lists = tuple(self._recent(slug) for slug in tags)
        cached = self._related_cache.get(doc.id)
        if cached is not None and cached[0] == lists:
            ids = cached[1]
        else:
            if self._stamps is None:
                self._stamps = {d.id: _stamp(d) for d in self.posts}
            sets = [self._recent_sets[slug] for slug in tags]
            ids = _rank_related(doc.id, lists, sets, self._stamps)
            self._related_cache[doc.id] = (lists, ids)
        return [self.index.docs[i] for i in ids]

    def _recent(self, slug: str) -> _Recent:
        found = self._recent_lists.get(slug)
        if found is None:
            docs = self.members["tags"].get(slug, [])[:RELATED_POOL]
            found = self._recent_lists[slug] = (tuple(d.id for d in docs), tuple(map(_stamp, docs)))
            self._recent_sets[slug] = frozenset(found[0])
        return found


def _stamp(doc: Document) -> float:
    return doc.published_at.timestamp() if doc.published_at else 0.0


def _rank_related(
    own_id: str, lists: tuple[_Recent, ...], sets: list[frozenset[str]], stamps: dict[str, float]
) -> tuple[str, ...]:
    """The RELATED ids found in most of `lists`, then newest, then by id. Each list is newest first,
    `sets` holds their ids and `stamps` the publication stamps the lists show.

    Most candidates share one tag with the post: those need no counting, only each list's first few.
    Set intersections (in C) find the ones that share more, so a 10,000-post site ranks in a fraction
    of a second instead of counting and sorting every candidate of every post."""
    # An id in c of the lists is in c*(c-1)/2 of their pairwise intersections: the same order as c.
    pairs: Counter[str] = Counter()
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            pairs.update(a & b)
    pairs.pop(own_id, None)
    ranked = sorted(pairs, key=lambda i: (-pairs[i], -stamps[i], i))[:RELATED]
    if len(ranked) < RELATED:
        # Posts sharing one tag: the newest of each list (its first few) are the only contenders.
        singles = {i for ids, _ in lists for i in ids[: RELATED + 1] if i != own_id and i not in pairs}
        ranked += sorted(singles, key=lambda i: (-stamps[i], i))[: RELATED - len(ranked)]
    return tuple(ranked)


T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _fixed(value: T) -> Callable[[], T]:
    """A context or body known when planning (typed, unlike a lambda with a default argument)."""
    return lambda: value


def _page_url(base: str, number: int) -> str:
    return base if number == 1 else f"{base}page/{number}/"


@dataclass
class _Group:
    """Outputs planned together by one call, and how to plan them again."""

    make: Callable[..., list[Planned]]
    args: tuple[Any, ...]  # Documents in here are swapped for their current version when made again
    deps: tuple[str, ...] | None  # ids of the documents the outputs show; None: every document
    start: int  # where the outputs are in `ContentPlan.items`
    count: int


@dataclass
class ContentPlan:
    """The outputs made from documents (pages, lists, feeds, sitemap, search index), with which
    documents each shows, so an edit that leaves the site's structure alone re-plans only those."""

    items: list[Planned] = field(default_factory=list)
    groups: list[_Group] = field(default_factory=list)
    by_doc: dict[str, list[int]] = field(default_factory=dict)  # document id -> groups showing it
    everything: list[int] = field(default_factory=list)  # groups showing every document
    wanted_aliases: list[tuple[str, str]] = field(default_factory=list)  # (document id, old URL)

    def add(self, make: Callable[..., list[Planned]], args: tuple[Any, ...], deps: Iterable[str] | None) -> None:
        made = make(*args)
        number = len(self.groups)
        kept = None if deps is None else tuple(deps)
        self.groups.append(_Group(make, args, kept, len(self.items), len(made)))
        self.items += made
        if kept is None:
            self.everything.append(number)
        else:
            for doc_id in kept:
                self.by_doc.setdefault(doc_id, []).append(number)

    def remake(self, s: _Site, numbers: Iterable[int]) -> bool:
        """Plan these groups again with the current documents; False if one no longer has the
        same outputs (then the whole site must be planned again)."""
        for number in numbers:
            group = self.groups[number]
            made = group.make(*(s.current(arg) for arg in group.args))
            before = self.items[group.start : group.start + group.count]
            if [p.path for p in made] != [p.path for p in before]:
                return False
            self.items[group.start : group.start + group.count] = made
        return True


def _globals_sig(site: Site, base_url: str, drafts: bool, pages: list[Document]) -> str:
    """What every output depends on: the code, the theme, the config, the menu."""
    return _h(
        __version__,
        template_digest(site),
        base_url,
        drafts,
        site.site,
        site.defaults,
        site.render,
        site.taxonomies,
        [(p.id, p.title, p.slug) for p in pages],
    )


@dataclass
class _Memo:
    """The last content plan of an index in this process and what it was made from."""

    site: Site
    params: tuple[bool, str]  # drafts, base URL
    docs: dict[str, Document]
    terms: dict[str, dict[str, Term]]
    types: dict[str, Any]
    valid_until: datetime | None  # the next publication or expiry: statuses hold until then
    s: _Site
    content: ContentPlan


_MEMOS: weakref.WeakKeyDictionary[Index, _Memo] = weakref.WeakKeyDictionary()
MAX_REPLANNED = 200  # more changed documents than this: planning everything again is as quick


def _content_plan(
    site: Site, index: Index, env: Environment, *, now: datetime, drafts: bool, base_url: str
) -> tuple[_Site, ContentPlan, bool]:
    """The content plan of this build: the previous one of this index with the outputs showing the
    edited documents planned again when no edit moved anything (the preview's rebuild after a
    save), else a new one. Planning 10,000 posts anew takes most of a second; re-planning one
    post's page, its neighbours, lists and feeds a few milliseconds."""
    # What the plan is made from, taken first: an edit the index takes while planning shows as a
    # change to the next build instead of being taken for planned.
    docs, terms, types = dict(index.docs), _terms(index), dict(index.types)
    memo = _MEMOS.pop(index, None)
    params = (drafts, base_url)
    reused = memo is not None and _replanned(memo, site, params, docs, terms, types, now)
    if memo is not None and reused:
        s, content = memo.s, memo.content
    else:
        s = _Site(site, index, env, now=now, drafts=drafts, base_url=base_url)
        content = plan_content(s)
    _MEMOS[index] = _Memo(site, params, docs, terms, types, _next_moment(docs, now), s, content)
    return s, content, reused


def _replanned(
    memo: _Memo,
    site: Site,
    params: tuple[bool, str],
    docs: dict[str, Document],
    terms: dict[str, dict[str, Term]],
    types: dict[str, Any],
    now: datetime,
) -> bool:
    """Bring `memo`'s plan up to `docs` in place; False when the site's structure may have changed."""
    s = memo.s
    if memo.site is not site or memo.params != params or now < s.now:
        return False
    if memo.valid_until is not None and now >= memo.valid_until:
        return False
    if not (_same(memo.types, types) and memo.terms.keys() == terms.keys()):
        return False
    if not all(_same(memo.terms[t], terms[t]) for t in terms):
        return False
    if _globals_sig(site, s.base_url, params[0], s.pages) != s.globals_sig:
        return False
    if memo.docs.keys() != docs.keys():
        return False  # a document appeared or went away
    changed = [(memo.docs[i], d) for i, d in docs.items() if memo.docs[i] is not d]
    if len(changed) > MAX_REPLANNED:
        return False
    s.now = now
    if any(_shape(s, old) != _shape(s, new) for old, new in changed):
        return False
    for old, new in changed:
        s.swap(old, new)
    s.versions = docs
    content = memo.content
    numbers = set(content.everything).union(*(content.by_doc.get(new.id, ()) for _, new in changed))
    return content.remake(s, sorted(numbers))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(a[k] is v for k, v in b.items())


def _terms(index: Index) -> dict[str, dict[str, Term]]:
    return {taxonomy: dict(terms) for taxonomy, terms in index.terms.items()}


def _shape(s: _Site, doc: Document) -> tuple[Any, ...]:
    """What decides where a document is in the site: whether it is shown, its URL, its place in
    lists (date, and title or weight for other types than posts), its terms and old URLs. An edit
    that keeps these re-plans only the outputs showing the document."""
    return (
        doc.type,
        doc.slug,
        doc.lang,
        doc.status_at(s.now),
        doc.published_at,
        doc.expires_at,
        None if doc.type == "posts" else (doc.title, doc.meta.get("weight", 0)),
        doc.aliases,
        tuple(s.index.doc_terms(doc, taxonomy) for taxonomy in s.members),
    )


def _next_moment(docs: dict[str, Document], now: datetime) -> datetime | None:
    """The next publication or expiry after `now`: when statuses, and so the site, change by themselves."""
    moments = [m for d in docs.values() for m in (d.published_at, d.expires_at) if m is not None and m > now]
    return min(moments, default=None)


def _common(s: _Site) -> dict[str, Any]:
    """What every template sees."""
    info = s.site.site
    return {
        "site": {
            "title": info.title,
            "description": info.description,
            "base_url": s.base_url,
            "language": info.language,
        },
        "menu": s.menu,
        "partial_cached": s.partials,
    }


def plan_content(s: _Site) -> ContentPlan:
    """The outputs made from documents, grouped by the documents each shows."""
    site, content = s.site, ContentPlan()
    g = s.globals_sig
    common = _common(s)

    def list_page(
        base: str,
        number: int,
        total: int,
        page_items: tuple[Document, ...],
        title: str,
        template: str,
        extra: dict[str, Any],
    ) -> list[Planned]:
        path = _page_url(base, number)

        def ctx() -> dict[str, Any]:
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
        return [Planned(path, template, sig, ctx)]

    def list_outputs(base: str, items: list[Document], title: str, template: str, extra: dict[str, Any]) -> None:
        total = max(1, -(-len(items) // s.per_page))
        for number in range(1, total + 1):
            page_items = tuple(items[(number - 1) * s.per_page : number * s.per_page])
            content.add(
                list_page, (base, number, total, page_items, title, template, extra), (d.id for d in page_items)
            )

    def doc_page(
        doc: Document, newer: Document | None, older: Document | None, related: tuple[Document, ...]
    ) -> list[Planned]:
        ctype = s.index.types.get(doc.type)
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

        def ctx() -> dict[str, Any]:
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

        return [Planned(s.url_of(doc), template, sig, ctx, needs_html=(doc.id,))]

    list_outputs("/", s.posts, site.site.title, "index.html", {"is_home": True})

    position = {d.id: i for i, d in enumerate(s.posts)}
    for doc in s.docs:
        ctype = s.index.types.get(doc.type)
        if ctype is not None and not ctype.pages:
            continue
        siblings = s.by_type.get(doc.type, [])
        i = position.get(doc.id, -1)
        newer = siblings[i - 1] if i > 0 else None
        older = siblings[i + 1] if 0 <= i < len(siblings) - 1 else None
        related = tuple(s.related(doc)) if doc.type == "posts" else ()
        shown = (doc.id, *(d.id for d in (newer, older, *related) if d))
        content.add(doc_page, (doc, newer, older, related), shown)
        content.wanted_aliases += [(doc.id, alias) for alias in doc.aliases if alias != s.url_of(doc)]

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
                newest = tuple(members[slug][:FEED_ITEMS])
                title = f"{site.site.title}: {term['name']}"
                content.add(_feeds, (s, f"/categories/{slug}/", newest, title, common), (d.id for d in newest))
        views = [s.term_view(taxonomy, slug) for slug in slugs]
        terms_page = Planned(
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
        content.add(_fixed([terms_page]), (), ())  # counts and names: the site's structure

    newest = tuple(s.posts[:FEED_ITEMS])
    content.add(_feeds, (s, "/", newest, site.site.title, common), (d.id for d in newest))
    content.add(_sitemap_and_search, (s, common), None)
    content.add(_fixed(_fixed_pages(s, common)), (), ())
    return content


def _sitemap_and_search(s: _Site, common: dict[str, Any]) -> list[Planned]:
    """The sitemap and the search index, signed by what they show, not by each document's ETag: an
    edit of a post's body (most edits) leaves both as they are, and they are a site's two largest
    outputs."""
    g = s.globals_sig
    every = [d for d in s.docs if (s.index.types.get(d.type) is None or s.index.types[d.type].pages)]
    urls = sorted((s.url_of(d), d.updated_at) for d in every)
    entries = _search_entries(s, every)
    return [
        Planned(
            "/sitemap.xml",
            "sitemap.xml",
            _h(g, "sitemap", urls),
            lambda: {**common, "urls": [{"loc": s.base_url + url, "lastmod": updated} for url, updated in urls]},
        ),
        Planned("/search.json", None, _h(g, "search.json", entries), data=lambda: _search_index(entries)),
    ]


def _fixed_pages(s: _Site, common: dict[str, Any]) -> list[Planned]:
    """Pages that show no document: the search page, the 404 page, robots.txt."""
    g = s.globals_sig
    return [
        Planned(
            "/search/",
            "search.html",
            _h(g, "search"),
            lambda: {**common, "title": "Search", "canonical": s.base_url + "/search/"},
        ),
        Planned(
            "/404.html",
            "404.html",
            _h(g, "404"),
            lambda: {**common, "title": "Not found", "canonical": s.base_url + "/404.html"},
        ),
        Planned(
            "/robots.txt",
            None,
            _h(g, "robots"),
            data=lambda: f"User-agent: *\nAllow: /\n\nSitemap: {s.base_url}/sitemap.xml\n".encode(),
        ),
    ]


def plan_files(s: _Site, content: ContentPlan) -> list[Planned]:
    """The outputs planned anew at every build: the theme's static files, uploads, and the redirects
    of old URLs (which must not shadow any other output)."""
    site, out = s.site, []
    g = s.globals_sig
    common = _common(s)
    s.problems = []
    for rel, path in static_files(site).items():
        data = path.read_bytes()
        out.append(Planned("/" + rel, None, _h("static", digest(data)), data=_fixed(data)))
    out += _uploads(site)

    # Aliases last: a page of the site always wins over an old URL that happens to equal its path.
    wanted = [(s.index.docs[i], alias) for i, alias in content.wanted_aliases if i in s.index.docs]
    taken = {_plain_key(p.path) for p in (*content.items, *out)} | {"_redirects"} if wanted else set()
    folders = {f for key in taken for f in _folders(key)}
    redirects: list[tuple[str, str]] = []
    for doc, alias in wanted:
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


def _feeds(s: _Site, base: str, newest: tuple[Document, ...], title: str, common: dict[str, Any]) -> list[Planned]:
    """The RSS and Atom feeds of a list, given its newest FEED_ITEMS documents."""
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
    unsynced = data.get("unsynced")
    if unsynced is not None and not (
        isinstance(unsynced, dict)
        and isinstance(unsynced.get("boot"), str)
        and isinstance(unsynced.get("at"), int | float)
    ):
        data["unsynced"] = {"boot": None, "at": 0.0}  # unreadable: as if from another boot (all checked again)
    if pending and isinstance(data.get("outputs"), dict):
        data["outputs"] = {k: v for k, v in data["outputs"].items() if k not in pending}
    return data, pending


def _pending_path(manifest: Path) -> Path:
    """Outputs a build is rewriting, recorded before it touches them and removed once it is done."""
    return manifest.with_suffix(".pending")


def _frozen_heap(func: F) -> F:
    """Run `func` with what exists before it (the index above all) out of the cycle collector's
    sight: it is not the build's garbage, a full collection over a 10,000-post index pauses for a
    tenth of a second, and a build allocates enough to set off several."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        gc.freeze()
        try:
            return func(*args, **kwargs)
        finally:
            gc.unfreeze()

    return cast(F, run)


@_frozen_heap
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
    stop: Callable[[], bool] | None = None,
) -> BuildResult:
    """Build the site into `out` (default: paths.output), re-rendering only what changed.

    `stop` is asked between outputs; when it says yes, BuildStopped is raised (a server shutting down)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    out = (out or site.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    mpath = manifest_path(site, out)
    stored, was_pending = _load_manifest(mpath)
    old_outputs: dict[str, str] = {} if clean else _trusted_outputs(stored)
    old_docs: dict[str, Any] | None = stored.get("docs")  # --clean re-renders, but changes are still changes
    env = make_environment(site)
    s, content, reused = _content_plan(
        site, index, env, now=now, drafts=drafts, base_url=base_url or site.site.base_url
    )
    output = Output(out)
    planned = content.items + plan_files(s, content)

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
    # The rule of cms.workers: fork the renderers directly only from a single-threaded process (`cms
    # build`); a server's preview renders the Markdown in fork-server workers and the pages here.
    forked = len(todo) >= PARALLEL_THRESHOLD and n > 1 and processes.can_fork()
    outcomes: Iterable[tuple[str, str]]
    if forked:
        outcomes = _render_forked(s, env, output, todo, n, progress)
    else:
        _check_stop(stop)
        _prerender(s, [item for _, item in todo], workers, stop)
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
        _check_stop(stop)
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
    recorded = stored.get("unsynced")
    # (Outputs not synced in another boot were all checked again by this build: nothing left pending.)
    before = recorded if recorded is not None and recorded.get("boot") == _boot_id() else None
    unsynced = _sync(out, output.written, output.removed, before) if output.written or output.removed else before
    if was_pending or signatures != stored.get("outputs") or docs_now != old_docs or unsynced != recorded:
        _write_manifest(mpath, signatures, docs_now, unsynced)
    if was_pending:
        _pending_path(mpath).unlink(missing_ok=True)
    return BuildResult(
        output.written, output.unchanged, output.removed, errors, seconds, sorted(set(changed_urls)), events, reused
    )


class BuildStopped(Exception):
    """A build cut short by its `stop` callable. Like a crash, it leaves the outputs it was about to
    rewrite listed as pending in the manifest's folder, so the next build renders them again."""


def _check_stop(stop: Callable[[], bool] | None) -> None:
    if stop is not None and stop():
        raise BuildStopped("the build was stopped")


# Outputs renamed into place are in the page cache, not yet on disk. Many of them are not synced at
# the end of the build (at 10,000 posts a system-wide sync took most of a second, more on a busy
# disk): the manifest says under which boot they were written instead, and is trusted only in that
# boot. Only a crash of the machine loses page-cache data, and it changes the boot id, so the next
# build then checks every output again (files whose bytes are right are left alone).
_WRITEBACK_S = 60.0  # the kernel writes dirty pages back within 30 s: a sync after this is cheap


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None  # (not Linux: every build syncs)


def _trusted_outputs(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's output signatures, unless they were not synced and the machine restarted since."""
    unsynced = manifest.get("unsynced")
    if unsynced is not None and (unsynced["boot"] is None or unsynced["boot"] != _boot_id()):
        return {}
    outputs = manifest.get("outputs")
    return outputs if isinstance(outputs, dict) else {}


def _sync(out: Path, written: list[str], removed: list[str], unsynced: dict[str, Any] | None) -> dict[str, Any] | None:
    """Make this build's writes durable, or record that they are not yet; returns what the manifest
    records (None: everything is on disk). `unsynced` is the record of an earlier build."""
    boot = _boot_id()
    if len(written) + len(removed) > 64:
        if boot is not None:
            return {"boot": boot, "at": time.time()}
        os.sync()
        return None
    folders = {(out / key).parent for key in written + removed}
    for path in [*(out / key for key in written), *folders]:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if path in folders else 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    if unsynced is not None and time.time() - unsynced["at"] >= _WRITEBACK_S:
        os.sync()  # an earlier large build's files: long written back by now, so this costs little
        return None
    return unsynced


def _write_manifest(
    path: Path, outputs: dict[str, str], docs: dict[str, Any] | None, unsynced: dict[str, Any] | None
) -> None:
    data = {"version": MANIFEST_VERSION, "outputs": outputs, "docs": docs, "unsynced": unsynced}
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
    # Workers share the parent's objects copy-on-write: keep their collector off those pages (the
    # plan made since `build` froze the older objects; `build` unfreezes all when it ends).
    gc.freeze()
    try:
        with processes.pool(n, inherit=True) as pool:
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
    order = {key: i for i, (key, _) in enumerate(todo)}
    output.written.sort(key=order.__getitem__)
    output.unchanged.sort(key=lambda key: order.get(key, -1))  # kept outputs (not in todo) first, as before
    return outcomes


def _prerender(s: _Site, items: list[Planned], workers: int | None, stop: Callable[[], bool] | None = None) -> None:
    """Render the Markdown of every document whose page or feed entry will be rendered, in parallel.

    With `stop`, chunks not yet started are cancelled once it says yes, and the ones running are
    waited for (small chunks: a fraction of a second): a worker is never killed in the middle of
    sending its result, which would leave the pool reading half a message, and its process exit waiting."""
    wanted = {doc_id: s.index.docs[doc_id] for item in items for doc_id in item.needs_html}
    site = s.site
    pending = [(d.id, d.body) for d in wanted.values() if d.id not in s.html]
    if len(pending) >= PARALLEL_THRESHOLD and (workers or os.cpu_count() or 1) > 1:
        n = workers or min(4, os.cpu_count() or 1)
        chunks = [pending[i :: n * 8] for i in range(n * 8)]
        options = (site.render.raw_html, site.render.highlight, site.render.engine)
        with processes.pool(n, preload=["cms.render.build"]) as pool:  # (pickled bodies in, HTML out)
            running = {pool.submit(_render_many, chunk, *options) for chunk in chunks}
            while running:
                done, running = wait_for(running, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    for doc_id, html in future.result():
                        s.html[doc_id] = Markup(html)  # rendered under the raw-HTML policy in the worker
                if running and stop is not None and stop():
                    for future in running:
                        future.cancel()
                    break
        _check_stop(stop)
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
