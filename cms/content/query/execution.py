"""Query execution: `run(index, query)` -> a `Page`, answered from the index's cached visible lists and
per-term indexes (not by scanning every document), then filtered, sorted or ranked, and paged.
"""

from __future__ import annotations

import dataclasses
import html
import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from itertools import chain
from typing import Any

from cms.content.index import Index
from cms.content.model import Document, Status
from cms.content.search import snippet

from .fields import field_getter, normalize_value
from .filters import compile_filter, mentions_status
from .params import Query

VISIBLE_DEFAULT = frozenset({Status.PUBLISHED})


@dataclass
class Page:
    """One page of a query's answer, with the total it was cut from."""

    items: list[Document]
    total: int
    page: int
    per_page: int
    snippets: dict[str, str] = field(default_factory=dict)
    # The answer holds while the index is unchanged, until this moment (the next publish or expiry
    # among the documents it was chosen from); None when it must be computed again each time.
    until: datetime | None = None

    @property
    def total_pages(self) -> int:
        return _page_count(self.total, self.per_page)

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    def pagination(self) -> dict[str, Any]:
        return pagination(self.total, self.page, self.per_page)


def pagination(total: int, page: int, per_page: int) -> dict[str, Any]:
    """The `pagination` object of every paged list answer (documents, audit, deliveries)."""
    pages = _page_count(total, per_page)
    return {
        "total": total,
        "page": page,
        "per_page": per_page,
        "total_pages": pages,
        "has_next": page < pages,
        "has_prev": page > 1,
    }


def _page_count(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page)) if per_page else 1  # at least one page, even an empty one


def visible(statuses: frozenset[Status], doc: Document, now: datetime) -> bool:
    """Whether `doc` has one of `statuses` at `now`."""
    return doc.status_at(now) in statuses


def run(index: Index, query: Query, now: datetime | None = None, *, default_lang: str = "") -> Page:
    """Answer a query from the index: filter, sort, page; search results carry snippets."""
    now = now or datetime.now(UTC)
    statuses = query.statuses
    if statuses is None:
        statuses = frozenset(Status) if query.filters and mentions_status(query.filters) else VISIBLE_DEFAULT
    site_lang = default_lang or index.site.site.language
    cached = _cached_result(index, query, statuses, site_lang, now)
    matched, until = cached if cached is not None else _match(index, query, statuses, site_lang, now)
    start = (query.page - 1) * query.per_page
    items = matched[start : start + query.per_page]
    snippets = {}
    if query.search:
        for doc in items:
            snippets[doc.id] = snippet(query.search, (doc.body, doc.excerpt, doc.title)) or html.escape(doc.excerpt)
    return Page(items, len(matched), query.page, query.per_page, snippets, until)


def _cached_result(
    index: Index, query: Query, statuses: frozenset[Status], site_lang: str, now: datetime
) -> tuple[list[Document], datetime] | None:
    """The full result of a query asked before, while the index and the visible lists are unchanged,
    and the moment it stops holding.

    Lists repeat (a front page, paging through one archive): the second asker gets a slice."""
    if query.random and query.seed is None:
        return None
    hit = index.query_cache.get(("result", _result_key(query, statuses, site_lang)))
    if hit is not None and hit[1] <= now < hit[2] and index.query_cache.get("__generation__") == index.generation:
        return hit[0], hit[2]
    return None


def _result_key(query: Query, statuses: frozenset[Status], site_lang: str) -> str:
    return repr(
        (dataclasses.replace(query, page=1, per_page=1, include=(), exclude_fields=()), sorted(statuses), site_lang)
    )


def _match(
    index: Index, query: Query, statuses: frozenset[Status], site_lang: str, now: datetime
) -> tuple[list[Document], datetime | None]:
    """Every document the query selects, in its order (before paging), and until when that holds
    (None: not reusable, as for an unseeded random order)."""
    predicate = compile_filter(query.filters, index.site.tz) if query.filters else None
    candidates = _candidates(index, query)
    hits = index.search.ranked(query.search) if query.search else None  # ids, best first
    in_rank_order = hits is not None and not query.sort and not query.random
    if hits is not None and not in_rank_order:
        candidates = set(hits) if candidates is None else candidates.intersection(hits)

    sort = query.sort or (() if hits is not None else (("published_at", True),))
    primary = sort[0] if sort else None
    presorted = bool(primary and len(sort) == 1 and primary[0] in _INDEXED_SORTS)
    key, desc = (primary[0], primary[1]) if presorted and primary else ("published_at", True)
    base, positions = _visible_list(index, query.type, key, desc, statuses, query.lang, site_lang, now)
    if hits is not None and in_rank_order:  # walk the hits in their order, keep the visible ones: no sort
        where = positions()
        if candidates is None:
            pool: list[Document] = [base[p] for p in map(where.get, hits) if p is not None]
        else:
            pool = [base[p] for i in hits if i in candidates and (p := where.get(i)) is not None]
    elif candidates is None:
        pool = base
    elif len(candidates) * 8 < len(base):  # few candidates: order them by their place in the cached list
        placed = sorted((positions()[i], i) for i in candidates if i in positions())
        pool = [base[p] for p, _ in placed]
    else:
        pool = [d for d in base if d.id in candidates]
    if query.exclude_ids:
        excluded = query.exclude_ids
        pool = [d for d in pool if d.id not in excluded and d.hash not in excluded]
    matched = [d for d in pool if predicate(d, now)] if predicate is not None else pool

    if query.random:
        matched = list(matched)  # never shuffle the cached list itself
        _random.Random(query.seed).shuffle(matched)
    elif not presorted and sort:
        matched = _sorted(matched, sort, now, index.site.tz)
    # Valid as long as the visible list it came from (same index generation, no schedule passed).
    visible = index.query_cache.get((query.type, key, desc, statuses, query.lang, site_lang))
    if visible is None or (query.random and query.seed is None) or (hits is not None and not index.search.ready):
        return matched, None  # (a search that gave up waiting for the full-text fill saw only part)
    if len(index.query_cache) < 2000:
        index.query_cache[("result", _result_key(query, statuses, site_lang))] = (matched, visible[2], visible[3])
    return matched, visible[3]


_INDEXED_SORTS = ("published_at", "updated_at", "created_at", "title", "slug", "id")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _visible_list(
    index: Index,
    type_name: str | None,
    key: str,
    desc: bool,
    statuses: frozenset[Status],
    lang: str | None,
    site_lang: str,
    now: datetime,
) -> tuple[list[Document], Callable[[], dict[str, int]]]:
    """The documents a query may see, in one base order, cached until the index changes or a
    publish/expiry moment passes; and a lazy map of id -> position in that list.

    Lists are answered from this cache: a page of the newest published posts is a slice of a ready
    list, and filters run over it without re-checking status and language document by document.
    """
    cache = index.query_cache
    if cache.get("__generation__") != index.generation:
        cache.clear()
        cache["__generation__"] = index.generation
    cache_key = (type_name, key, desc, statuses, lang, site_lang)
    hit = cache.get(cache_key)
    if hit is not None and hit[2] <= now < hit[3]:
        return hit[0], hit[1]
    source = index.ordered(type_name, key)
    ordered = reversed(source) if desc else _missing_last(source, key)
    horizon = _FAR_FUTURE
    out: list[Document] = []
    for doc in ordered:
        if type_name is not None and doc.type != type_name:
            continue
        for moment in (doc.published_at, doc.expires_at):
            if moment is not None and now < moment < horizon:
                horizon = moment  # the list changes when this moment passes
        if doc.status_at(now) not in statuses:
            continue
        if lang is not None and not (doc.lang == lang or (lang == "" and doc.lang in (None, site_lang))):
            continue
        out.append(doc)
    memo: dict[str, int] = {}

    def positions() -> dict[str, int]:
        if not memo and out:
            memo.update((d.id, i) for i, d in enumerate(out))
        return memo

    cache[cache_key] = (out, positions, now, horizon)
    return out, positions


def _missing_last(source: list[Document], key: str) -> Iterator[Document]:
    """An ascending pre-sorted list with documents lacking the key (sorted first there) moved last."""
    if key not in ("published_at", "updated_at", "created_at"):
        return iter(source)
    return chain((d for d in source if getattr(d, key) is not None), (d for d in source if getattr(d, key) is None))


def _candidates(index: Index, query: Query) -> set[str] | None:
    """Ids allowed by the taxonomy filters (from the term indexes), None when there are none."""
    sets: list[set[str]] = []
    if query.category:
        members = index.term_members("categories")
        ids: set[str] = set()
        for slug in index.descendants("categories", query.category):
            ids.update(d.id for d in members.get(slug, ()))
        sets.append(ids)
    if query.tags:
        members = index.term_members("tags")
        tag_sets = [{d.id for d in members.get(t, ())} for t in query.tags]
        sets.append(set.union(*tag_sets) if query.tag_mode == "any" else set.intersection(*tag_sets))
    if query.author:
        sets.append({d.id for d in index.term_members("authors").get(query.author, ())})
    for taxonomy, slug in query.terms:
        sets.append({d.id for d in index.term_members(taxonomy).get(slug, ())})
    if not sets:
        return None
    return set.intersection(*sets)


def _sort_value(value: Any, tz: tzinfo = UTC) -> tuple[int, Any]:
    """A total order over mixed values: missing last, then by type, then by value."""
    if value is None or value == "":
        return (9, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, datetime):
        return (3, normalize_value(value, tz).timestamp())
    if isinstance(value, date):
        return (3, datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, str):
        return (4, value.casefold())
    return (5, str(value))


def _sorted(
    docs: list[Document], sort: tuple[tuple[str, bool], ...], now: datetime, tz: tzinfo = UTC
) -> list[Document]:
    out = sorted(docs, key=lambda d: d.id)
    for name, desc in reversed(sort):  # stable sorts, least significant key first
        get = field_getter(name)
        present = [d for d in out if _sort_value(get(d, now), tz)[0] != 9]
        missing = [d for d in out if _sort_value(get(d, now), tz)[0] == 9]
        present.sort(key=lambda d: _sort_value(get(d, now), tz), reverse=desc)
        out = present + missing  # missing values last in both directions
    return out
