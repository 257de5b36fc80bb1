"""The filter compiler: a Strapi-style filter tree (`filters[data.price][$gt]=100`,
`filters[$or][0][status][$eq]=draft`) compiled once into a predicate over documents.

Compiling also validates: an unknown operator, field or shape is a BadRequest naming its path, so
`parse_query` compiles the tree before any work and execution compiles it again to run it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from cms.content.model import Document, to_datetime
from cms.errors import BadRequest

from .fields import TITLE_GETTER, Getter, canonical_field, check_field_name, field_getter, normalize_value
from .literals import to_bool, to_number

Predicate = Callable[[Document, datetime], bool]

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


class _Operand:
    """A filter value (from a URL it is text) in every shape a document value might need."""

    def __init__(self, raw: Any, tz: tzinfo) -> None:
        self.raw = raw
        self.tz = tz
        self.text = raw if isinstance(raw, str) else ("true" if raw is True else "false" if raw is False else str(raw))
        self.folded = self.text.casefold()
        self.number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else to_number(self.text)
        self.boolean = to_bool(self.text)
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


def _compare(op: str, value: Any, operand: _Operand) -> bool:
    if isinstance(value, list):
        if op in ("$contains", "$containsi", "$eq", "$eqi", "$in"):
            return any(_compare("$eqi" if op in ("$contains", "$containsi", "$eqi") else op, v, operand) for v in value)
        if op in ("$notContains", "$ne", "$notIn"):
            return not any(
                _compare("$eqi" if op == "$notContains" else "$eq" if op == "$ne" else "$in", v, operand) for v in value
            )
        return False
    value = normalize_value(value, operand.tz)
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
            value = to_number(value)
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
    if op in ("$contains", "$containsi") and get is TITLE_GETTER:
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
    fname = check_field_name(canonical_field(name), f"filters[{name}]")
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


def mentions_status(node: Any) -> bool:
    """Whether a filter tree names `status` anywhere (then a query without statuses sees them all)."""
    if isinstance(node, Mapping):
        return any(k == "status" or mentions_status(v) for k, v in node.items())
    if isinstance(node, list):
        return any(mentions_status(v) for v in node)
    return False
