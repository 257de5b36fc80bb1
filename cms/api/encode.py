"""JSON out: one encoder for every response body and cached answer (orjson, `Z` for UTC).

Its own module so that `serialize.py` (which caches encoded documents) and `http.py` (which
holds the typed `Services`, serializer included) both use it without importing each other.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson


def dumps(data: Any) -> bytes:
    """`data` as compact JSON bytes: sets and tuples as lists, anything unknown as its `str`."""
    try:
        return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS, default=_default)
    except TypeError:
        # orjson stops at 64-bit integers; a person may write a bigger one in a file. The standard
        # library writes any integer (dates become ISO strings like orjson's with `Z` for UTC).
        return json.dumps(_plain(data), ensure_ascii=False, separators=(",", ":"), default=_default).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        # orjson's spelling, not `cms.clock.iso_z`: a custom field keeps the offset (or none) the
        # person wrote, and only UTC becomes `Z`; the two encoders must agree byte for byte.
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and value != value:
        return None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
