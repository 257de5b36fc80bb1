"""The plan of a build: its outputs (`Planned`), the content plan that knows which documents each
output shows, and the rules for keeping the last content plan and bringing it up to date after an
edit that moved nothing (the preview's rebuild after a save) instead of planning the site again.

Planning 10,000 posts anew takes most of a second; re-planning one post's page, its neighbours,
lists and feeds a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cms.config import Site
from cms.content.index import Index, Term
from cms.content.model import Document
from cms.render.signature import globals_signature
from cms.render.views import SiteView

MAX_REPLANNED = 200  # more changed documents than this: planning everything again is as quick


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

    def remake(self, s: SiteView, numbers: Iterable[int]) -> bool:
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


@dataclass
class KeptPlan:
    """The last content plan a caller made (kept in its `BuildCache`) and what it was made from."""

    index: Index
    site: Site
    params: tuple[bool, str]  # drafts, base URL
    docs: dict[str, Document]
    terms: dict[str, dict[str, Term]]
    types: dict[str, Any]
    valid_until: datetime | None  # the next publication or expiry: statuses hold until then
    s: SiteView
    content: ContentPlan

    def brought_up_to_date(
        self,
        index: Index,
        site: Site,
        params: tuple[bool, str],
        docs: dict[str, Document],
        terms: dict[str, dict[str, Term]],
        types: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Bring this plan up to `docs` in place; False when the site's structure may have changed
        (then the site must be planned again, and this plan is no longer of use)."""
        s = self.s
        if self.index is not index or self.site is not site or self.params != params or now < s.now:
            return False
        if self.valid_until is not None and now >= self.valid_until:
            return False
        if not (_same(self.types, types) and self.terms.keys() == terms.keys()):
            return False
        if not all(_same(self.terms[t], terms[t]) for t in terms):
            return False
        if globals_signature(site, s.base_url, params[0], s.pages) != s.globals_sig:
            return False
        if self.docs.keys() != docs.keys():
            return False  # a document appeared or went away
        changed = [(self.docs[i], d) for i, d in docs.items() if self.docs[i] is not d]
        if len(changed) > MAX_REPLANNED:
            return False
        s.now = now
        if any(shape(s, old) != shape(s, new) for old, new in changed):
            return False
        for old, new in changed:
            s.swap(old, new)
        s.versions = docs
        content = self.content
        numbers = set(content.everything).union(*(content.by_doc.get(new.id, ()) for _, new in changed))
        return content.remake(s, sorted(numbers))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(a[k] is v for k, v in b.items())


def index_terms(index: Index) -> dict[str, dict[str, Term]]:
    """A copy of the index's terms, to tell later whether any was added, removed or edited."""
    return {taxonomy: dict(terms) for taxonomy, terms in index.terms.items()}


def shape(s: SiteView, doc: Document) -> tuple[Any, ...]:
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


def next_moment(docs: dict[str, Document], now: datetime) -> datetime | None:
    """The next publication or expiry after `now`: when statuses, and so the site, change by themselves."""
    moments = [m for d in docs.values() for m in (d.published_at, d.expires_at) if m is not None and m > now]
    return min(moments, default=None)
