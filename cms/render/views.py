"""The view models: `SiteView`, everything the templates see about the site, computed once per
build, and each document, term and related-posts list as templates see them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from cms.config import Site
from cms.content.docfields import SEO_DESCRIPTION, SEO_TITLE
from cms.content.index import Index, Term
from cms.content.markdown import render_markdown
from cms.content.model import Document, Status, url_path
from cms.render.signature import globals_signature, sign
from cms.render.theme import PartialCache

RELATED = 3
RELATED_POOL = 200  # related posts come from each of the post's tags' newest 200 posts

# A tag's newest posts as the related ranking reads them: (ids, publication stamps), newest first.
Recent = tuple[tuple[str, ...], tuple[float, ...]]
# post id -> (its tags' newest lists, the ids of its related posts). The lists hold every input of
# the ranking, so an equal key gives the same answer in any later build, of any index.
KnownRelated = dict[str, tuple[tuple[Recent, ...], tuple[str, ...]]]


def render_body(doc: Document, site: Site) -> Markup:
    """The one place Markdown output becomes trusted markup: after the raw-HTML policy ran."""
    return Markup(
        render_markdown(
            doc.body, raw_html=site.render.raw_html, highlight=site.render.highlight, engine=site.render.engine
        )
    )


class SiteView:
    """Everything the templates see about the site, computed once per build (or brought up to date
    with the plan it was made for: see `plan.KeptPlan`)."""

    def __init__(
        self,
        site: Site,
        index: Index,
        env: Environment,
        *,
        now: datetime,
        drafts: bool,
        base_url: str,
        related: KnownRelated,
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
        self.globals_sig = globals_signature(site, self.base_url, drafts, self.pages)
        self._views: dict[str, dict[str, Any]] = {}
        self.partials = PartialCache(env)
        self.versions: dict[str, Document] = index.docs  # where `current` looks documents up
        self.problems: list[str] = []  # content the plan had to skip, reported as build errors
        self._recent_lists: dict[str, Recent] = {}
        self._recent_sets: dict[str, frozenset[str]] = {}
        self._stamps: dict[str, float] | None = None
        self._sigs: dict[str, str] = {}
        self._term_sigs: dict[tuple[str, str], str] = {}
        self._doc_terms: dict[tuple[str, str], tuple[str, ...]] = {}
        # Each post's related posts, kept by the caller from build to build (`BuildCache`): they
        # change only when the newest lists of the post's tags change.
        self._related_cache = related

    def current(self, value: Any) -> Any:
        """`value` with each Document in it (alone or in a tuple) replaced by its version in the index."""
        if isinstance(value, Document):
            return self.versions.get(value.id, value)
        if isinstance(value, tuple):
            return tuple(self.current(v) for v in value)
        return value

    def swap(self, old: Document, new: Document) -> None:
        """Put `new` in `old`'s place in this build's lists, and forget what was derived from `old`.
        Only for a document whose place in the site is the same (see `plan.shape`)."""
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

    def common(self) -> dict[str, Any]:
        """What every template sees."""
        info = self.site.site
        return {
            "site": {
                "title": info.title,
                "description": info.description,
                "base_url": self.base_url,
                "language": info.language,
            },
            "menu": self.menu,
            "partial_cached": self.partials,
        }

    def url_of(self, doc: Document) -> str:
        return url_path(doc.type, doc.slug, doc.lang, self.site.site.language)

    def body(self, doc: Document) -> Markup:
        """The document's rendered body, rendered once per build (a post's page and its feeds share it)."""
        html = self.html.get(doc.id)
        if html is None:
            html = self.html[doc.id] = render_body(doc, self.site)
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
            found = self._term_sigs[(taxonomy, slug)] = sign(sorted(view.items()), term.etag if term else None)[:16]
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
            "seo_title": SEO_TITLE(doc, self.now) or doc.title,
            "seo_description": SEO_DESCRIPTION(doc, self.now) or doc.excerpt,
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

    def _recent(self, slug: str) -> Recent:
        found = self._recent_lists.get(slug)
        if found is None:
            docs = self.members["tags"].get(slug, [])[:RELATED_POOL]
            found = self._recent_lists[slug] = (tuple(d.id for d in docs), tuple(map(_stamp, docs)))
            self._recent_sets[slug] = frozenset(found[0])
        return found


def _stamp(doc: Document) -> float:
    return doc.published_at.timestamp() if doc.published_at else 0.0


def _rank_related(
    own_id: str, lists: tuple[Recent, ...], sets: list[frozenset[str]], stamps: dict[str, float]
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
