"""The `webhooks` commands, and the delivery of the events other commands cause."""

from __future__ import annotations

from typing import Any

import click

from cms.cli.common import handle_errors, site_of, site_option
from cms.config import Site


def webhooks_of(site: Site) -> Any:
    from cms.events.webhooks import Webhooks
    from cms.state import State

    return Webhooks(site, State(site.state_dir))


def deliver_events(site: Site, events: list[Any]) -> None:
    """Put a command's events in the outbox and try to send them now (a server retries the rest)."""
    from cms.events.webhooks import Deliverer

    hooks = webhooks_of(site)
    queued = sum(len(hooks.enqueue(e)) for e in events)
    if queued:
        deliverer = Deliverer(hooks)
        try:
            deliverer.flush(timeout=site.delivery.timeout + 5)
        finally:
            deliverer.stop()
        click.echo(f"webhooks: {queued} delivery(ies) queued, {hooks.pending_count()} still pending")


@click.group()
def webhooks() -> None:
    """List, test and inspect webhook subscriptions and their deliveries."""


@webhooks.command("list")
@site_option
@handle_errors
def webhooks_list(site_path: str | None) -> None:
    """List subscriptions (from cms.toml and the API)."""
    hooks = webhooks_of(site_of(site_path)).list()
    if not hooks:
        click.echo("no webhooks; declare [[webhooks]] in cms.toml or POST /api/v1/webhooks")
    for hook in hooks:
        state = "enabled" if hook.enabled else f"disabled ({hook.disabled_reason or 'by hand'})"
        failing = f", failing since {hook.failing_since}" if hook.failing_since else ""
        click.echo(
            f"{hook.id:<22}{hook.name[:20]:<22}{state}{failing}\n{'':<22}{hook.url}  events: {', '.join(hook.events)}"
        )


@webhooks.command("test")
@click.argument("webhook_id")
@site_option
@handle_errors
def webhooks_test(webhook_id: str, site_path: str | None) -> None:
    """Send a `webhook.test` event to one subscription now and show the outcome."""
    from cms.events.bus import Event
    from cms.events.webhooks import Deliverer

    site = site_of(site_path)
    hooks = webhooks_of(site)
    hook = hooks.get(webhook_id)
    hooks.enqueue(Event("webhook.test", {"webhook": {"id": hook.id, "name": hook.name}}, source="cli"), only=hook.id)
    deliverer = Deliverer(hooks)
    try:
        deliverer.flush(timeout=site.delivery.timeout + 5)
    finally:
        deliverer.stop()
    rows, _ = hooks.deliveries(hook.id, limit=1)
    last = rows[0]["log"][-1] if rows and rows[0]["log"] else {}
    click.echo(
        f"{rows[0]['status'] if rows else 'not sent'}: HTTP {last.get('status') or '-'} "
        f"in {last.get('latency_ms') or '-'} ms {last.get('error') or ''}"
    )


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@site_option
@handle_errors
def webhooks_deliveries(webhook_id: str, limit: int, site_path: str | None) -> None:
    """The delivery log of one subscription, newest first, with every attempt."""
    rows, total = webhooks_of(site_of(site_path)).deliveries(webhook_id, limit=limit)
    click.echo(f"{total} delivery(ies)")
    for row in rows:
        click.echo(
            f"#{row['id']:<6}{row['event']:<22}{row['status']:<10}attempts={row['attempts']} "
            f"created={row['created_at']}"
        )
        for attempt in row["log"]:
            click.echo(
                f"        {attempt['at']}  HTTP {attempt['status'] or '-'}  {attempt['latency_ms']} ms  "
                f"{attempt['error'] or ''}"
            )


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id", type=int)
@site_option
@handle_errors
def webhooks_redeliver(webhook_id: str, delivery_id: int, site_path: str | None) -> None:
    """Queue one delivery again (sent by a running server or `cms webhooks flush`)."""
    webhooks_of(site_of(site_path)).redeliver(webhook_id, delivery_id)
    click.echo(f"delivery {delivery_id} queued again")


@webhooks.command("flush")
@click.option("--timeout", default=60.0, show_default=True, type=float, help="Seconds to keep sending.")
@site_option
@handle_errors
def webhooks_flush(timeout: float, site_path: str | None) -> None:
    """Send every delivery that is due now (e.g. after a crash, with no server running)."""
    from cms.events.webhooks import Deliverer

    hooks = webhooks_of(site_of(site_path))
    deliverer = Deliverer(hooks)
    try:
        started = deliverer.flush(timeout=timeout)
    finally:
        deliverer.stop()
    click.echo(f"{started} attempt(s) made; {hooks.pending_count()} delivery(ies) still pending")


@webhooks.command("secret")
@click.argument("webhook_id")
@site_option
@handle_errors
def webhooks_secret(webhook_id: str, site_path: str | None) -> None:
    """Print a subscription's signing secret (for webhooks declared in cms.toml without one)."""
    click.echo(webhooks_of(site_of(site_path)).secret_of(webhook_id))
