"""Webhook subscriptions, tests, delivery logs and redelivery (admin scope); seed 000's list/trigger."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.content.query import int_param
from cms.errors import Invalid, NotFound
from cms.events.bus import Event
from cms.events.webhooks import KNOWN_EVENTS, Webhooks

from .http import json_response, only_params, query_params, read_json, require, services


def _hooks(request: Request) -> Webhooks:
    return services(request).webhooks


async def list_webhooks(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    hooks = _hooks(request).list()
    return json_response({"data": [h.as_dict() for h in hooks], "pagination": {"total": len(hooks)}})


async def create_webhook(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    body = await read_json(request)  # its keys and values are checked by WebhookSettings.parse, like a PATCH's
    hook, secret = await run_in_threadpool(_hooks(request).create, body)
    data = hook.as_dict()
    if secret:
        data["secret"] = secret
        data["notice"] = "store the secret now: it is shown only once"
    return json_response({"data": data}, 201, headers={"Location": f"/api/v1/webhooks/{hook.id}"})


async def get_webhook(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    return json_response({"data": _hooks(request).get(request.path_params["id"]).as_dict()})


async def update_webhook(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    body = await read_json(request)
    hook = await run_in_threadpool(_hooks(request).update, request.path_params["id"], body)
    return json_response({"data": hook.as_dict()})


async def delete_webhook(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    await run_in_threadpool(_hooks(request).delete, request.path_params["id"])
    return Response(status_code=204)


async def test_webhook(request: Request) -> Response:
    """Queue a `webhook.test` event for this one subscription and say which delivery it is."""
    require(request, "admin")
    only_params(query_params(request), ())
    hooks = _hooks(request)
    hook = hooks.get(request.path_params["id"])
    event = Event("webhook.test", {"webhook": {"id": hook.id, "name": hook.name}}, source="api")
    ids = await run_in_threadpool(lambda: hooks.enqueue(event, only=hook.id))
    return json_response({"data": {"event_id": event.id, "delivery_id": ids[0] if ids else None}}, 202)


async def list_deliveries(request: Request) -> Response:
    require(request, "admin")
    params = query_params(request)
    only_params(params, ("page", "per_page"))
    page = int_param(params, "page", 1, 1, 1_000_000)
    per_page = int_param(params, "per_page", 50, 1, 200)
    rows, total = _hooks(request).deliveries(request.path_params["id"], limit=per_page, offset=(page - 1) * per_page)
    pages = max(1, -(-total // per_page))
    return json_response(
        {
            "data": rows,
            "pagination": {
                "total": total,
                "page": page,
                "per_page": per_page,
                "total_pages": pages,
                "has_next": page < pages,
                "has_prev": page > 1,
            },
        }
    )


async def redeliver(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    try:
        delivery = int(request.path_params["delivery"])
        if not 0 < delivery < 2**63:
            raise ValueError(delivery)
    except ValueError:
        raise NotFound("no such delivery") from None
    await run_in_threadpool(_hooks(request).redeliver, request.path_params["id"], delivery)
    return json_response({"data": {"delivery_id": delivery, "status": "pending"}}, 202)


async def trigger(request: Request) -> Response:
    """Seed 000's POST /webhook/trigger: publish an event with a given payload to every subscriber."""
    require(request, "admin")
    only_params(query_params(request), ())
    body = await read_json(request)
    name = body.get("event")
    payload = body.get("payload", {})
    if not isinstance(name, str) or name not in KNOWN_EVENTS:
        raise Invalid({"event": [f"must be one of {', '.join(KNOWN_EVENTS)}"]})
    if not isinstance(payload, dict):
        raise Invalid({"payload": ["must be an object"]})
    event = Event(name, {"payload": payload, "manual": True}, source="api")
    await run_in_threadpool(services(request).bus.publish, [event])
    return json_response({"data": {"event_id": event.id, "event": name}}, 202)


def routes() -> list[Route]:
    return [
        Route("/api/v1/webhooks", list_webhooks, methods=["GET"]),
        Route("/api/v1/webhooks", create_webhook, methods=["POST"]),
        Route("/api/v1/webhooks/{id}", get_webhook, methods=["GET"]),
        Route("/api/v1/webhooks/{id}", update_webhook, methods=["PATCH"]),
        Route("/api/v1/webhooks/{id}", delete_webhook, methods=["DELETE"]),
        Route("/api/v1/webhooks/{id}/test", test_webhook, methods=["POST"]),
        Route("/api/v1/webhooks/{id}/deliveries", list_deliveries, methods=["GET"]),
        Route("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", redeliver, methods=["POST"]),
        Route("/api/v1/webhook/list", list_webhooks, methods=["GET"]),
        Route("/api/v1/webhook/trigger", trigger, methods=["POST"]),
    ]
