"""Query parameters: the plain dict of a request's parameters (bracket syntax included) read into a
`Query`, with pagination, sort, fields, statuses and taxonomy terms checked.

Anything not understood is a BadRequest naming the parameter and what is accepted: a typo must never
return a silently wrong list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cms.content.model import Status
from cms.content.names import FIELD_PATH
from cms.content.search import to_fts_query
from cms.errors import BadRequest

from .fields import canonical_field, check_field_name
from .filters import MAX_FILTER_DEPTH, compile_filter
from .literals import to_bool, to_int

PARAMS = (
    "page",
    "per_page",
    "limit",
    "status",
    "type",
    "category",
    "tag",
    "tags",
    "tag_mode",
    "author",
    "search",
    "q",
    "order_by",
    "order",
    "sort",
    "filters",
    "fields",
    "exclude",
    "random",
    "seed",
    "lang",
    "draft",
)
ALL_BUT_TRASH = frozenset(set(Status) - {Status.TRASH})


@dataclass(frozen=True)
class Query:
    """What a list asks for; build it with `parse_query`."""

    type: str | None = None
    statuses: frozenset[Status] | None = None  # None: published, or every status if filters name status
    filters: Mapping[str, Any] | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode: str = "any"
    author: str | None = None
    terms: tuple[tuple[str, str], ...] = ()  # (custom taxonomy, term slug)
    search: str | None = None
    sort: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    page: int = 1
    per_page: int = 20
    include: tuple[str, ...] = ()
    exclude_fields: tuple[str, ...] = ()
    exclude_ids: frozenset[str] = frozenset()
    random: bool = False
    seed: int | None = None
    lang: str | None = ""  # "": the site's language (and untranslated files); None: every language


def parse_brackets(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Query-string pairs to a nested dict: `filters[a][$in][0]=x` -> {"filters": {"a": {"$in": ["x"]}}}.

    Repeated plain keys become lists (`tag=a&tag=b`); numeric bracket keys become list items.
    """
    out: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, sep, rest = raw_key.partition("[")
        if not sep:
            if head in out:
                current = out[head]
                out[head] = [*current, value] if isinstance(current, list) else [current, value]
            else:
                out[head] = value
            continue
        if not rest.endswith("]"):
            raise BadRequest(f"malformed parameter name {raw_key!r}")
        parts = [head, *rest[:-1].split("][")]
        if any(not p for p in parts[1:-1]):
            raise BadRequest(f"malformed parameter name {raw_key!r}")
        if len(parts) > MAX_FILTER_DEPTH * 2 + 2:
            raise BadRequest(f"parameter {raw_key!r} is nested too deeply (filters allow {MAX_FILTER_DEPTH} levels)")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "" and last:  # key[] = list append
                node = node.setdefault("__list__", [])
                node.append(value)
                break
            if not isinstance(node, dict):
                raise BadRequest(f"parameter {raw_key!r} conflicts with another one")
            if last:
                if part in node and isinstance(node[part], list):
                    node[part].append(value)
                elif part in node and not isinstance(node[part], dict):
                    node[part] = [node[part], value]
                else:
                    node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(out)  # type: ignore[no-any-return]


def _lists(node: Any) -> Any:
    """Dicts whose keys are 0..n-1 (or a `key[]` list) become lists."""
    if not isinstance(node, dict):
        return node
    if set(node) == {"__list__"}:
        return node["__list__"]
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        keys = sorted(converted, key=int)
        if [int(k) for k in keys] == list(range(len(keys))):
            return [converted[k] for k in keys]
    return converted


def _one(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != 1:
            raise BadRequest(f"{name} may be given once")
        value = value[0]
    if not isinstance(value, str | int | bool):
        raise BadRequest(f"{name} must be a single value")
    return str(value)


def int_param(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """The integer parameter `name` (absent or blank: `default`), refused outside lo..hi."""
    raw = _one(params, name)
    if raw is None or raw == "":
        return default
    value = to_int(raw, name)
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def bool_param(params: Mapping[str, Any], name: str) -> bool:
    """The boolean parameter `name`: absent is false, a bare `?name` is true."""
    raw = _one(params, name)
    if raw is None:
        return False
    if raw == "":
        return True
    value = to_bool(raw)
    if value is None:
        raise BadRequest(f"{name} must be true or false, got {raw!r}")
    return value


def _csv(params: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw = params.get(name)
    if raw is None:
        return ()
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for value in values:
        if not isinstance(value, str | int):
            raise BadRequest(f"{name} must be a string or a list of strings")
        out.extend(v.strip(" ") for v in str(value).split(",") if v.strip(" "))
    return tuple(out)


def parse_query(
    params: Mapping[str, Any],
    *,
    type_name: str | None = None,
    per_page: int = 20,
    max_per_page: int = 100,
    extra_params: tuple[str, ...] = (),
    taxonomies: tuple[str, ...] = (),
) -> Query:
    """A Query from plain params (strings, lists, nested filter dicts); BadRequest names any problem."""
    known = set(PARAMS) | set(extra_params) | set(taxonomies)
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}; accepted: {', '.join(sorted(known))}",
            details={"parameter": unknown[0], "accepted": sorted(known)},
        )
    statuses = _statuses(params)
    if bool_param(params, "draft") and statuses is None:
        statuses = ALL_BUT_TRASH
    tag_mode = (_one(params, "tag_mode") or "any").lower()
    if tag_mode not in ("any", "all"):
        raise BadRequest(f"tag_mode must be any or all, got {tag_mode!r}")
    filters = params.get("filters")
    if filters is not None:
        if not isinstance(filters, dict):
            raise BadRequest("filters must use the bracket form, e.g. filters[title][$contains]=coffee")
        compile_filter(filters)  # validate now, so errors surface as 400 before any work
    search = _one(params, "search") or _one(params, "q")
    if search is not None and len(search) > 500:
        raise BadRequest("search is longer than 500 characters")
    if search is not None and not to_fts_query(search):
        search = None  # no words (blank or punctuation only): no search, like an empty box
    include, exclude = _fields(params)
    seed_raw = _one(params, "seed")
    seed = to_int(seed_raw, "seed") if seed_raw else None
    lang_raw = _one(params, "lang")
    terms = tuple((t, s) for t in taxonomies for s in _csv(params, t))
    return Query(
        type=_type(params, type_name),
        statuses=statuses,
        filters=filters,
        category=_one(params, "category"),
        tags=_csv(params, "tag") + _csv(params, "tags"),
        tag_mode=tag_mode,
        author=_one(params, "author"),
        terms=terms,
        search=search.strip() if search else None,
        sort=_sort(params),
        page=int_param(params, "page", 1, 1, 1_000_000),
        per_page=int_param(params, "per_page", int_param(params, "limit", per_page, 1, max_per_page), 1, max_per_page),
        include=include,
        exclude_fields=exclude,
        exclude_ids=frozenset(_csv(params, "exclude")),
        random=bool_param(params, "random"),
        seed=seed,
        lang=None if lang_raw == "all" else (lang_raw or ""),
    )


# The grammar of `sort` and `fields` as patterns, for the API's document: comma-separated items,
# spaces around them and empty items ignored (as `_csv` reads them).
def _csv_pattern(item: str) -> str:
    return f"^ *(?:{item})? *(?:, *(?:{item})? *)*$"


_DIRECTION = "[aA][sS][cC]|[dD][eE][sS][cC]"
SORT_PATTERN = _csv_pattern(f"[-+]?{FIELD_PATH}(?::(?:{_DIRECTION}))?")
FIELDS_PATTERN = _csv_pattern(f"-?{FIELD_PATH}")


def _type(params: Mapping[str, Any], type_name: str | None) -> str | None:
    """The type to list: the path's (a `type=` naming another is refused), or the parameter's."""
    asked = _one(params, "type")
    if type_name is not None and asked is not None and asked != type_name:
        raise BadRequest(f"type is {type_name!r} on this path, not {asked!r}")
    if asked is not None and not asked:
        raise BadRequest("type must name a content type")
    return type_name or asked


def _statuses(params: Mapping[str, Any]) -> frozenset[Status] | None:
    names = _csv(params, "status")
    if not names:
        return None
    out: set[Status] = set()
    for name in names:
        if name == "all":
            out |= ALL_BUT_TRASH
        elif name == "any":
            out |= set(Status)
        else:
            try:
                out.add(Status(name))
            except ValueError:
                accepted = ", ".join([*(s.value for s in Status), "all", "any"])
                raise BadRequest(f"status {name!r} is not one of {accepted}") from None
    return frozenset(out)


def _sort(params: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    keys: list[tuple[str, bool]] = []
    for item in _csv(params, "sort"):
        desc = item.startswith("-")
        name = item[1:] if item[:1] in ("-", "+") else item
        if ":" in name:  # Strapi's `title:desc`
            name, _, direction = name.partition(":")
            if direction.lower() not in ("asc", "desc"):
                raise BadRequest(f"sort: the direction of {name!r} must be asc or desc")
            desc = direction.lower() == "desc"
        keys.append((check_field_name(canonical_field(name), "sort"), desc))
    order_by = _one(params, "order_by")
    order = (_one(params, "order") or "").lower()
    if order and order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc, got {order!r}")
    if order_by:
        keys.insert(0, (check_field_name(canonical_field(order_by), "order_by"), order != "asc"))
    elif order and not keys:
        keys.append(("published_at", order == "desc"))
    return tuple(keys)


def _fields(params: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    include: list[str] = []
    exclude: list[str] = []
    for item in _csv(params, "fields"):
        name = canonical_field(item.removeprefix("-"))
        check_field_name(name, "fields", allow_html=True)
        (exclude if item.startswith("-") else include).append(name)
    return tuple(include), tuple(exclude)
