"""The document fields: every attribute a document shows, declared once with its spellings, how to
read it, its JSON Schema and where it appears. Pure: no I/O.

From this table come the frontmatter aliases (`model.ALIASES`), the API input aliases
(`store.input`), the query engine's field names, aliases and getters (`query.fields`), the API's
document JSON (`api.serialize`) and its schema (`api.openapi`), and the built page's SEO title and
description (`render.views`). A new base field is one row here plus the code that writes it.

Getters take a `cms.content.model.Document` (typed `Any`: model.py derives its aliases from this
module, so this one cannot import it) and the moment of the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

Getter = Callable[[Any, datetime], Any]


class Status(StrEnum):
    """The values of a document's `status` field."""

    DRAFT = "draft"
    PUBLISHED = "published"
    SCHEDULED = "scheduled"
    EXPIRED = "expired"
    TRASH = "trash"


_STRINGS = {"type": "array", "items": {"type": "string"}}
_DATE_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STRING_OR_NULL = {"type": ["string", "null"]}


@dataclass(frozen=True, slots=True)
class DocField:
    """One base field of a document as the API and the query engine name it."""

    name: str
    getter: Getter | None  # None: the adapter computes it (the URL needs the site's base URL)
    schema: dict[str, Any]  # the JSON Schema of the value in the API's document JSON
    # Frontmatter keys that hold it, first one wins and is written (Hugo's names where Hugo has one).
    spellings: tuple[str, ...] = ()
    input_spellings: tuple[str, ...] = ()  # other names an API/CLI write accepts for it
    query_spellings: tuple[str, ...] = ()  # other names filters, sort and fields accept for it
    in_api: bool = True  # a key of the API's document JSON
    queryable: bool = True  # filters, sort and fields may name it (with its getter)


def _title(d: Any, n: datetime) -> Any:
    return d.title


def _meta_or(keys: tuple[str, ...]) -> Getter:
    """`meta[k1] or meta[k2] or ...`: the first written spelling with a value."""

    def get(d: Any, n: datetime) -> Any:
        value = None
        for key in keys:
            value = d.meta.get(key)
            if value:
                return value
        return value

    return get


_SEO_TITLE = ("seo_title", "meta_title")
_SEO_DESCRIPTION = ("seo_description", "meta_description")
# The API's seo_title and the built page's <title> read the same getter (a meta_title reaches both).
SEO_TITLE = _meta_or(_SEO_TITLE)
SEO_DESCRIPTION = _meta_or(_SEO_DESCRIPTION)

# In the order of the API's document JSON.
DOC_FIELDS: tuple[DocField, ...] = (
    DocField("id", lambda d, n: d.id, {"type": "string", "description": "Permanent id (ULID)"}),
    DocField(
        "hash",
        lambda d, n: d.hash,
        {"type": "string", "pattern": "^[0-9a-f]{12}$", "description": "12-hex short hash of the id"},
    ),
    DocField("type", lambda d, n: d.type, {"type": "string"}, query_spellings=("post_type",)),
    DocField("slug", lambda d, n: d.slug, {"type": "string"}),
    DocField("title", _title, {"type": "string"}),
    DocField("status", lambda d, n: d.status_at(n).value, {"enum": [s.value for s in Status]}),
    DocField(
        "excerpt",
        lambda d, n: d.excerpt,
        {"type": "string"},
        spellings=("summary", "excerpt", "description"),
        input_spellings=("summary", "description"),
        query_spellings=("summary",),
    ),
    DocField(
        "content",
        lambda d, n: d.body,
        {"type": "string", "description": "Markdown body"},
        input_spellings=("body",),
        query_spellings=("body",),
    ),
    DocField("category", lambda d, n: d.categories[0] if d.categories else None, _STRING_OR_NULL),
    DocField(
        "categories",
        lambda d, n: list(d.categories),
        _STRINGS,
        spellings=("categories", "category"),
        input_spellings=("category", "category_id", "categoryId"),
    ),
    DocField("tags", lambda d, n: list(d.tags), _STRINGS),
    DocField(
        "author",
        lambda d, n: d.author,
        _STRING_OR_NULL,
        spellings=("author", "authors"),
        input_spellings=("authorId", "author_id"),
        query_spellings=("authorId",),
    ),
    DocField("authors", lambda d, n: list(d.authors), _STRINGS),
    DocField(
        "featured_image",
        lambda d, n: d.featured_image,
        _STRING_OR_NULL,
        spellings=("featured_image", "image", "cover", "thumbnail"),
        input_spellings=("thumbnail", "image"),
    ),
    DocField(
        "seo_title",
        SEO_TITLE,
        _STRING_OR_NULL,
        spellings=_SEO_TITLE,
        input_spellings=("meta_title",),
        queryable=False,
    ),
    DocField(
        "seo_description",
        SEO_DESCRIPTION,
        _STRING_OR_NULL,
        spellings=_SEO_DESCRIPTION,
        input_spellings=("meta_description",),
        queryable=False,
    ),
    DocField(
        "published_at",
        lambda d, n: d.published_at,
        _DATE_OR_NULL,
        spellings=("date", "published_at", "publishDate", "publishedAt", "pubDate"),
        input_spellings=("date", "publishedAt", "publishDate"),
        query_spellings=("date", "publishedAt", "published"),
    ),
    DocField(
        "created_at",
        lambda d, n: d.created_at,
        _DATE_OR_NULL,
        spellings=("created", "created_at", "createdAt"),
        query_spellings=("createdAt", "created"),
    ),
    DocField(
        "updated_at",
        lambda d, n: d.updated_at,
        _DATE_OR_NULL,
        spellings=("updated", "updated_at", "lastmod", "updatedAt", "modified"),
        query_spellings=("updated", "updatedAt"),
    ),
    DocField(
        "expires_at",
        lambda d, n: d.expires_at,
        _DATE_OR_NULL,
        spellings=("expires", "expires_at", "expiryDate", "expiresAt"),
        input_spellings=("expires", "expiresAt"),
        query_spellings=("expires", "expiresAt"),
    ),
    DocField("url", None, {"type": "string", "description": "URL on the built site"}, queryable=False),
    DocField("lang", lambda d, n: d.lang, {"type": "string"}),  # the API shows the site's language for None
    DocField("aliases", lambda d, n: list(d.aliases), _STRINGS, queryable=False),
    DocField("reading_time", lambda d, n: d.reading_minutes, {"type": "integer", "minimum": 1}, queryable=False),
    DocField("words", lambda d, n: d.words, {"type": "integer", "minimum": 0}),
    DocField("data", lambda d, n: d.data, {"type": "object"}, queryable=False),  # the API types it per content type
    DocField("path", lambda d, n: d.path, {"type": "string"}, in_api=False),
)
DOC_FIELD = {f.name: f for f in DOC_FIELDS}

# The three spelling tables: frontmatter key(s) per attribute, API input and query names -> field.
FRONTMATTER_SPELLINGS = {f.name: f.spellings for f in DOC_FIELDS if f.spellings}
INPUT_SPELLINGS = {s: f.name for f in DOC_FIELDS for s in f.input_spellings}
QUERY_SPELLINGS = {s: f.name for f in DOC_FIELDS for s in f.query_spellings}
QUERY_GETTERS: dict[str, Getter] = {f.name: f.getter for f in DOC_FIELDS if f.queryable and f.getter}
TITLE_GETTER: Getter = _title  # the query's filter compiler recognises it to use the pre-folded title
