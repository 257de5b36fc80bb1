"""Webhook subscriptions, tests, delivery logs and redelivery (admin scope); seed 000's list/trigger.

Each operation is declared once (cms/api/operations.py). A subscription's body is its settings'
one declaration, `WebhookSettings` (cms/events/subscriptions.py), and a PATCH's is `WebhookChanges`,
derived from it: the same class checks a body here, a PATCH merged onto the stored settings and a
cms.toml table in the service, and gives the published schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from cms.content.query import pagination
from cms.errors import NotFound
from cms.events.bus import Event
from cms.events.subscriptions import KNOWN_EVENTS, WebhookChanges, WebhookSettings
from cms.events.webhooks import Webhooks

from .http import json_response
from .operations import Answer, Call, Integer, Shape, operation, routes_of

TAG = "webhooks"
HOOK_ID = {"id": "Webhook id (wh_... or cfg_... for cms.toml ones)"}
DELIVERY = {**HOOK_ID, "delivery": "Delivery id (a positive integer)"}
ACCEPTED = "Accepted: queued in the outbox"
MAX_PAGE = 1_000_000
EventName = Literal[KNOWN_EVENTS]  # type: ignore[valid-type]  # the one list of events


class Webhook(Shape):
    """A subscription as the API shows it: never its secret, only the secret's first characters."""

    id: str
    name: str
    url: str
    events: list[str]
    content_types: list[str] | None = Field(description="null: documents of every type")
    enabled: bool
    source: Literal["api", "cli", "config"]
    created_at: datetime
    failing_since: datetime | None = Field(description="When deliveries started failing (null while they succeed)")
    disabled_reason: str | None = Field(description="Why it was disabled, e.g. a 410 from the receiver")
    secret_hint: str = Field(description="The secret's first characters")


class NewWebhook(Webhook):
    """A subscription right after it was made: the only answer that may hold its secret."""

    secret: str | None = Field(None, description="The generated signing secret: shown only now")
    notice: str | None = None


class DeliveryAttempt(Shape):
    """One attempt of a delivery: the receiver's status and the start of its answer, or the error."""

    at: datetime | None
    status: int | None = Field(description="HTTP status of the receiver's answer (null: no answer)")
    latency_ms: int | float | None
    response: str | None = Field(description="The first KiB of the receiver's answer")
    error: str | None


class Delivery(Shape):
    """One event sent (or to send) to one subscription, with every attempt."""

    id: int
    event_id: str
    event: str
    status: Literal["pending", "sending", "delivered", "failed", "cancelled"]
    attempts: int
    last_status: int | None
    created_at: datetime | None
    next_attempt_at: datetime | None = Field(description="While pending: when the next attempt is due")
    finished_at: datetime | None
    log: list[DeliveryAttempt] = Field(description="One entry per attempt")


class QueuedTest(Shape):
    event_id: str
    delivery_id: int | None = Field(description="null when the subscription is disabled")


class Redelivery(Shape):
    delivery_id: int
    status: Literal["pending"]


class TriggeredEvent(Shape):
    event_id: str
    event: str


class TriggerInput(Shape):
    """An event to publish by hand (seed 000). Other keys are ignored, as they always were here."""

    model_config = ConfigDict(extra="ignore")

    event: EventName
    payload: dict[str, Any] = Field(default_factory=dict, description="Sent as is")


class DeliveriesQuery(Shape):
    page: Integer = Field(1, ge=1, le=MAX_PAGE, description="Page number")
    per_page: Integer = Field(50, ge=1, le=200, description="Page size")


def _hooks(call: Call) -> Webhooks:
    return call.services.webhooks


async def _list(call: Call) -> Response:
    hooks = _hooks(call).list()
    return json_response({"data": [h.as_dict() for h in hooks], "pagination": {"total": len(hooks)}})


@operation(
    "GET",
    "/api/v1/webhooks",
    "listWebhooks",
    "List webhook subscriptions",
    tag=TAG,
    scope="admin",
    ok=Answer(200, Webhook, "Every subscription", many=True),
)
async def list_webhooks(call: Call) -> Response:
    return await _list(call)


@operation(
    "GET",
    "/api/v1/webhook/list",
    "listWebhooksSeed000",
    "List webhook subscriptions (seed 000's path)",
    tag=TAG,
    scope="admin",
    ok=Answer(200, Webhook, "Every subscription", many=True),
)
async def list_webhooks_seed(call: Call) -> Response:
    return await _list(call)


@operation(
    "POST",
    "/api/v1/webhooks",
    "createWebhook",
    "Subscribe a URL to events",
    tag=TAG,
    scope="admin",
    body=WebhookSettings,
    ok=Answer(201, NewWebhook, "The subscription (and its secret, once)", headers=("Location",)),
    description="The URL must resolve to public addresses on port 80 or 443 (SSRF guard).",
    example={"name": "deploy", "url": "https://hooks.example.org/cms", "events": ["post.published"]},
)
async def create_webhook(call: Call) -> Response:
    body: WebhookSettings = call.body
    # The service checks the settings again, with the site's network rules for the URL.
    hook, secret = await run_in_threadpool(_hooks(call).create, body.model_dump(exclude_unset=True))
    data = hook.as_dict()
    if secret:
        data["secret"] = secret
        data["notice"] = "store the secret now: it is shown only once"
    return json_response({"data": data}, 201, headers={"Location": f"/api/v1/webhooks/{hook.id}"})


@operation(
    "GET",
    "/api/v1/webhooks/{id}",
    "getWebhook",
    "Get a webhook",
    tag=TAG,
    scope="admin",
    path_params=HOOK_ID,
    ok=Answer(200, Webhook, "The subscription"),
)
async def get_webhook(call: Call) -> Response:
    return json_response({"data": _hooks(call).get(call.path("id")).as_dict()})


@operation(
    "PATCH",
    "/api/v1/webhooks/{id}",
    "updateWebhook",
    "Update a webhook (merge)",
    tag=TAG,
    scope="admin",
    path_params=HOOK_ID,
    body=WebhookChanges,
    ok=Answer(200, Webhook, "The subscription"),
    errors=(409,),
    description="409 for webhooks declared in cms.toml. Enabling clears the failure state.",
    example={"events": ["post.published", "post.updated"], "enabled": True},
)
async def update_webhook(call: Call) -> Response:
    changes: BaseModel = call.body
    # Merged onto the stored settings and checked as a whole by the service (WebhookSettings.parse).
    hook = await run_in_threadpool(_hooks(call).update, call.path("id"), changes.model_dump(exclude_unset=True))
    return json_response({"data": hook.as_dict()})


@operation(
    "DELETE",
    "/api/v1/webhooks/{id}",
    "deleteWebhook",
    "Delete a webhook (pending deliveries are cancelled)",
    tag=TAG,
    scope="admin",
    path_params=HOOK_ID,
    ok=Answer(204, None, "Deleted"),
    errors=(409,),
)
async def delete_webhook(call: Call) -> Response:
    await run_in_threadpool(_hooks(call).delete, call.path("id"))
    return Response(status_code=204)


@operation(
    "POST",
    "/api/v1/webhooks/{id}/test",
    "testWebhook",
    "Queue a webhook.test event for this subscription",
    tag=TAG,
    scope="admin",
    path_params=HOOK_ID,
    ok=Answer(202, QueuedTest, ACCEPTED),
)
async def test_webhook(call: Call) -> Response:
    """Queue a `webhook.test` event for this one subscription and say which delivery it is."""
    hooks = _hooks(call)
    hook = hooks.get(call.path("id"))
    event = Event("webhook.test", {"webhook": {"id": hook.id, "name": hook.name}}, source="api")
    ids = await run_in_threadpool(lambda: hooks.enqueue(event, only=hook.id))
    return json_response({"data": {"event_id": event.id, "delivery_id": ids[0] if ids else None}}, 202)


@operation(
    "GET",
    "/api/v1/webhooks/{id}/deliveries",
    "listWebhookDeliveries",
    "A webhook's deliveries with their attempts, newest first",
    tag=TAG,
    scope="admin",
    path_params=HOOK_ID,
    query=DeliveriesQuery,
    ok=Answer(200, Delivery, "One page of deliveries", many=True, pagination="Pagination"),
)
async def list_deliveries(call: Call) -> Response:
    query: DeliveriesQuery = call.query
    page, per_page = query.page, query.per_page
    rows, total = _hooks(call).deliveries(call.path("id"), limit=per_page, offset=(page - 1) * per_page)
    return json_response({"data": rows, "pagination": pagination(total, page, per_page)})


@operation(
    "POST",
    "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    "redeliverWebhook",
    "Send a delivery again now",
    tag=TAG,
    scope="admin",
    path_params=DELIVERY,
    ok=Answer(202, Redelivery, ACCEPTED),
)
async def redeliver(call: Call) -> Response:
    try:
        delivery = int(call.path("delivery"))
        if not 0 < delivery < 2**63:
            raise ValueError(delivery)
    except ValueError:
        raise NotFound("no such delivery") from None
    await run_in_threadpool(_hooks(call).redeliver, call.path("id"), delivery)
    return json_response({"data": {"delivery_id": delivery, "status": "pending"}}, 202)


@operation(
    "POST",
    "/api/v1/webhook/trigger",
    "triggerWebhookEvent",
    "Publish an event to every subscriber (seed 000)",
    tag=TAG,
    scope="admin",
    body=TriggerInput,
    ok=Answer(202, TriggeredEvent, ACCEPTED),
    example={"event": "build.completed", "payload": {"ok": True}},
)
async def trigger(call: Call) -> Response:
    body: TriggerInput = call.body
    event = Event(body.event, {"payload": body.payload, "manual": True}, source="api")
    await run_in_threadpool(call.services.bus.publish, [event])
    return json_response({"data": {"event_id": event.id, "event": body.event}}, 202)


def routes() -> list[Route]:
    return routes_of(
        list_webhooks,
        create_webhook,
        get_webhook,
        update_webhook,
        delete_webhook,
        test_webhook,
        list_deliveries,
        redeliver,
        list_webhooks_seed,
        trigger,
    )
