"""API and CLI input into frontmatter: accepted spellings, limits, dates, lists, statuses.

A client sends canonical names or one of their aliases (`date`, `summary`, `body`, ...); the
frontmatter keeps the spelling a file already uses (`frontmatter_key`), so a person's `date:` stays
`date:`. Each bad field is named in one Invalid with every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cms.content.docfields import INPUT_SPELLINGS
from cms.content.frontmatter import DELETE
from cms.content.limits import over_limits
from cms.content.model import ALIASES, ContentType, frontmatter_key, to_datetime
from cms.content.names import is_field_name, slugify
from cms.errors import BadRequest, Invalid

if TYPE_CHECKING:
    from cms.config import Site
    from cms.content.store.session import WriteSession

# Fields a client may send back from a GET that the store computes itself: accepted, ignored.
READ_ONLY = frozenset(
    {
        "hash",
        "type",
        "url",
        "html",
        "words",
        "reading_time",
        "snippet",
        "path",
        "etag",
        "created_at",
        "updated_at",
        "createdAt",
        "updatedAt",
        "excerpt_derived",
    }
)
STATUS_INPUTS = ("draft", "published", "scheduled", "trash")
_DATETIME_FIELDS = ("published_at", "updated_at", "created_at", "expires_at")
LIST_FIELDS = ("tags", "categories", "aliases")
_TEXT_FIELDS = ("title", "excerpt", "featured_image", "seo_title", "seo_description", "author")
_CANONICAL_INPUT = INPUT_SPELLINGS  # accepted names -> canonical field (cms/content/docfields.py)
_RESERVED_INPUT = frozenset(
    {"id", "slug", "draft", "status", "lang", "translation_key"} | {k for names in ALIASES.values() for k in names}
)


def canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    """The input with every accepted alias replaced by its canonical name."""
    if not isinstance(values, Mapping):
        raise BadRequest("the request body must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[_CANONICAL_INPUT.get(key, key)] = value
    return out


def check_limits(site: Site, ctype: ContentType, values: Mapping[str, Any]) -> None:
    """Invalid when a value is longer or a list has more items than any document may hold."""
    lists = {*LIST_FIELDS, "author", "authors", *site.taxonomies}
    lists.update(f.name for f in ctype.fields if f.type in ("tags", "list", "reference"))
    errors = over_limits(values, lists)
    if errors:
        raise Invalid(errors)


def frontmatter_changes(
    session: WriteSession, ctype: ContentType, values: Mapping[str, Any], meta: Mapping[str, Any], *, creating: bool
) -> dict[str, Any]:
    """Canonical API values -> {frontmatter key: value or DELETE}; Invalid names each bad field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    tz = session.site.tz
    declared = {f.name for f in ctype.fields}
    for name, value in values.items():
        if name in READ_ONLY:
            continue
        if name == "status":
            out.update(_status_changes(session, value, meta, values, errors))
            continue
        if name == "data":
            if not isinstance(value, Mapping):
                errors["data"] = ["must be an object"]
                continue
            for key, item in value.items():
                if not is_field_name(key):
                    errors[f"data.{key}"] = ["is not a valid field name"]
                elif key in _RESERVED_INPUT and key not in declared:
                    errors[f"data.{key}"] = ["is a base field: send it at the top level, not in data"]
                elif not ctype.builtin and declared and key not in declared:
                    errors[f"data.{key}"] = [f"is not a field of {ctype.name}"]
                else:
                    out[str(key)] = DELETE if item is None else _field_value(ctype, str(key), item, tz, errors)
            continue
        if name in _DATETIME_FIELDS:
            if value is None:
                out[frontmatter_key(name, meta)] = DELETE
                continue
            moment = to_datetime(value, tz) if isinstance(value, str) else None
            if moment is None:
                errors[name] = [f"must be an ISO 8601 date-time, got {value!r}"[:200]]
                continue
            out[frontmatter_key(name, meta)] = moment.astimezone(tz)
            continue
        if name in LIST_FIELDS or name == "author":
            items = as_list(value) if value is not None else []
            if value is not None and not _is_list_of_strings(value):
                errors[name] = ["must be a string or a list of strings"]
                continue
            key = frontmatter_key(name, meta)
            if not items:
                out[key] = DELETE
            elif key in ("category", "author") or (name == "author" and len(items) == 1):
                out[key] = items[0] if len(items) == 1 else items
            else:
                out[key] = [slugify(i) if name in ("tags", "categories") and i != i.lower() else i for i in items]
            continue
        if name in _TEXT_FIELDS:
            if value is None:
                out[frontmatter_key(name, meta)] = DELETE
            elif not isinstance(value, str):
                errors[name] = [f"must be a string, got {type(value).__name__}"]
            else:
                out[frontmatter_key(name, meta)] = value
            continue
        if name in declared or ctype.builtin and is_field_name(name) and name not in _RESERVED_INPUT:
            out[name] = DELETE if value is None else _field_value(ctype, name, value, tz, errors)
            continue
        errors[name] = ["is not a field of this content type"]
    if errors:
        raise Invalid(errors)
    return out


def _status_changes(
    session: WriteSession,
    value: Any,
    meta: Mapping[str, Any],
    values: Mapping[str, Any],
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    if value not in (*STATUS_INPUTS, "restore"):
        errors["status"] = [f"must be one of {', '.join(STATUS_INPUTS)}"]
        return {}
    date_key = frontmatter_key("published_at", meta)
    out: dict[str, Any] = {}
    if value == "trash":
        return {"status": "trash"}
    if value == "restore":
        return {"status": DELETE}
    out["status"] = DELETE
    if value == "draft":
        out["draft"] = True
        return out
    out["draft"] = False if "draft" in meta else DELETE
    given = values.get("published_at")
    if value == "scheduled":
        tz = session.site.tz
        moment = to_datetime(given, tz) if isinstance(given, str) else None
        current = to_datetime(meta.get(date_key), tz)
        target = moment or current
        if target is None or target <= session.clock():
            errors["published_at"] = ["a scheduled document needs a published_at in the future"]
        return out
    if given in (None, "") and meta.get(date_key) in (None, ""):
        out[date_key] = session.now_text()  # publish records the moment, when none was set
    return out


def as_list(value: Any) -> list[str]:
    """A string (comma-separated or one item), a list or one value as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if "," in value else ([value] if value else [])
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def _is_list_of_strings(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _field_value(ctype: ContentType, name: str, value: Any, tz: Any, errors: dict[str, list[str]]) -> Any:
    """A JSON value as the frontmatter should hold it: date-time strings become timestamps."""
    f = ctype.field(name)
    if f is not None and f.type in ("date", "datetime") and isinstance(value, str):
        moment = to_datetime(value, tz)
        if moment is None:
            errors[name] = [f"must be an ISO 8601 {f.type}, got {value!r}"[:200]]
            return value
        return moment.astimezone(tz).date() if f.type == "date" else moment.astimezone(tz)
    return value


def unchanged(meta: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether writing `value` under `key` would leave the frontmatter as it is."""
    if value is DELETE:
        return key not in meta
    return key in meta and type(meta[key]) is type(value) and meta[key] == value
