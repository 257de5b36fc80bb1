"""Time, once: the clock type every service takes, and the one way a moment is written out.

Inside, every moment is a timezone-aware `datetime` in UTC; outside (JSON, state files, headers
that carry ISO times) it is ISO 8601 with a `Z`. A service takes a `Clock` so tests can move time by
hand; the site's timezone is for display and for dates a person wrote without one (config.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

Clock = Callable[[], datetime]
"""Returns now, timezone-aware (UTC). `utc_now` is the real one; tests pass their own."""

Precision = Literal["auto", "seconds", "milliseconds"]


def utc_now() -> datetime:
    """Now, in UTC: the default `Clock`."""
    return datetime.now(UTC)


def iso_z(moment: datetime, timespec: Precision = "auto") -> str:
    """`2026-12-07T21:07:30Z`: the moment in UTC, ISO 8601, with `Z` for UTC.

    `auto` writes microseconds only when there are some; `seconds` drops them; `milliseconds` keeps
    three digits. A naive datetime is taken as UTC (the state files store UTC without an offset).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec=timespec)
    return text.removesuffix("+00:00") + "Z"


def iso_z_or_none(moment: datetime | None, timespec: Precision = "auto") -> str | None:
    """`iso_z`, with None passed through (optional moments of a resource)."""
    return None if moment is None else iso_z(moment, timespec)


def from_timestamp(seconds: float) -> datetime:
    """A Unix time (as SQLite rows keep it) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
