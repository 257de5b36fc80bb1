"""The Starlette application: `create_app(site, ...)` builds it from data; no module-level app.

Middleware, outermost first: access log (one line per request, credentials never logged),
security headers, and the body limit that answers 413 as soon as a body passes its cap, before
it is buffered (Starlette and uvicorn set no limit of their own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cms.audit import AuditEntry, AuditLog, action_of
from cms.auth import Keys
from cms.clock import Clock, iso_z, utc_now
from cms.config import Site
from cms.content.index import Index
from cms.content.store import Store
from cms.errors import PayloadTooLarge
from cms.events.bus import Bus
from cms.events.webhooks import Webhooks
from cms.ratelimit import RateLimiter
from cms.state import State

from . import audit, documents, keys, media, openapi, system, terms, types, webhooks
from .answers import ReadyAnswers
from .errors import HANDLERS
from .http import Services
from .serialize import DocumentSerializer

access_log = logging.getLogger("cms.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def _error_bytes(status: int, code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": {}}})


class BodyLimit:
    """Refuse request bodies over the limit: at once from Content-Length, else while they stream in."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int], max_query_bytes: int) -> None:
        self.app = app
        self.limit_for = limit_for
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            await _send_error(
                send, 414, "URI_TOO_LONG", f"the query string is longer than {self.max_query_bytes} bytes"
            )
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(send, 413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = _error_bytes(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Headers:
    """Security and rate-limit headers on every response, the access log line, the audit entry of writes."""

    def __init__(
        self,
        app: ASGIApp,
        log_requests: bool,
        audit: AuditLog | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.app = app
        self.log_requests = log_requests
        self.audit = audit
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS, *_rate_headers(scope)]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            if self.audit is not None and scope["method"] in WRITE_METHODS and scope["path"].startswith("/api/"):
                self._audit(scope, status)
            if self.log_requests:
                key = scope.get("api_key")
                client = scope.get("client") or ("-", 0)
                # The path only: query strings may carry `api_token`, and paths never hold secrets.
                access_log.info(
                    '%s "%s %s" %s %.1fms key=%s',
                    client[0],
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                    key.id if key else "-",
                )

    def _audit(self, scope: Scope, status: int) -> None:
        assert self.audit is not None
        key = scope.get("api_key")
        client = scope.get("client") or ("-", 0)
        self.audit.append(
            AuditEntry(
                time=iso_z(self.clock(), "seconds"),
                action=action_of(scope["method"], scope["path"]),
                target=scope["path"],
                result=status,
                key_id=key.id if key else None,
                key_name=key.name if key else None,
                client=client[0],
                method=scope["method"],
            )
        )


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _rate_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    verdict = scope.get("rate_limit")
    if verdict is None:
        return []
    return [
        (b"x-ratelimit-limit", str(verdict.limit).encode()),
        (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
        (b"x-ratelimit-reset", str(verdict.reset_at).encode()),
    ]


class BodyToken:
    """Seed-compatible `api_token` in a JSON body (only when the site enables it): lifted out of the
    body into the scope before the handler sees it. Runs inside BodyLimit, so the body is capped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("api_token"), str):
            scope["body_token"] = data.pop("api_token")
            body = orjson.dumps(data)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def api_routes() -> list[Route]:
    """Every route of the API, in the order of its document (each resource module declares its own)."""
    return [
        *system.routes(),
        *documents.routes(),
        *types.routes(),
        *terms.routes(),
        *keys.routes(),
        *audit.routes(),
        *webhooks.routes(),
        *openapi.routes(),
        *media.routes(),
    ]


def create_app(
    site: Site,
    *,
    index: Index | None = None,
    state: State | None = None,
    bus: Bus | None = None,
    clock: Clock = utc_now,
    log_requests: bool = False,
    shared_limits: bool = True,
) -> Starlette:
    """The API application for one site; tests pass their own index, state and clock.

    `shared_limits=False` when this process alone serves the site: rate limits are then counted in
    memory (see cms/ratelimit.py); several worker processes must share them through the file."""
    index = index or Index.load(site)
    state = state or State(site.state_dir)
    bus = bus or Bus()
    store = Store(site, index, bus, clock)
    svc = Services(
        site=site,
        index=index,
        store=store,
        state=state,
        keys=Keys(state, clock),
        bus=bus,
        clock=clock,
        limiter=RateLimiter(site.state_dir, clock, shared=shared_limits),
        audit=AuditLog(site.state_dir),
        answers=ReadyAnswers(),
        webhooks=Webhooks(site, state, clock=clock),
        serializer=DocumentSerializer(site, index),
    )
    app = Starlette(routes=api_routes(), exception_handlers=HANDLERS)
    app.state.services = svc
    bus.subscribe(svc.webhooks.subscriber)  # every event lands in the durable outbox
    json_limit = site.api.max_json_bytes

    # Media uploads: the file plus multipart overhead, or base64 (4/3) plus the JSON envelope (14.5 MiB for 10 MiB).
    media_multipart = site.media.max_bytes + 64 * 1024
    media_json = site.media.max_bytes * 29 // 20

    def limit_for(scope: Scope) -> int:
        if scope["path"] == "/api/v1/media" and scope["method"] == "POST":
            content_type = dict(scope.get("headers", ())).get(b"content-type", b"")
            return media_multipart if content_type.lower().startswith(b"multipart/") else media_json
        return json_limit

    # add_middleware wraps: the last added runs first. Order on the way in: CORS, headers/log/audit,
    # body limit, body token (so the token lifter only ever sees a capped body).
    if site.api.allow_query_token:
        app.add_middleware(BodyToken)
    app.add_middleware(BodyLimit, limit_for=limit_for, max_query_bytes=site.api.max_query_bytes)
    app.add_middleware(Headers, log_requests=log_requests, audit=svc.audit, clock=clock)
    if site.api.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(site.api.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "X-API-Secret", "Content-Type", "If-Match", "If-None-Match"],
            expose_headers=[
                "ETag",
                "Location",
                "Link",
                "X-Total-Count",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    return app
