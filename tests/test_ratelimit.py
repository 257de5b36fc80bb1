"""The rate limiter in both modes: shared through SQLite (several workers) and in-process (one
server process, counts in memory written to the file once a second)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cms.clock import from_timestamp
from cms.ratelimit import DAY, MINUTE, RateLimiter
from tests.support import Clock

START = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # the start of a day: windows line up


def stored(folder: Path, bucket: str) -> tuple[int, int] | None:
    with sqlite3.connect(folder / "ratelimit.db") as db:
        row = db.execute("SELECT m, d FROM windows WHERE bucket = ?", (bucket,)).fetchone()
    return (row[0], row[1]) if row else None


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "in-process"])
def test_the_minute_limit_is_exact_and_resets_with_the_window(tmp_path: Path, shared: bool) -> None:
    clock = Clock(from_timestamp(START))
    limiter = RateLimiter(tmp_path, clock, shared=shared)
    verdicts = [limiter.hit("key:a", 5, 1000) for _ in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0, 0]
    assert verdicts[-1].retry_after == MINUTE
    assert limiter.hit("key:b", 5, 1000).allowed  # another bucket is counted apart
    clock.advance(seconds=MINUTE)
    assert limiter.hit("key:a", 5, 1000).remaining == 4
    limiter.close()


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "in-process"])
def test_the_day_limit_outlasts_minutes(tmp_path: Path, shared: bool) -> None:
    clock = Clock(from_timestamp(START))
    limiter = RateLimiter(tmp_path, clock, shared=shared)
    for _ in range(3):
        assert limiter.hit("key:a", 100, 3).allowed
        clock.advance(seconds=MINUTE)
    refused = limiter.hit("key:a", 100, 3)
    assert not refused.allowed and refused.retry_after == DAY - 3 * MINUTE
    clock.advance(seconds=DAY)
    assert limiter.hit("key:a", 100, 3).allowed
    limiter.close()


def test_in_process_counts_reach_the_file_once_a_second_and_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock(from_timestamp(START))
    limiter = RateLimiter(tmp_path, clock, shared=False)
    limiter.hit("key:a", 100, 1000)  # the first hit of a process writes (it has never flushed)
    assert stored(tmp_path, "key:a") == (1, 1)
    for _ in range(9):
        limiter.hit("key:a", 100, 1000)
    assert stored(tmp_path, "key:a") == (1, 1)  # not yet: within the same second
    clock.advance(seconds=1)
    limiter.hit("key:a", 100, 1000)
    assert stored(tmp_path, "key:a") == (11, 11)
    limiter.hit("key:a", 100, 1000)
    limiter.close()  # closing writes the rest
    assert stored(tmp_path, "key:a") == (12, 12)

    restarted = RateLimiter(tmp_path, clock, shared=False)
    assert restarted.hit("key:a", 100, 1000).remaining == 100 - 13  # the count carried over
    clock.advance(seconds=MINUTE)
    again = restarted.hit("key:a", 100, 13)
    assert not again.allowed  # the 14th of the day over a limit of 13, across the restart
    restarted.close()


def test_a_shared_limiter_sees_what_an_in_process_one_wrote(tmp_path: Path) -> None:
    clock = Clock(from_timestamp(START))
    alone = RateLimiter(tmp_path, clock, shared=False)
    for _ in range(4):
        alone.hit("key:a", 5, 1000)
    alone.flush()
    shared = RateLimiter(tmp_path, clock, shared=True)
    assert shared.hit("key:a", 5, 1000).remaining == 0
    assert not shared.hit("key:a", 5, 1000).allowed
    alone.close()
    shared.close()


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "in-process"])
def test_concurrent_hits_are_each_counted_once(tmp_path: Path, shared: bool) -> None:
    limiter = RateLimiter(tmp_path, Clock(from_timestamp(START)), shared=shared)
    allowed: list[bool] = []
    lock = threading.Lock()

    def client() -> None:
        mine = [limiter.hit("key:a", 1000, 10**6).allowed for _ in range(200)]
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(allowed) == 1600 and allowed.count(True) == 1000  # exactly the limit, no more, no less
    limiter.close()
    assert stored(tmp_path, "key:a") == (1600, 1600)
