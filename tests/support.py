"""What many test files share, defined once: `wait_until` (poll a real event with a generous deadline),
`free_port`, the clocks a test moves by hand (`Clock`, `SecondsClock`) and the demo site's facts (`DEMO_*`).

Waiting on something real (a watcher, a server, a delivery) polls for the condition: a slow, shared machine
only makes the wait longer, never the test red. Speed is measured in `bench/`, not asserted here.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

WAIT_TIMEOUT_S = 30.0  # generous: only a hang or a real bug takes this long, never a busy machine


def wait_until(
    predicate: Callable[[], object],
    timeout: float = WAIT_TIMEOUT_S,
    interval: float = 0.01,
    message: str | Callable[[], str] = "",
) -> bool:
    """Poll `predicate` until it is truthy (then True); after `timeout` seconds fail the test with `message`.

    `message` may be a callable, evaluated only on failure (e.g. to attach a server's log).
    It returns True so that the older `assert wait_until(...)` form reads (and fails) the same.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if predicate():  # one last look: the deadline may have passed while the process was descheduled
        return True
    detail = message() if callable(message) else message
    raise AssertionError(f"not true within {timeout:g} s: {detail or getattr(predicate, '__name__', predicate)}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the demo site (content/ and cms.toml at the repository root, copied by the `demo_site` fixture) ------

# At this moment the demo's dated posts keep their statuses: one scheduled, two drafts, the rest published.
DEMO_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEMO_POSTS = 16
DEMO_PAGES = 3
DEMO_PRODUCTS = 6
DEMO_DOCUMENTS = DEMO_POSTS + DEMO_PAGES + DEMO_PRODUCTS  # 25
DEMO_DRAFTS = ("grinder-buying-guide", "home-roasting-first-steps")
DEMO_SCHEDULED = "winter-blend-2027"
DEMO_PUBLISHED = "cold-brew-without-the-fuss"  # one of the published posts
DEMO_LIVE_POSTS = DEMO_POSTS - len(DEMO_DRAFTS) - 1  # 13: what a reader sees at DEMO_NOW


# -- clocks the test moves by hand ---------------------------------------------------------------------


class Clock:
    """A timezone-aware UTC clock the test moves by hand (`advance(minutes=1)`); DEMO_NOW unless given."""

    def __init__(self, now: datetime = DEMO_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class SecondsClock:
    """A clock of Unix seconds (float) the test moves by hand; it starts at the real time unless given."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
