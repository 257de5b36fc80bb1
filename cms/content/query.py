"""The query engine: a `Query` parsed from a plain dict, and `run(index, query)` -> a `Page`. Pure.

Filters follow seed 004's grammar (`filters[data.price][$gt]=100`, `filters[$or][0][status][$eq]=draft`)
plus Strapi's extra operators. Anything the engine does not understand is a `BadRequest` that
names the parameter and what is accepted: a typo must never return a silently wrong list.
"""

from __future__ import annotations

import dataclasses
import html
import math
import operator
import random as _random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from itertools import chain
from typing import Any

from cms.content.index import Index
from cms.content.model import Document, Status, to_datetime
from cms.content.search import snippet, to_fts_query
from cms.errors import BadRequest

Predicate = Callable[[Document, datetime], bool]
Getter = Callable[[Document, datetime], Any]

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
OPERATORS = (
    "$eq",
    "$eqi",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$notIn",
    "$contains",
    "$containsi",
    "$notContains",
    "$startsWith",
    "$endsWith",
    "$null",
    "$notNull",
    "$between",
)
MAX_FILTER_DEPTH = 8
MAX_FILTER_NODES = 100
VISIBLE_DEFAULT = frozenset({Status.PUBLISHED})
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


@dataclass
class Page:
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
        return max(1, math.ceil(self.total / self.per_page)) if self.per_page else 1

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    def pagination(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "total_pages": self.total_pages,
            "has_next": self.has_next,
            "has_prev": self.has_prev,
        }


# -- parsing ---------------------------------------------------------------------------------


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


def _int(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(params, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(params: Mapping[str, Any], name: str) -> bool:
    raw = _one(params, name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def _csv(params: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw = params.get(name)
    if raw is None:
        return ()
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for value in values:
        if not isinstance(value, str | int):
            raise BadRequest(f"{name} must be a string or a list of strings")
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return tuple(out)


def canonical_field(name: str) -> str:
    return FIELD_ALIASES.get(name, name)


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
    if _bool(params, "draft") and statuses is None:
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
    try:
        seed = int(seed_raw) if seed_raw else None
    except ValueError:
        raise BadRequest(f"seed must be an integer, got {seed_raw!r}") from None
    lang_raw = _one(params, "lang")
    terms = tuple((t, s) for t in taxonomies for s in _csv(params, t))
    return Query(
        type=type_name or _one(params, "type"),
        statuses=statuses,
        filters=filters,
        category=_one(params, "category"),
        tags=_csv(params, "tag") + _csv(params, "tags"),
        tag_mode=tag_mode,
        author=_one(params, "author"),
        terms=terms,
        search=search.strip() if search else None,
        sort=_sort(params),
        page=_int(params, "page", 1, 1, 1_000_000),
        per_page=_int(params, "per_page", _int(params, "limit", per_page, 1, max_per_page), 1, max_per_page),
        include=include,
        exclude_fields=exclude,
        exclude_ids=frozenset(_csv(params, "exclude")),
        random=_bool(params, "random"),
        seed=seed,
        lang=None if lang_raw == "all" else (lang_raw or ""),
    )


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
        name = item.lstrip("-+")
        if ":" in name:  # Strapi's `title:desc`
            name, _, direction = name.partition(":")
            desc = direction.lower() == "desc"
        keys.append((_check_field_name(canonical_field(name), "sort"), desc))
    order_by = _one(params, "order_by")
    order = (_one(params, "order") or "").lower()
    if order and order not in ("asc", "desc"):
        raise BadRequest(f"order must be asc or desc, got {order!r}")
    if order_by:
        keys.insert(0, (_check_field_name(canonical_field(order_by), "order_by"), order != "asc"))
    elif order and not keys:
        keys.append(("published_at", order == "desc"))
    return tuple(keys)


def _fields(params: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    include: list[str] = []
    exclude: list[str] = []
    for item in _csv(params, "fields"):
        name = canonical_field(item.lstrip("-"))
        _check_field_name(name, "fields", allow_html=True)
        (exclude if item.startswith("-") else include).append(name)
    return tuple(include), tuple(exclude)


def _check_field_name(name: str, where: str, allow_html: bool = False) -> str:
    if name in BASE_FIELDS or (allow_html and name in ("html", "url", "reading_time", "snippet", "data")):
        return name
    if name.startswith("data.") and len(name) > 5 and all(name.split(".")[1:]):
        return name
    if name.isidentifier():  # a frontmatter key written without `data.`
        return name
    raise BadRequest(f"{where}: {name!r} is not a field name")


# -- filters ---------------------------------------------------------------------------------


def _title(d: Document, n: datetime) -> str:
    return d.title


_TITLE_GETTER: Getter = _title


def field_getter(name: str) -> Getter:
    """How to read a field off a document: base fields, `data.x.y` paths, plain frontmatter keys."""
    name = canonical_field(name)
    base: dict[str, Getter] = {
        "id": lambda d, n: d.id,
        "hash": lambda d, n: d.hash,
        "type": lambda d, n: d.type,
        "slug": lambda d, n: d.slug,
        "title": _TITLE_GETTER,
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
    if name in base:
        return base[name]
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


class _Operand:
    """A filter value (from a URL it is text) in every shape a document value might need."""

    def __init__(self, raw: Any, tz: tzinfo) -> None:
        self.raw = raw
        self.tz = tz
        self.text = raw if isinstance(raw, str) else ("true" if raw is True else "false" if raw is False else str(raw))
        self.folded = self.text.casefold()
        self.number: float | None = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            self.number = float(raw)
        else:
            try:
                number = float(self.text)
                self.number = number if math.isfinite(number) else None
            except ValueError:
                pass
        self.boolean = {"true": True, "1": True, "false": False, "0": False}.get(self.folded)
        self.moment = (
            to_datetime(raw if isinstance(raw, date) else self.text, tz) if _looks_like_date(self.text) else None
        )

    def coerce(self, value: Any) -> Any:
        """This operand in the type of `value`, or None when it has no such reading."""
        if isinstance(value, bool):
            return self.boolean
        if isinstance(value, int | float):
            return self.number
        if isinstance(value, datetime):
            return self.moment
        if isinstance(value, date):
            if self.moment is None:
                return None
            # A date-only operand is that calendar day; a moment is the day it is in the site's zone.
            return date.fromisoformat(self.text) if len(self.text) == 10 else self.moment.astimezone(self.tz).date()
        if isinstance(value, str):
            return self.text
        return None


def _looks_like_date(text: str) -> bool:
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit()


def _normalize_value(value: Any, tz: tzinfo = UTC) -> Any:
    """Dates in frontmatter compare as aware datetimes; a naive one is in the site's zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _compare(op: str, value: Any, operand: _Operand) -> bool:
    if isinstance(value, list):
        if op in ("$contains", "$containsi", "$eq", "$eqi", "$in"):
            return any(_compare("$eqi" if op in ("$contains", "$containsi", "$eqi") else op, v, operand) for v in value)
        if op in ("$notContains", "$ne", "$notIn"):
            return not any(
                _compare("$eqi" if op == "$notContains" else "$eq" if op == "$ne" else "$in", v, operand) for v in value
            )
        return False
    value = _normalize_value(value, operand.tz)
    if op == "$in" or op == "$notIn":
        items = operand.raw if isinstance(operand.raw, list) else [operand.raw]
        hit = any(_compare("$eq", value, o) for o in items)
        return hit if op == "$in" else not hit
    if op == "$between":
        low, high = operand.raw
        return _compare("$gte", value, low) and _compare("$lte", value, high)
    if value is None:
        return op in ("$ne", "$notContains")
    other = operand.coerce(value)
    if other is None:
        return op in ("$ne", "$notContains")
    if op == "$eq":
        return bool(value == other)
    if op == "$ne":
        return bool(value != other)
    if op == "$eqi":
        return str(value).casefold() == operand.folded
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(value, str) and operand.number is not None:
            # A numeric bound compares numbers: "7" is below 10 (not above it as text), "n/a" is neither.
            value = _number(value)
            other = operand.number
            if value is None:
                return False
        try:
            if op == "$gt":
                return bool(value > other)
            if op == "$gte":
                return bool(value >= other)
            if op == "$lt":
                return bool(value < other)
            return bool(value <= other)
        except TypeError:
            return False
    text = str(value)
    if op in ("$contains", "$containsi"):
        return operand.folded in text.casefold()
    if op == "$notContains":
        return operand.folded not in text.casefold()
    if op == "$startsWith":
        return text.startswith(operand.text)
    if op == "$endsWith":
        return text.endswith(operand.text)
    return False


def compile_filter(
    node: Mapping[str, Any], tz: tzinfo = UTC, _depth: int = 0, _count: list[int] | None = None
) -> Predicate:
    """A predicate from a filter tree; BadRequest names the offending path."""
    count = _count if _count is not None else [0]
    if _depth > MAX_FILTER_DEPTH:
        raise BadRequest(f"filters are nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(node, Mapping) or not node:
        raise BadRequest("each filter must be a non-empty object")
    parts: list[Predicate] = []
    for key, sub in node.items():
        if key in ("$and", "$or"):
            items = sub if isinstance(sub, list) else list(sub.values()) if isinstance(sub, Mapping) else None
            if not items:
                raise BadRequest(f"filters[{key}] must be a list of conditions")
            preds = [compile_filter(i, tz, _depth + 1, count) for i in items]
            parts.append(_all(preds) if key == "$and" else _any(preds))
        elif key == "$not":
            inner = compile_filter(sub, tz, _depth + 1, count)
            parts.append(_negate(inner))
        elif key.startswith("$"):
            raise BadRequest(f"unknown filter operator {key!r}; logical operators: $and, $or, $not")
        else:
            count[0] += 1  # field conditions count; logical nodes are bounded by the depth
            if count[0] > MAX_FILTER_NODES:
                raise BadRequest(f"filters have more than {MAX_FILTER_NODES} conditions")
            parts.append(_field_filter(key, sub, tz))
    return _all(parts)


def _negate(inner: Predicate) -> Predicate:
    return lambda d, n: not inner(d, n)


def _null_check(get: Getter, want: bool) -> Predicate:
    return lambda d, n: (get(d, n) in (None, "", [])) is want


_NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$eq": operator.eq,
    "$ne": operator.ne,
}


def _op_check(get: Getter, op: str, operand: _Operand) -> Predicate:
    """A predicate for one operator, with fast paths for the common shapes (same answers as _compare)."""

    def slow(d: Document, n: datetime) -> bool:
        return _compare(op, get(d, n), operand)

    number = operand.number
    if op in _NUMERIC_OPS and number is not None:
        cmp = _NUMERIC_OPS[op]

        def numeric(d: Document, n: datetime) -> bool:
            value = get(d, n)
            kind = type(value)
            if kind is int or kind is float:  # not bool: type(True) is bool
                return cmp(value, number)
            return slow(d, n)

        return numeric
    if op in ("$contains", "$containsi") and get is _TITLE_GETTER:
        folded_title = operand.folded
        return lambda d, n: folded_title in d.folded_title  # case-folded once per document, not per query
    if op in ("$contains", "$containsi"):
        folded = operand.folded

        def contains(d: Document, n: datetime) -> bool:
            value = get(d, n)
            if type(value) is str:
                return folded in value.casefold()
            if type(value) is list and all(type(x) is str for x in value):
                return any(x.casefold() == folded for x in value)
            return slow(d, n)

        return contains
    return slow


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    return lambda d, n: all(p(d, n) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda d, n: any(p(d, n) for p in preds)


def _field_filter(name: str, spec: Any, tz: tzinfo) -> Predicate:
    fname = _check_field_name(canonical_field(name), f"filters[{name}]")
    get = field_getter(fname)
    if not isinstance(spec, Mapping):  # filters[slug]=x means $eq
        spec = {"$eq": spec}
    checks: list[Predicate] = []
    for op, raw in spec.items():
        if op not in OPERATORS:
            raise BadRequest(
                f"filters[{name}]: unknown operator {op!r}; accepted: {', '.join(OPERATORS)}",
                details={"field": name, "operator": op, "accepted": list(OPERATORS)},
            )
        if op in ("$null", "$notNull"):
            flag = _Operand(raw, tz).boolean
            if flag is None:
                raise BadRequest(f"filters[{name}][{op}] must be true or false")
            want_null = flag if op == "$null" else not flag
            checks.append(_null_check(get, want_null))
            continue
        if isinstance(raw, Mapping):
            raise BadRequest(f"filters[{name}][{op}] must be a value, not an object")
        if op in ("$in", "$notIn"):
            items = raw if isinstance(raw, list) else [v for v in str(raw).split(",")]
            operand = _Operand([_Operand(v, tz) for v in items], tz)
            operand.raw = [_Operand(v, tz) for v in items]
        elif op == "$between":
            items = raw if isinstance(raw, list) else str(raw).split(",")
            if len(items) != 2:
                raise BadRequest(f"filters[{name}][$between] needs two values")
            operand = _Operand("", tz)
            operand.raw = [_Operand(v, tz) for v in items]
        else:
            if isinstance(raw, list):
                raise BadRequest(f"filters[{name}][{op}] takes one value")
            operand = _Operand(raw, tz)
        checks.append(_op_check(get, op, operand))
    if not checks:
        raise BadRequest(f"filters[{name}] has no operator")
    return _all(checks)


def _mentions_status(node: Any) -> bool:
    if isinstance(node, Mapping):
        return any(k == "status" or _mentions_status(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_mentions_status(v) for v in node)
    return False


# -- running ---------------------------------------------------------------------------------


def visible(statuses: frozenset[Status], doc: Document, now: datetime) -> bool:
    return doc.status_at(now) in statuses


def run(index: Index, query: Query, now: datetime | None = None, *, default_lang: str = "") -> Page:
    """Answer a query from the index: filter, sort, page; search results carry snippets."""
    now = now or datetime.now(UTC)
    statuses = query.statuses
    if statuses is None:
        statuses = frozenset(Status) if query.filters and _mentions_status(query.filters) else VISIBLE_DEFAULT
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
        return (3, _normalize_value(value, tz).timestamp())
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
