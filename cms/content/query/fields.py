"""The fields a query can name (in filters, sort and fields) and how to read one off a document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from cms.content.model import Document
from cms.errors import BadRequest

Getter = Callable[[Document, datetime], Any]

# Spellings of base fields, in filters, sort and fields (seed 004 uses camelCase).
FIELD_ALIASES = {
    "date": "published_at",
    "publishedAt": "published_at",
    "published": "published_at",
    "updated": "updated_at",
    "updatedAt": "updated_at",
    "createdAt": "created_at",
    "created": "created_at",
    "expires": "expires_at",
    "expiresAt": "expires_at",
    "authorId": "author",
    "body": "content",
    "summary": "excerpt",
    "post_type": "type",
}
BASE_FIELDS = (
    "id",
    "hash",
    "type",
    "slug",
    "title",
    "status",
    "excerpt",
    "content",
    "published_at",
    "updated_at",
    "created_at",
    "expires_at",
    "author",
    "authors",
    "category",
    "categories",
    "tags",
    "lang",
    "featured_image",
    "words",
    "path",
)


def canonical_field(name: str) -> str:
    return FIELD_ALIASES.get(name, name)


def check_field_name(name: str, where: str, allow_html: bool = False) -> str:
    """`name` when a query may name it; BadRequest saying where it was written otherwise."""
    if name in BASE_FIELDS or (allow_html and name in ("html", "url", "reading_time", "snippet", "data")):
        return name
    if name.startswith("data.") and len(name) > 5 and all(name.split(".")[1:]):
        return name
    if name.isidentifier():  # a frontmatter key written without `data.`
        return name
    raise BadRequest(f"{where}: {name!r} is not a field name")


def _title(d: Document, n: datetime) -> str:
    return d.title


# The filter compiler recognises this getter by identity to use the document's pre-folded title.
TITLE_GETTER: Getter = _title

_BASE_GETTERS: dict[str, Getter] = {
    "id": lambda d, n: d.id,
    "hash": lambda d, n: d.hash,
    "type": lambda d, n: d.type,
    "slug": lambda d, n: d.slug,
    "title": TITLE_GETTER,
    "status": lambda d, n: d.status_at(n).value,
    "excerpt": lambda d, n: d.excerpt,
    "content": lambda d, n: d.body,
    "published_at": lambda d, n: d.published_at,
    "updated_at": lambda d, n: d.updated_at,
    "created_at": lambda d, n: d.created_at,
    "expires_at": lambda d, n: d.expires_at,
    "author": lambda d, n: d.author,
    "authors": lambda d, n: list(d.authors),
    "category": lambda d, n: d.categories[0] if d.categories else None,
    "categories": lambda d, n: list(d.categories),
    "tags": lambda d, n: list(d.tags),
    "lang": lambda d, n: d.lang,
    "featured_image": lambda d, n: d.featured_image,
    "words": lambda d, n: d.words,
    "path": lambda d, n: d.path,
}


def field_getter(name: str) -> Getter:
    """How to read a field off a document: base fields, `data.x.y` paths, plain frontmatter keys."""
    name = canonical_field(name)
    if name in _BASE_GETTERS:
        return _BASE_GETTERS[name]
    path = name[5:].split(".") if name.startswith("data.") else [name]
    if len(path) == 1:  # the common case, one frontmatter key: a dict lookup per document
        key = path[0]
        return lambda d, n: d.meta.get(key)

    def get(doc: Document, now: datetime) -> Any:
        value: Any = doc.meta
        for part in path:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value

    return get


def normalize_value(value: Any, tz: tzinfo = UTC) -> Any:
    """Dates in frontmatter compare as aware datetimes; a naive one is in the site's zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value
