"""The durable outbox of webhook deliveries: enqueue, claim with a lease, retry schedule, the delivery log.

An event becomes one row per matching subscription, written (SQLite, synchronous=FULL) before the
write that caused it returns; the exact bytes to send are stored with it, so a retry signs the
same body. Each row is claimed with a lease, so several server processes never send one row twice
at once, and a row claimed by a process that died is picked up again when its lease runs out
(at-least-once; `webhook-id` is the receiver's idempotency key). Per endpoint, the events of one
document go out in order: a row waits while an older row for the same (endpoint, document) is
pending. The tables (`outbox`, `attempts`) are declared in cms/schema.py; times in them are Unix
seconds (REAL), read from the service's `Clock`.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cms.clock import Clock, from_timestamp, iso_z, iso_z_or_none, utc_now
from cms.config import DeliverySection
from cms.errors import NotFound
from cms.events.bus import Event
from cms.state import State

# A claimed row is leased for this long plus twice the delivery timeout: an attempt lasts at most
# about timeout (headers) + timeout (the answer's first KiB). A process killed mid-delivery
# leaves its rows to be picked up again after the lease, so it bounds the delay after a crash.
LEASE_S = 10.0
MAX_RETRY_AFTER_S = 86_400  # a receiver's Retry-After is honoured up to a day


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt gave: an HTTP status, or an error (`blocked: ...` when the target was refused)."""

    status: int | None
    response: str | None  # the answer's first KiB
    error: str | None
    latency_ms: float
    retry_after: float | None = None  # seconds, from a 429 or 503 answer

    @property
    def blocked(self) -> bool:
        return bool(self.error and self.error.startswith("blocked"))


def cancel_deliveries(db: sqlite3.Connection, hook_id: str, at: float, *, sending: bool) -> None:
    """Cancel a subscription's queued rows (and those being sent, with `sending`) inside the caller's transaction."""
    statuses = "('pending', 'sending')" if sending else "('pending')"
    db.execute(
        f"UPDATE outbox SET status = 'cancelled', finished_at = ? WHERE webhook_id = ? AND status IN {statuses}",  # noqa: S608
        (at, hook_id),
    )


class Outbox:
    """The outbox rows and attempts of one site's state.db, on `delivery` settings and a clock."""

    def __init__(self, state: State, delivery: DeliverySection, *, clock: Clock = utc_now) -> None:
        self.state = state
        self.delivery = delivery
        self.clock = clock

    def _now(self) -> float:
        return self.clock().timestamp()  # the rows keep Unix seconds

    def enqueue(self, event: Event, body: bytes, hook_ids: Iterable[str]) -> list[int]:
        """One row per subscription, durable before returning; the ids of the new rows (a row already queued for
        the same event and subscription is not queued twice)."""
        now = self._now()
        ids = []
        with self.state.transaction() as db:
            for hook_id in hook_ids:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, webhook_id, event_name, body, ordering_key, created_at,"
                    " next_attempt_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                    (event.id, hook_id, event.name, body, event.key or event.id, now, now),
                )
                if cursor.rowcount:
                    ids.append(int(cursor.lastrowid or 0))
        return ids

    def claim(self, limit: int) -> list[sqlite3.Row]:
        """Due rows whose (endpoint, document) has no older unfinished row, leased to this process."""
        now = self._now()
        with self.state.transaction() as db:
            rows = db.execute(
                "SELECT o.id FROM outbox o WHERE o.next_attempt_at <= ? AND (o.status = 'pending' OR "
                "(o.status = 'sending' AND o.lease_until < ?)) AND NOT EXISTS (SELECT 1 FROM outbox p WHERE "
                "p.webhook_id = o.webhook_id AND p.ordering_key = o.ordering_key AND p.id < o.id AND "
                "p.status IN ('pending', 'sending')) ORDER BY o.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            claimed = []
            for (row_id,) in rows:
                cursor = db.execute(
                    "UPDATE outbox SET status = 'sending', lease_until = ? WHERE id = ? AND "
                    "(status = 'pending' OR (status = 'sending' AND lease_until < ?))",
                    (now + LEASE_S + 2 * self.delivery.timeout, row_id, now),
                )
                if cursor.rowcount:
                    claimed.append(row_id)
        if not claimed:
            return []
        marks = ",".join("?" * len(claimed))
        return self.state.query(f"SELECT * FROM outbox WHERE id IN ({marks}) ORDER BY id", tuple(claimed))  # noqa: S608

    def record(self, row: sqlite3.Row, hook_id: str, attempt: Attempt) -> bool:
        """Log one attempt and move its row on (delivered, failed, or retried later); True when it disabled
        the subscription (the receiver answered 410 Gone).

        The log entry and the outcome are one transaction (one commit per attempt, and no attempt is
        logged without its row moving on). The outcome's mark on the subscription (`failing_since`,
        disabled) is written in that transaction too, so the two never disagree.
        """
        attempts = int(row["attempts"]) + 1
        status = attempt.status
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO attempts (outbox_id, webhook_id, attempted_at, status_code, latency_ms, response, "
                "error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row["id"],
                    hook_id,
                    self._now(),
                    status,
                    round(attempt.latency_ms, 1),
                    attempt.response,
                    attempt.error,
                ),
            )
            db.execute("UPDATE outbox SET attempts = ?, last_status = ? WHERE id = ?", (attempts, status, row["id"]))
            if status is not None and 200 <= status < 300:
                self._finish(db, row["id"], "delivered", hook_id)
            elif status == 410:
                self._finish(db, row["id"], "failed", hook_id)
                self._disable(db, hook_id, "the receiver answered 410 Gone")
                return True
            elif attempt.blocked:
                self._finish(db, row["id"], "failed", hook_id)
                self._mark_failing(db, hook_id)
            else:
                self._retry(db, row["id"], hook_id, attempts, attempt.retry_after if status in (429, 503) else None)
        return False

    def cancel(self, row_id: int) -> None:
        """Cancel one claimed row unsent (its subscription was deleted or disabled since it was queued)."""
        with self.state.transaction() as db:
            self._finish(db, row_id, "cancelled", None)

    def _retry(
        self, db: sqlite3.Connection, row_id: int, hook_id: str, attempts: int, retry_after: float | None
    ) -> None:
        schedule = self.delivery.retry_schedule
        if attempts > len(schedule):
            self._finish(db, row_id, "failed", hook_id)
            self._mark_failing(db, hook_id)
            return
        jitter = self.delivery.jitter
        delay = schedule[attempts - 1] * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - spreading retries, not secrecy
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        delay *= self.delivery.time_scale
        db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL WHERE id = ?",
            (self._now() + delay, row_id),
        )

    def _finish(self, db: sqlite3.Connection, row_id: int, status: str, hook_id: str | None) -> None:
        db.execute(
            "UPDATE outbox SET status = ?, finished_at = ?, lease_until = NULL WHERE id = ?",
            (status, self._now(), row_id),
        )
        if status == "delivered" and hook_id:
            db.execute("UPDATE webhooks SET failing_since = NULL WHERE id = ?", (hook_id,))

    def _mark_failing(self, db: sqlite3.Connection, hook_id: str) -> None:
        db.execute(
            "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
            (iso_z(self.clock(), "seconds"), hook_id),
        )

    def _disable(self, db: sqlite3.Connection, hook_id: str, reason: str) -> None:
        db.execute("UPDATE webhooks SET enabled = 0, disabled_reason = ? WHERE id = ?", (reason, hook_id))
        cancel_deliveries(db, hook_id, self._now(), sending=False)  # a row being sent now logs its attempt

    def redeliver(self, hook_id: str, delivery_id: int) -> None:
        """Make a delivery due now, whatever its state (a manual replay)."""
        with self.state.transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, finished_at = NULL, "
                "lease_until = NULL WHERE id = ? AND webhook_id = ?",
                (self._now(), delivery_id, hook_id),
            )
            if not cursor.rowcount:
                raise NotFound(f"no delivery {delivery_id} for webhook {hook_id!r}")

    def deliveries(self, hook_id: str, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A page of a subscription's deliveries, newest first, each with its attempts; and how many there are."""
        rows = self.state.query(
            "SELECT id, event_id, event_name, status, attempts, last_status, created_at, "
            "next_attempt_at, finished_at FROM outbox WHERE webhook_id = ? ORDER BY id DESC "
            "LIMIT ? OFFSET ?",
            (hook_id, limit, offset),
        )
        total = self.state.query("SELECT COUNT(*) AS n FROM outbox WHERE webhook_id = ?", (hook_id,))[0]["n"]
        out = []
        for row in rows:
            attempts = self.state.query(
                "SELECT attempted_at, status_code, latency_ms, response, error FROM attempts "
                "WHERE outbox_id = ? ORDER BY id",
                (row["id"],),
            )
            out.append(
                {
                    "id": row["id"],
                    "event_id": row["event_id"],
                    "event": row["event_name"],
                    "status": row["status"],
                    "attempts": row["attempts"],
                    "last_status": row["last_status"],
                    "created_at": _iso(row["created_at"]),
                    "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
                    "finished_at": _iso(row["finished_at"]),
                    "log": [
                        {
                            "at": _iso(a["attempted_at"]),
                            "status": a["status_code"],
                            "latency_ms": a["latency_ms"],
                            "response": a["response"],
                            "error": a["error"],
                        }
                        for a in attempts
                    ],
                }
            )
        return out, int(total)

    def pending_count(self) -> int:
        """Rows not finished yet (waiting or being sent)."""
        return int(self.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")[0]["n"])

    def sweep(self) -> None:
        """Forget finished deliveries older than `delivery.keep_days`."""
        cutoff = self._now() - self.delivery.keep_days * 86_400
        with self.state.transaction() as db:
            db.execute(
                "DELETE FROM attempts WHERE outbox_id IN (SELECT id FROM outbox WHERE finished_at < ?)", (cutoff,)
            )
            db.execute("DELETE FROM outbox WHERE finished_at < ?", (cutoff,))


def body_of(event: Event, base_url: str) -> bytes:
    """The bytes every subscription of an event is sent: the event's JSON plus the site's address."""
    payload = event.as_dict()
    payload["site"] = base_url
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _iso(seconds: float | None) -> str | None:
    return iso_z_or_none(None if seconds is None else from_timestamp(seconds), "milliseconds")
