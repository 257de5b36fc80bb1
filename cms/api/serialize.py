"""Documents and terms as the API shows them. The full JSON of a document is cached (one entry per
document, for its ETag and status), so a list answers by joining ready bytes instead of building
dicts on every request."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from cms.config import Site
from cms.content.docfields import DOC_FIELDS
from cms.content.index import Index, Term
from cms.content.markdown import render_markdown
from cms.content.model import Document, url_path
from cms.content.query import field_getter

from .encode import dumps

_CACHE_SIZE = 20_000  # documents whose JSON is kept, at most (least recently used go first)
_SWEEP_SLACK = 256  # entries of deleted documents tolerated before a sweep drops them
# The keys of a document's JSON and how each is read: cms/content/docfields.py (url and lang need the site).
_API_FIELDS = tuple((f.name, f.getter) for f in DOC_FIELDS if f.in_api)


class DocumentSerializer:
    """Document -> API dict / JSON bytes for one site.

    The cache holds one entry per document id: a new version (ETag) or status replaces the entry
    rather than adding one. Keyed by (id, etag, status), every edit left its old bytes behind until
    20,000 entries had piled up (~20 KiB each for a long post: hundreds of MB on a busy site).
    Given the index, entries of deleted documents are swept once they pass a small slack."""

    def __init__(self, site: Site, index: Index | None = None) -> None:
        self.site = site
        self.index = index
        self.base = site.site.base_url.rstrip("/")
        self._cache: OrderedDict[str, tuple[str, str, bytes]] = OrderedDict()  # id -> (etag, status, JSON)
        self._lock = threading.Lock()

    def url(self, doc: Document) -> str:
        return self.base + url_path(doc.type, doc.slug, doc.lang, self.site.site.language)

    def as_dict(self, doc: Document, now: datetime) -> dict[str, Any]:
        out = {name: get(doc, now) if get else None for name, get in _API_FIELDS}
        out["url"] = self.url(doc)
        out["lang"] = doc.lang or self.site.site.language
        return out

    def full(self, doc: Document, now: datetime) -> bytes:
        """The cached JSON bytes of the default representation."""
        status = doc.status_at(now).value
        with self._lock:
            cached = self._cache.get(doc.id)
            if cached is not None and cached[0] == doc.etag and cached[1] == status:
                self._cache.move_to_end(doc.id)
                return cached[2]
        # A copy: orjson's bytes keep its whole write buffer (8 KiB at least, 22 KiB for a 7.6 KB
        # post), which a kept entry would hold for as long as it is cached.
        body = bytes(memoryview(dumps(self.as_dict(doc, now))))
        with self._lock:
            self._cache[doc.id] = (doc.etag, status, body)
            self._cache.move_to_end(doc.id)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            if self.index is not None and len(self._cache) > len(self.index.docs) + _SWEEP_SLACK:
                self._sweep(self.index.docs)
        return body

    def _sweep(self, live: dict[str, Document]) -> None:
        """Drop the entries of documents no longer in the index (caller holds the lock)."""
        for doc_id in [d for d in self._cache if d not in live]:
            del self._cache[doc_id]

    def __len__(self) -> int:
        return len(self._cache)

    def shaped(
        self,
        doc: Document,
        now: datetime,
        *,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        html: bool = False,
        snippet: str | None = None,
        admin: bool = False,
    ) -> dict[str, Any]:
        """A representation with field selection, rendered HTML or a search snippet.

        Rendered HTML is sanitized for every caller unless the site trusts raw HTML *and* the
        caller is an admin: a read key must never receive a document's raw <script>."""
        data = self.as_dict(doc, now)
        if html or "html" in include:
            policy = self.site.render.raw_html
            if policy == "trust" and not admin:
                policy = "sanitize"
            data["html"] = render_markdown(
                doc.body, raw_html=policy, highlight=self.site.render.highlight, engine=self.site.render.engine
            )
        if snippet is not None:
            data["snippet"] = snippet
        if include:
            picked: dict[str, Any] = {"id": data["id"]}
            for name in include:
                if name in data:
                    picked[name] = data[name]
                elif name.startswith("data."):
                    picked[name] = field_getter(name)(doc, now)
                elif name in doc.meta:
                    picked[name] = doc.meta[name]
            data = picked
        for name in exclude:
            if name.startswith("data.") and isinstance(data.get("data"), dict):
                data["data"] = {k: v for k, v in data["data"].items() if k != name[5:]}
            data.pop(name, None)
        return data


def term_dict(
    index: Index, term: Term, counts: dict[str, int], *, children: list[str] | None = None, base_url: str = ""
) -> dict[str, Any]:
    path = f"/{term.taxonomy}/{term.slug}/"
    out: dict[str, Any] = {
        "slug": term.slug,
        "name": term.name,
        "description": term.description,
        "taxonomy": term.taxonomy,
        "parent": term.parent,
        "post_count": counts.get(term.slug, 0),
        "url": base_url.rstrip("/") + path,
    }
    if children is not None:
        out["children"] = children
    return out


def author_dict(term: Term, counts: dict[str, int], *, with_email: bool, base_url: str = "") -> dict[str, Any]:
    meta = term.meta
    out: dict[str, Any] = {
        "slug": term.slug,
        "name": term.name,
        "role": meta.get("role"),
        "website": meta.get("website"),
        "avatar": meta.get("avatar"),
        "bio": term.body.strip(),
        "post_count": counts.get(term.slug, 0),
        "url": base_url.rstrip("/") + f"/authors/{term.slug}/",
    }
    if with_email:
        out["email"] = meta.get("email")
    return out
