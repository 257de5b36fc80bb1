"""The outputs that list documents for machines: the RSS and Atom feeds of a list, the sitemap
and the search index (/search.json)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cms.content.model import Document
from cms.render.plan import Planned
from cms.render.signature import sign
from cms.render.views import SiteView

FEED_ITEMS = 20


def feeds(s: SiteView, base: str, newest: tuple[Document, ...], title: str, common: dict[str, Any]) -> list[Planned]:
    """The RSS and Atom feeds of a list, given its newest FEED_ITEMS documents."""
    sig = sign(s.globals_sig, "feed", base, title, [s.sig(d) for d in newest])

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


def sitemap_and_search(s: SiteView, common: dict[str, Any]) -> list[Planned]:
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
            sign(g, "sitemap", urls),
            lambda: {**common, "urls": [{"loc": s.base_url + url, "lastmod": updated} for url, updated in urls]},
        ),
        Planned("/search.json", None, sign(g, "search.json", entries), data=lambda: search_index(entries)),
    ]


def _search_entries(s: SiteView, docs: Iterable[Document]) -> list[tuple[str, str, str, str | None, list[str]]]:
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


def search_index(entries: list[tuple[str, str, str, str | None, list[str]]]) -> bytes:
    """The bytes of /search.json."""
    rows = [{"t": t, "u": u, "e": e, "d": d, "k": k} for t, u, e, d, k in entries]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
