"""Webhooks: subscriptions, a durable outbox, Standard Webhooks signatures, retried deliveries, a log.

An event becomes one outbox row per matching subscription, written (SQLite, synchronous=FULL)
before the write that caused it returns; the exact bytes to send are stored with it, so a retry
signs the same body. Deliveries run in background threads: each row is claimed with a lease,
so several server processes never send one row twice at once, and a row claimed by a process
that died is picked up again when its lease runs out (at-least-once; `webhook-id` is the
receiver's idempotency key). Per endpoint, the events of one document go out in order: a row
waits while an older row for the same (endpoint, document) is pending.
"""

from __future__ import annotations

import base64
import builtins  # `Webhooks.list` shadows the name inside the class
import hashlib
import hmac
import json
import logging
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from cms import __version__
from cms.config import Site
from cms.content.limits import MAX_TITLE_CHARS, list_problems, text_problems
from cms.errors import BadRequest, ConfigError, Conflict, Invalid, NotFound
from cms.events.bus import Event
from cms.net import BlockedTarget, Resolver, Target, system_resolver, vet_url
from cms.state import State

log = logging.getLogger("cms.webhooks")

# Seed 004 names, accepted in subscriptions: they mean the same action on any document.
EVENT_ALIASES = {
    "entry.create": "*.created",
    "entry.update": "*.updated",
    "entry.delete": "*.deleted",
    "entry.publish": "*.published",
    "entry.unpublish": "*.unpublished",
    "media.create": "media.uploaded",
    "media.delete": "media.deleted",
}
KNOWN_EVENTS = tuple(
    f"{kind}.{action}"
    for kind in ("post", "page", "entry")
    for action in ("created", "updated", "published", "unpublished", "deleted", "restored")
) + (
    "media.uploaded",
    "media.deleted",
    "category.created",
    "category.updated",
    "category.deleted",
    "build.completed",
    "webhook.test",
)
# A claimed row is leased for this long plus twice the delivery timeout: an attempt lasts at most
# about timeout (headers) + timeout (the answer's first KiB). A process killed mid-delivery
# leaves its rows to be picked up again after the lease, so it bounds the delay after a crash.
_LEASE_S = 10.0
_EXCERPT = 1024
_MAX_RETRY_AFTER_S = 86_400


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded bytes of `whsec_...`, else the text itself."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except ValueError:
            raise BadRequest("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode()


def _check_secret(value: Any) -> None:
    """422 unless `value` is a usable secret: 16+ characters, and valid base64 after a `whsec_` prefix."""
    if not isinstance(value, str) or len(value) < 16:
        raise Invalid({"secret": ["must be at least 16 characters (or whsec_ + base64)"]})
    try:
        secret_key(value)
    except BadRequest:
        raise Invalid({"secret": ["a whsec_ secret must be base64 after the prefix"]}) from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks)."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def matches(patterns: Iterable[str], name: str) -> bool:
    for raw in patterns:
        pattern = EVENT_ALIASES.get(raw, raw)
        if pattern in ("*", name):
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


@dataclass(frozen=True)
class Webhook:
    id: str
    name: str
    url: str
    events: tuple[str, ...]
    content_types: tuple[str, ...] | None
    secret: str
    enabled: bool
    source: str
    created_at: str
    failing_since: str | None = None
    disabled_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "content_types": list(self.content_types) if self.content_types is not None else None,
            "enabled": self.enabled,
            "source": self.source,
            "created_at": self.created_at,
            "failing_since": self.failing_since,
            "disabled_reason": self.disabled_reason,
            # the first characters: the prefix and 4 more (a short hand-made secret must not show most of itself)
            "secret_hint": self.secret[: 10 if self.secret.startswith("whsec_") else 4] + "…",
        }

    def wants(self, event: Event) -> bool:
        if not self.enabled or not matches(self.events, event.name):
            return False
        if self.content_types is None:
            return True
        doc = next((v for k, v in event.data.items() if k in ("post", "page", "entry") and isinstance(v, dict)), None)
        return doc is not None and doc.get("type") in self.content_types


def _row_webhook(row: Any) -> Webhook:
    return Webhook(
        row["id"],
        row["name"],
        row["url"],
        tuple(json.loads(row["events"])),
        tuple(json.loads(row["content_types"])) if row["content_types"] is not None else None,
        row["secret"],
        bool(row["enabled"]),
        row["source"],
        row["created_at"],
        row["failing_since"],
        row["disabled_reason"],
    )


class Webhooks:
    """Subscriptions and the outbox of one site; `subscriber` is what the event bus calls."""

    def __init__(
        self, site: Site, state: State, *, resolver: Resolver = system_resolver, clock: Callable[[], float] = time.time
    ) -> None:
        self.site = site
        self.state = state
        self.resolver = resolver
        self.clock = clock
        self.wake = threading.Event()  # its tables are declared in cms/schema.py (state.db)
        self.sync_config()

    # -- subscriptions -------------------------------------------------------------------------
    def _vet(self, url: str) -> Target:
        """The URL's vetted target under the site's [network] rules; BlockedTarget says why not."""
        return vet_url(url, self.site.network, resolver=self.resolver)

    def _check(self, url: Any, events: Any, content_types: Any) -> tuple[str, tuple[str, ...], tuple[str, ...] | None]:
        errors: dict[str, list[str]] = {}
        if not isinstance(url, str):
            errors["url"] = ["is required"]
        else:
            try:
                self._vet(url)
            except BlockedTarget as exc:
                errors["url"] = [exc.message]
        too_many = {k: p for k, v in (("events", events), ("content_types", content_types)) if (p := list_problems(v))}
        if too_many:  # before the per-item checks below
            raise Invalid(too_many)
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            errors["events"] = ["must be a non-empty list of event names"]
        else:
            unknown = [
                e
                for e in events
                if not (e == "*" or e.endswith(".*") or e.startswith("*.") or e in KNOWN_EVENTS or e in EVENT_ALIASES)
            ]
            if unknown:
                errors["events"] = [f"unknown event {unknown[0]!r}"]
        if content_types is not None and (
            not isinstance(content_types, list) or not all(isinstance(t, str) for t in content_types)
        ):
            errors["content_types"] = ["must be a list of content type names"]
        if errors:
            raise Invalid(errors)
        return url, tuple(events), tuple(content_types) if content_types is not None else None

    def create(
        self, values: dict[str, Any], *, source: str = "api", webhook_id: str | None = None
    ) -> tuple[Webhook, str | None]:
        """A new subscription; the generated secret is returned once (None when the caller gave one)."""
        name = values.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Invalid({"name": ["is required"]})
        if problems := text_problems(name, MAX_TITLE_CHARS):
            raise Invalid({"name": problems})
        url, events, types = self._check(
            values.get("url"), values.get("events", ["*"]), values.get("content_types", values.get("contentTypes"))
        )
        given = values.get("secret")
        if given is not None:
            _check_secret(given)
        secret = given or new_secret()
        enabled = values.get("enabled", True)
        if not isinstance(enabled, bool):
            raise Invalid({"enabled": ["must be true or false"]})
        hook_id = webhook_id or "wh_" + secrets.token_hex(8)
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO webhooks (id, name, url, events, content_types, secret, enabled, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hook_id,
                    name.strip(),
                    url,
                    json.dumps(events),
                    json.dumps(types) if types is not None else None,
                    secret,
                    int(enabled),
                    source,
                    _now_iso(),
                ),
            )
        return self.get(hook_id), (None if given else secret)

    def sync_config(self) -> None:
        """Make the `[[webhooks]]` of cms.toml present (ids `cfg_<hash of name>`), config winning.

        A config webhook without a secret gets a generated one, kept across restarts; a person
        with access to the site reads it with `cms webhooks secret ID`. Every process that opens
        the site runs this (the server, each `cms` command), so it is one transaction that only
        touches what differs: a declared webhook never disappears for a moment (an event
        enqueued meanwhile by a running server would miss it), and its `failing_since` is kept
        while its declaration is unchanged. One disabled by a 410 is enabled again, as declared.
        """
        wanted: dict[str, tuple[Any, ...]] = {}
        for raw in self.site.webhooks:
            name = str(raw.get("name", ""))
            hook_id = "cfg_" + hashlib.sha256(name.encode()).hexdigest()[:12]
            unknown = sorted(set(raw) - {"name", "url", "events", "content_types", "contentTypes", "secret", "enabled"})
            if unknown:
                raise ConfigError(f"unknown key webhooks.{unknown[0]} in cms.toml", key=f"webhooks.{unknown[0]}")
            values = dict(raw)
            try:
                if not name.strip():
                    raise Invalid({"name": ["is required"]})
                url, events, types = self._check(
                    values.get("url"),
                    values.get("events", ["*"]),
                    values.get("content_types", values.get("contentTypes")),
                )
                if values.get("secret") is not None:
                    _check_secret(values["secret"])
                enabled = values.get("enabled", True)
                if not isinstance(enabled, bool):
                    raise Invalid({"enabled": ["must be true or false"]})
            except Invalid as exc:
                raise ConfigError(f"webhook {raw.get('name')!r} in cms.toml: {exc.details}", key="webhooks") from None
            wanted[hook_id] = (name.strip(), url, events, types, values.get("secret"), enabled)
        with self.state.transaction() as db:
            cursor = db.execute("SELECT * FROM webhooks WHERE source = 'config'")
            cursor.row_factory = sqlite3.Row
            existing = {w.id: w for w in map(_row_webhook, cursor.fetchall())}
            for hook_id in set(existing) - set(wanted):
                db.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))
            for hook_id, (name, url, events, types, given, enabled) in wanted.items():
                old = existing.get(hook_id)
                secret = given or (old.secret if old else new_secret())
                if old is not None and (old.name, old.url, old.events, old.content_types, old.secret, old.enabled) == (
                    name,
                    url,
                    events,
                    types,
                    secret,
                    enabled,
                ):
                    continue
                db.execute(
                    "INSERT INTO webhooks (id, name, url, events, content_types, secret, enabled, source, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'config', ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                    " url = excluded.url, events = excluded.events, content_types = excluded.content_types,"
                    " secret = excluded.secret, enabled = excluded.enabled, failing_since = NULL,"
                    " disabled_reason = NULL",
                    (
                        hook_id,
                        name,
                        url,
                        json.dumps(events),
                        json.dumps(types) if types is not None else None,
                        secret,
                        int(enabled),
                        _now_iso(),
                    ),
                )

    def secret_of(self, hook_id: str) -> str:
        return self.get(hook_id).secret

    def get(self, hook_id: str) -> Webhook:
        rows = self.state.query("SELECT * FROM webhooks WHERE id = ?", (hook_id,))
        if not rows:
            raise NotFound(f"no webhook {hook_id!r}")
        return _row_webhook(rows[0])

    def list(self) -> list[Webhook]:
        return [_row_webhook(r) for r in self.state.query("SELECT * FROM webhooks ORDER BY created_at, id")]

    def update(self, hook_id: str, values: dict[str, Any]) -> Webhook:
        hook = self.get(hook_id)
        if hook.source == "config":
            raise Conflict("this webhook is declared in cms.toml; change it there")
        merged = {
            "url": hook.url,
            "events": list(hook.events),
            "content_types": list(hook.content_types) if hook.content_types is not None else None,
        }
        unknown = sorted(set(values) - {"name", "url", "events", "content_types", "contentTypes", "enabled", "secret"})
        if unknown:
            raise Invalid({k: ["is not a webhook setting"] for k in unknown})
        if "contentTypes" in values:
            values = {**values, "content_types": values["contentTypes"]}
        merged.update({k: v for k, v in values.items() if k in merged})
        url, events, types = self._check(merged["url"], merged["events"], merged["content_types"])
        enabled = values.get("enabled", hook.enabled)
        if not isinstance(enabled, bool):
            raise Invalid({"enabled": ["must be true or false"]})
        name = values.get("name", hook.name)
        if not isinstance(name, str) or not name.strip():
            raise Invalid({"name": ["must be a non-empty string"]})
        if problems := text_problems(name, MAX_TITLE_CHARS):
            raise Invalid({"name": problems})
        secret = values.get("secret", hook.secret)
        _check_secret(secret)
        with self.state.transaction() as db:
            db.execute(
                "UPDATE webhooks SET name = ?, url = ?, events = ?, content_types = ?, enabled = ?, secret = ?,"
                " failing_since = CASE WHEN ? THEN NULL ELSE failing_since END,"
                " disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END WHERE id = ?",
                (
                    name.strip(),
                    url,
                    json.dumps(events),
                    json.dumps(types) if types is not None else None,
                    int(enabled),
                    secret,
                    int(enabled),
                    int(enabled),
                    hook_id,
                ),
            )
        return self.get(hook_id)

    def delete(self, hook_id: str) -> None:
        hook = self.get(hook_id)
        if hook.source == "config":
            raise Conflict("this webhook is declared in cms.toml; remove it there")
        with self.state.transaction() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))
            db.execute(
                "UPDATE outbox SET status = 'cancelled', finished_at = ? WHERE webhook_id = ? AND status IN "
                "('pending', 'sending')",
                (self.clock(), hook_id),
            )

    # -- the outbox ------------------------------------------------------------------------------
    def body_of(self, event: Event) -> bytes:
        payload = event.as_dict()
        payload["site"] = self.site.site.base_url
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()

    def enqueue(self, event: Event, only: str | None = None) -> builtins.list[int]:
        """Outbox rows for every subscription that wants the event (durable before returning)."""
        hooks = [h for h in self.list() if (h.id == only if only else h.wants(event))]
        if not hooks:
            return []
        body = self.body_of(event)
        now = self.clock()
        ids = []
        with self.state.transaction() as db:
            for hook in hooks:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, webhook_id, event_name, body, ordering_key, created_at,"
                    " next_attempt_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                    (event.id, hook.id, event.name, body, event.key or event.id, now, now),
                )
                if cursor.rowcount:
                    ids.append(int(cursor.lastrowid or 0))
        self.wake.set()
        return ids

    def subscriber(self, event: Event) -> None:
        self.enqueue(event)

    def deliveries(
        self, hook_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        self.get(hook_id)
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

    def redeliver(self, hook_id: str, delivery_id: int) -> None:
        """Send a delivery again now, whatever its state (a manual replay)."""
        self.get(hook_id)
        with self.state.transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, finished_at = NULL, "
                "lease_until = NULL WHERE id = ? AND webhook_id = ?",
                (self.clock(), delivery_id, hook_id),
            )
            if not cursor.rowcount:
                raise NotFound(f"no delivery {delivery_id} for webhook {hook_id!r}")
        self.wake.set()

    def pending_count(self) -> int:
        return int(self.state.query("SELECT COUNT(*) AS n FROM outbox WHERE status IN ('pending', 'sending')")[0]["n"])

    # -- sending ---------------------------------------------------------------------------------
    def claim(self, limit: int) -> builtins.list[Any]:
        """Due rows whose (endpoint, document) has no older unfinished row, leased to this process."""
        now = self.clock()
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
                    (now + _LEASE_S + 2 * self.site.delivery.timeout, row_id, now),
                )
                if cursor.rowcount:
                    claimed.append(row_id)
        if not claimed:
            return []
        marks = ",".join("?" * len(claimed))
        return self.state.query(f"SELECT * FROM outbox WHERE id IN ({marks}) ORDER BY id", tuple(claimed))  # noqa: S608

    def send(self, row: Any, client: httpx.Client) -> None:
        """One attempt for one claimed row, then record the outcome and schedule what follows.

        The attempt's log entry and its outcome are one transaction (one commit per attempt, and
        no attempt is logged without its row moving on). A subscription that was deleted or
        disabled since the row was queued gets no request: the row is cancelled.
        """
        try:
            hook: Webhook | None = self.get(row["webhook_id"])
        except NotFound:
            hook = None
        if hook is None or not hook.enabled:
            with self.state.transaction() as db:
                self._finish(db, row["id"], "cancelled", None)
            return
        timeout = self.site.delivery.timeout
        timestamp = int(time.time())
        started = time.perf_counter()
        status: int | None = None
        excerpt = error = None
        retry_after: float | None = None
        try:
            target = self._vet(hook.url)
            headers = {
                "content-type": "application/json",
                "user-agent": f"cms-webhooks/{__version__}",
                "webhook-id": row["event_id"],
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(hook.secret, row["event_id"], timestamp, bytes(row["body"])),
                "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
            }
            extensions = {"sni_hostname": target.host} if target.url.startswith("https") else {}
            with client.stream(
                "POST", target.pinned_url, content=bytes(row["body"]), headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
                retry_after = _retry_after(response.headers.get("retry-after"))
                chunk = b""
                for part in response.iter_bytes():
                    chunk += part
                    # httpx's timeout is per read: a receiver dripping its answer is cut off here
                    if len(chunk) >= _EXCERPT or time.perf_counter() - started > timeout:
                        break
                excerpt = chunk[:_EXCERPT].decode("utf-8", "replace")
        except BlockedTarget as exc:
            error = f"blocked: {exc.message}"
        except httpx.TimeoutException:
            error = f"timed out after {timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = (time.perf_counter() - started) * 1000
        attempts = int(row["attempts"]) + 1
        disabled = False
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO attempts (outbox_id, webhook_id, attempted_at, status_code, latency_ms, response, "
                "error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row["id"], hook.id, self.clock(), status, round(latency, 1), excerpt, error),
            )
            db.execute("UPDATE outbox SET attempts = ?, last_status = ? WHERE id = ?", (attempts, status, row["id"]))
            if status is not None and 200 <= status < 300:
                self._finish(db, row["id"], "delivered", hook.id)
            elif status == 410:
                self._finish(db, row["id"], "failed", hook.id)
                self._disable(db, hook.id, "the receiver answered 410 Gone")
                disabled = True
            elif error and error.startswith("blocked"):
                self._finish(db, row["id"], "failed", hook.id)
                self._mark_failing(db, hook.id)
            else:
                self._retry(db, row["id"], hook.id, attempts, retry_after if status in (429, 503) else None)
        if disabled:
            log.warning("webhook %s disabled: the receiver answered 410 Gone", hook.id)

    def _retry(self, db: Any, row_id: int, hook_id: str, attempts: int, retry_after: float | None) -> None:
        schedule = self.site.delivery.retry_schedule
        if attempts > len(schedule):
            self._finish(db, row_id, "failed", hook_id)
            self._mark_failing(db, hook_id)
            return
        base = schedule[attempts - 1]
        jitter = self.site.delivery.jitter
        delay = base * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - spreading retries, not secrecy
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_S))
        delay *= self.site.delivery.time_scale
        db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, lease_until = NULL WHERE id = ?",
            (self.clock() + delay, row_id),
        )

    def _finish(self, db: Any, row_id: int, status: str, hook_id: str | None) -> None:
        db.execute(
            "UPDATE outbox SET status = ?, finished_at = ?, lease_until = NULL WHERE id = ?",
            (status, self.clock(), row_id),
        )
        if status == "delivered" and hook_id:
            db.execute("UPDATE webhooks SET failing_since = NULL WHERE id = ?", (hook_id,))

    def _mark_failing(self, db: Any, hook_id: str) -> None:
        db.execute("UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?", (_now_iso(), hook_id))

    def _disable(self, db: Any, hook_id: str, reason: str) -> None:
        db.execute("UPDATE webhooks SET enabled = 0, disabled_reason = ? WHERE id = ?", (reason, hook_id))
        db.execute(
            "UPDATE outbox SET status = 'cancelled', finished_at = ? WHERE webhook_id = ? AND status = 'pending'",
            (self.clock(), hook_id),
        )

    def sweep(self) -> None:
        """Forget finished deliveries older than `delivery.keep_days`."""
        cutoff = self.clock() - self.site.delivery.keep_days * 86_400
        with self.state.transaction() as db:
            db.execute(
                "DELETE FROM attempts WHERE outbox_id IN (SELECT id FROM outbox WHERE finished_at < ?)", (cutoff,)
            )
            db.execute("DELETE FROM outbox WHERE finished_at < ?", (cutoff,))


class Deliverer:
    """Background delivery: a loop that claims due rows and sends them on a small thread pool."""

    def __init__(self, webhooks: Webhooks, *, transport: httpx.BaseTransport | None = None) -> None:
        self.webhooks = webhooks
        self.workers = max(1, webhooks.site.delivery.workers)
        timeout = webhooks.site.delivery.timeout
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            verify=True,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cms-webhook")
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cms-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.webhooks.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _run(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                sent = self.step()
                if time.monotonic() - last_sweep > 3600:
                    self.webhooks.sweep()
                    last_sweep = time.monotonic()
            except Exception:  # noqa: BLE001 - the delivery loop must outlive any one bad row
                log.exception("webhook delivery loop error")
                sent = 0
            if not sent:
                self.webhooks.wake.wait(0.25)
                self.webhooks.wake.clear()

    def step(self) -> int:
        """Claim and start as many due deliveries as there are free workers; how many started."""
        with self._lock:
            free = self.workers - self._busy
        if free <= 0:
            time.sleep(0.005)
            return 0
        rows = self.webhooks.claim(free)
        for row in rows:
            with self._lock:
                self._busy += 1
            self._pool.submit(self._send, row)
        return len(rows)

    def _send(self, row: Any) -> None:
        try:
            self.webhooks.send(row, self.client)
        except Exception:  # noqa: BLE001
            log.exception("webhook delivery %s failed unexpectedly", row["id"])
        finally:
            with self._lock:
                self._busy -= 1
            self.webhooks.wake.set()

    def flush(self, timeout: float = 30.0) -> int:
        """Send everything due now (for `cms webhooks flush` and `cms build`); how many attempts started."""
        deadline = time.monotonic() + timeout
        started = 0
        while time.monotonic() < deadline:
            # Idle is read before stepping: a step that starts nothing because every slot is busy
            # must not end the flush when those deliveries finish just after it (the row it could
            # not start would be left pending).
            with self._lock:
                idle = self._busy == 0
            count = self.step()
            started += count
            if not count and idle:
                break
            if not count:
                time.sleep(0.01)
        return started


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
