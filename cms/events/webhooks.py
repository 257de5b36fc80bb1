"""Webhooks of one site: the `Webhooks` service that the API, the CLI and the server use.

It composes the parts, each a module of its own:

    subscriptions.py  what a subscription is (`WebhookSettings`, checked once) and the `webhooks` table
    outbox.py         the durable queue: enqueue, claim with a lease, retry schedule, the delivery log
    delivery.py       one signed POST to a vetted, pinned address; the `Deliverer` threads
    signing.py        Standard Webhooks secrets and signatures

An event becomes outbox rows (one per subscription that wants it) before the write that caused it
returns; the `Deliverer` claims due rows and calls `send` for each. The names importers used
before the split are re-exported here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cms.clock import Clock, utc_now
from cms.config import Site
from cms.errors import NotFound
from cms.events.bus import Event
from cms.events.delivery import Deliverer, attempt_delivery
from cms.events.outbox import Outbox, body_of
from cms.events.signing import new_secret, secret_key, sign
from cms.events.subscriptions import (
    EVENT_ALIASES,
    KNOWN_EVENTS,
    WEBHOOK_KEYS,
    Subscriptions,
    Webhook,
    WebhookSettings,
    matches,
)
from cms.net import Resolver, Target, system_resolver, vet_url
from cms.state import State

if TYPE_CHECKING:
    import sqlite3

    import httpx

log = logging.getLogger("cms.webhooks")

__all__ = [
    "EVENT_ALIASES",
    "KNOWN_EVENTS",
    "WEBHOOK_KEYS",
    "Deliverer",
    "Webhook",
    "WebhookSettings",
    "Webhooks",
    "matches",
    "new_secret",
    "secret_key",
    "sign",
]


class Webhooks:
    """Subscriptions and the outbox of one site; `subscriber` is what the event bus calls."""

    def __init__(
        self, site: Site, state: State, *, resolver: Resolver = system_resolver, clock: Clock = utc_now
    ) -> None:
        self.site = site
        self.state = state
        self.resolver = resolver  # read at each vetting: a test may swap it on a running app
        self.clock = clock
        self.wake = threading.Event()  # set when a row may be due, so the Deliverer looks at once
        self.subscriptions = Subscriptions(site, state, vet=self.vet, clock=clock)
        self.outbox = Outbox(state, site.delivery, clock=clock)
        self.subscriptions.sync_config()

    def vet(self, url: str) -> Target:
        """The URL's vetted target under the site's [network] rules; BlockedTarget says why not."""
        return vet_url(url, self.site.network, resolver=self.resolver)

    # -- subscriptions -------------------------------------------------------------------------
    def create(
        self, values: Mapping[str, Any], *, source: str = "api", webhook_id: str | None = None
    ) -> tuple[Webhook, str | None]:
        """A new subscription; the generated secret is returned once (None when the caller gave one)."""
        return self.subscriptions.create(values, source=source, webhook_id=webhook_id)

    def update(self, hook_id: str, values: Mapping[str, Any]) -> Webhook:
        return self.subscriptions.update(hook_id, values)

    def delete(self, hook_id: str) -> None:
        self.subscriptions.delete(hook_id)

    def get(self, hook_id: str) -> Webhook:
        return self.subscriptions.get(hook_id)

    def secret_of(self, hook_id: str) -> str:
        return self.subscriptions.get(hook_id).secret

    def sync_config(self) -> None:
        """Make the `[[webhooks]]` of cms.toml present, config winning (see `Subscriptions.sync_config`)."""
        self.subscriptions.sync_config()

    # -- the outbox ------------------------------------------------------------------------------
    def body_of(self, event: Event) -> bytes:
        return body_of(event, self.site.site.base_url)

    def enqueue(self, event: Event, only: str | None = None) -> list[int]:
        """Outbox rows for every subscription that wants the event, or for `only` (durable before returning)."""
        hooks = [h.id for h in self.subscriptions.all() if (h.id == only if only else h.wants(event))]
        if not hooks:
            return []
        ids = self.outbox.enqueue(event, self.body_of(event), hooks)
        self.wake.set()
        return ids

    def subscriber(self, event: Event) -> None:
        self.enqueue(event)

    def deliveries(self, hook_id: str, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A page of a subscription's delivery log, newest first; and its length."""
        self.get(hook_id)
        return self.outbox.deliveries(hook_id, limit=limit, offset=offset)

    def redeliver(self, hook_id: str, delivery_id: int) -> None:
        """Send a delivery again now, whatever its state (a manual replay)."""
        self.get(hook_id)
        self.outbox.redeliver(hook_id, delivery_id)
        self.wake.set()

    def pending_count(self) -> int:
        return self.outbox.pending_count()

    # -- sending ---------------------------------------------------------------------------------
    def claim(self, limit: int) -> list[sqlite3.Row]:
        """Due rows, leased to this process (see `Outbox.claim`)."""
        return self.outbox.claim(limit)

    def send(self, row: Any, client: httpx.Client) -> None:
        """One attempt for one claimed row, then record the outcome and schedule what follows.

        A subscription that was deleted or disabled since the row was queued gets no request: the
        row is cancelled.
        """
        try:
            hook: Webhook | None = self.get(row["webhook_id"])
        except NotFound:
            hook = None
        if hook is None or not hook.enabled:
            self.outbox.cancel(row["id"])
            return
        attempt = attempt_delivery(row, hook, client, vet=self.vet, timeout=self.site.delivery.timeout)
        if self.outbox.record(row, hook.id, attempt):
            log.warning("webhook %s disabled: the receiver answered 410 Gone", hook.id)

    def sweep(self) -> None:
        """Forget finished deliveries older than `delivery.keep_days`."""
        self.outbox.sweep()

    def list(self) -> list[Webhook]:  # last: inside the class, `list` would name this method
        """Every subscription, oldest first."""
        return self.subscriptions.all()
