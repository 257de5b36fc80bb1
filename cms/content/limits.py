"""Limits of what one write may hold, each declared once here and listed in docs/content-format.md.

They are checked with `len()` alone, before any per-character or per-item work (slugs, terms, YAML,
built pages), so a hostile body costs no more than a valid one and its 422 names the field. The
numbers follow what Ghost and WordPress users meet: titles of a few hundred characters, a hundred
tags per post at most.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_TITLE_CHARS = 500  # a document's title (any type), a term's name, a content type's label
MAX_DESCRIPTION_CHARS = 1000  # a summary/excerpt, a term's description, a content type's description
MAX_LIST_ITEMS = 100  # tags, categories, authors, aliases and every list field of a document
MAX_ITEM_CHARS = 500  # one item of such a list (a tag name, an old URL)
MAX_TYPE_FIELDS = 200  # fields declared by one content type


def text_problems(value: Any, limit: int) -> list[str]:
    """The message for a string longer than `limit`, else none (other types are judged elsewhere)."""
    if isinstance(value, str) and len(value) > limit:
        return [f"must be at most {limit} characters, got {len(value)}"]
    return []


def list_problems(value: Any) -> list[str]:
    """Messages for a list value (or a comma-separated string, as tags may be sent) over the limits."""
    if isinstance(value, str):
        # "a,b,c" becomes three items: count the commas (one C-level pass) before anything splits it.
        count = value.count(",") + 1
        items: Iterable[Any] = value.split(",") if count <= MAX_LIST_ITEMS else ()
    elif isinstance(value, list | tuple):
        count, items = len(value), value
    else:
        return []
    if count > MAX_LIST_ITEMS:
        return [f"must have at most {MAX_LIST_ITEMS} items, got {count}"]
    longest = max((len(v) for v in items if isinstance(v, str)), default=0)
    if longest > MAX_ITEM_CHARS:
        return [f"items must be at most {MAX_ITEM_CHARS} characters, got one of {longest}"]
    return []


def over_limits(values: Mapping[str, Any], list_fields: Iterable[str]) -> dict[str, list[str]]:
    """Field-level messages for a document write's values over the limits; empty when within them.

    `values` are the API's canonical names (`title`, `excerpt`, `tags`, `data`: {...}); `list_fields`
    names every list-valued field of the type (custom ones too), wherever it is sent.
    """
    errors: dict[str, list[str]] = {}
    lists = set(list_fields)
    nested = values.get("data")
    places = [("", values), ("data.", nested if isinstance(nested, Mapping) else {})]
    for prefix, mapping in places:
        for name, value in mapping.items():
            if name == "title":
                problems = text_problems(value, MAX_TITLE_CHARS)
            elif name in ("excerpt", "summary"):
                problems = text_problems(value, MAX_DESCRIPTION_CHARS)
            elif name in lists:
                problems = list_problems(value)
            else:
                continue
            if problems:
                errors[f"{prefix}{name}"] = problems
    return errors
