"""Rate limits over fixed minute and day windows, kept in `.cms/ratelimit.db`.

Counters are a separate SQLite file with `synchronous=OFF` (the reliability plan relaxes durability
for counters only: losing the last seconds of counts in a power cut is harmless), so the keys database
keeps its FULL durability.

Two modes, chosen by the server's shape:
- shared (several worker processes): each counted request is one `UPSERT ... RETURNING`, atomic
  across processes, so two workers sharing a 60/minute limit let exactly 60 requests through.
- in-process (`shared=False`, one process serves the site, the default of `cms serve`): requests are
  counted in memory, exactly, and the counts are written to the file at most once a second and on
  close; a bucket's counts are read from the file the first time it is seen, so a restart keeps the
  day's usage. This takes a database write (tens of microseconds, the largest cost of a cached
  list request) off every request.

Failed authentications are always counted in the file: they are rare, and every process must see them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

from cms import schema
from cms.clock import Clock, utc_now
from cms.errors import RateLimited

MINUTE = 60
DAY = 86_400
_MAX_LOCAL_BUCKETS = 100_000


@dataclass(frozen=True)
class Verdict:
    """What the rate-limit headers of a response say."""

    limit: int
    remaining: int
    reset_at: int  # Unix seconds when the minute window ends
    retry_after: int  # seconds until a refused client may try again (0 when allowed)
    allowed: bool


class RateLimiter:
    """Per-key and per-address counters over fixed minute and day windows."""

    def __init__(self, folder: Path, clock: Clock = utc_now, *, shared: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Counters: a power cut may forget the last moments' counts, which is harmless, and OFF keeps
        # WAL checkpoints from fsyncing inside a request (they showed as 100 ms p99 stalls under load).
        self._db = schema.open_database(folder, schema.RATELIMIT, synchronous="OFF")
        self._lock = threading.Lock()
        self._clock = clock
        self._last_sweep = 0.0
        self.shared = shared
        self._local: dict[str, list[int]] = {}  # in-process mode: bucket -> [minute, m, day, d]
        self._dirty: set[str] = set()
        self._last_flush = 0.0

    def _now(self) -> float:
        return self._clock().timestamp()

    def _increment(self, bucket: str, window: int, by: int = 1) -> int:
        row = self._db.execute(
            "INSERT INTO hits (bucket, window, count) VALUES (?, ?, ?) "
            "ON CONFLICT (bucket, window) DO UPDATE SET count = count + excluded.count RETURNING count",
            (bucket, window, by),
        ).fetchone()
        return int(row[0])

    def _peek(self, bucket: str, window: int) -> int:
        row = self._db.execute("SELECT count FROM hits WHERE bucket = ? AND window = ?", (bucket, window)).fetchone()
        return int(row[0]) if row else 0

    def hit(self, bucket: str, per_minute: int, per_day: int) -> Verdict:
        """Count one request for `bucket` and say whether it is within both limits."""
        now = self._now()
        minute, day = int(now // MINUTE), int(now // DAY)
        reset_at = (minute + 1) * MINUTE
        with self._lock:
            if self.shared:
                # One statement (atomic on its own, no BEGIN/COMMIT round trips) moves both windows.
                row = self._db.execute(
                    "INSERT INTO windows (bucket, minute, m, day, d) VALUES (?, ?, 1, ?, 1) "
                    "ON CONFLICT (bucket) DO UPDATE SET "
                    "m = CASE WHEN minute = excluded.minute THEN m + 1 ELSE 1 END, "
                    "d = CASE WHEN day = excluded.day THEN d + 1 ELSE 1 END, "
                    "minute = excluded.minute, day = excluded.day RETURNING m, d",
                    (bucket, minute, day),
                ).fetchone()
            else:
                row = self._count_here(bucket, minute, day, now)
            self._sweep(now)
        used_minute, used_day = int(row[0]), int(row[1]) if per_day > 0 else 0
        over_minute = per_minute > 0 and used_minute > per_minute
        over_day = per_day > 0 and used_day > per_day
        retry = 0
        if over_day:
            retry = math.ceil((day + 1) * DAY - now)
        elif over_minute:
            retry = math.ceil(reset_at - now)
        remaining = max(0, per_minute - used_minute) if per_minute > 0 else 0
        return Verdict(per_minute, remaining, reset_at, max(retry, 0), not (over_minute or over_day))

    def _count_here(self, bucket: str, minute: int, day: int, now: float) -> tuple[int, int]:
        """In-process mode: count in memory (the lock is held), writing to the file once a second."""
        counts = self._local.get(bucket)
        if counts is None:
            row = self._db.execute("SELECT minute, m, day, d FROM windows WHERE bucket = ?", (bucket,)).fetchone()
            counts = self._local[bucket] = list(row) if row else [minute, 0, day, 0]
        counts[1] = counts[1] + 1 if counts[0] == minute else 1
        counts[3] = counts[3] + 1 if counts[2] == day else 1
        counts[0], counts[2] = minute, day
        self._dirty.add(bucket)
        if now - self._last_flush >= 1.0:
            self._flush(now)
        return counts[1], counts[3]

    def _flush(self, now: float) -> None:
        """Write the in-memory counts that changed since the last flush (the lock is held)."""
        self._last_flush = now
        if self._dirty:
            self._db.executemany(
                "INSERT INTO windows (bucket, minute, m, day, d) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET minute = excluded.minute, m = excluded.m, "
                "day = excluded.day, d = excluded.d",
                [(bucket, *self._local[bucket]) for bucket in self._dirty],
            )
            self._dirty.clear()
        if len(self._local) > _MAX_LOCAL_BUCKETS:  # (many one-off addresses): they reload if they return
            self._local.clear()

    def failures(self, address: str) -> int:
        """Failed authentications from an address in the current minute."""
        with self._lock:
            return self._peek(f"fail:{address}:m", int(self._now() // MINUTE))

    def fail(self, address: str) -> int:
        """Count a failed authentication from an address; the new count this minute."""
        minute = int(self._now() // MINUTE)
        with self._lock:
            return self._increment(f"fail:{address}:m", minute)

    def check_address(self, address: str, max_failures: int) -> None:
        """Raise RateLimited while an address has used up its failed-authentication allowance."""
        if max_failures > 0 and self.failures(address) >= max_failures:
            now = self._now()
            retry = math.ceil((int(now // MINUTE) + 1) * MINUTE - now)
            raise RateLimited("too many failed authentications from this address", retry_after=max(retry, 1))

    def _sweep(self, now: float) -> None:
        """Drop windows older than a day, at most once a minute (keeps the file small)."""
        if now - self._last_sweep < MINUTE:
            return
        self._last_sweep = now
        self._db.execute(
            "DELETE FROM hits WHERE (bucket LIKE '%:m' AND window < ?) OR (bucket LIKE '%:d' AND window < ?)",
            (int(now // MINUTE) - 1, int(now // DAY) - 1),
        )

    def flush(self) -> None:
        """Write in-process counts to the file now (at shutdown; otherwise it happens once a second)."""
        with self._lock:
            self._flush(self._now())

    def close(self) -> None:
        with self._lock:
            self._flush(self._now())
            self._db.close()
