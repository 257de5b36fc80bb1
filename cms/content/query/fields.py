"""The fields a query can name (in filters, sort and fields) and how to read one off a document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from cms.content.docfields import QUERY_GETTERS, QUERY_SPELLINGS
from cms.content.docfields import TITLE_GETTER as _TITLE_GETTER
from cms.content.model import Document
from cms.content.names import is_field_name
from cms.errors import BadRequest

Getter = Callable[[Document, datetime], Any]

# Spellings of base fields in filters, sort and fields (seed 004 uses camelCase), and the base
# fields a query can name: both declared in cms/content/docfields.py.
FIELD_ALIASES = QUERY_SPELLINGS
BASE_FIELDS = tuple(QUERY_GETTERS)


def canonical_field(name: str) -> str:
    return FIELD_ALIASES.get(name, name)


def check_field_name(name: str, where: str, allow_html: bool = False) -> str:
    """`name` when a query may name it; BadRequest saying where it was written otherwise."""
    if name in BASE_FIELDS or (allow_html and name in ("html", "url", "reading_time", "snippet", "data")):
        return name
    if name.startswith("data.") and all(is_field_name(p) or p.isascii() and p.isdigit() for p in name.split(".")[1:]):
        return name
    if is_field_name(name):  # a frontmatter key written without `data.`
        return name
    raise BadRequest(f"{where}: {name!r} is not a field name")


# The filter compiler recognises this getter by identity to use the document's pre-folded title.
TITLE_GETTER: Getter = _TITLE_GETTER
_BASE_GETTERS: dict[str, Getter] = QUERY_GETTERS


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
