"""API key management over HTTP (admin scope) and the calling key's own status."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.auth import IssuedKey
from cms.content.model import to_datetime
from cms.errors import BadRequest, Invalid, Unauthorized

from .http import api_key, json_response, only_params, query_params, read_json, require, services


def _issued(issued: IssuedKey) -> dict[str, object]:
    data: dict[str, object] = {**issued.key.as_dict(), "key": issued.token}
    if issued.secret:
        data["secret"] = issued.secret
    data["notice"] = "store the key now: it is shown only once"
    return data


async def list_keys(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    keys = services(request).keys.list()
    return json_response({"data": [k.as_dict() for k in keys], "pagination": {"total": len(keys)}})


async def create_key(request: Request) -> Response:
    svc = services(request)
    require(request, "admin")
    only_params(query_params(request), ())
    body = await read_json(request)
    unknown = sorted(set(body) - {"name", "scopes", "expires_at", "with_secret", "types"})
    if unknown:
        raise Invalid({k: ["is not a key setting"] for k in unknown})
    scopes = body.get("scopes", ["read"])
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Invalid({"scopes": ["must be a list of scope names"]})
    expires: datetime | None = None
    if body.get("expires_at") is not None:
        expires = to_datetime(body["expires_at"], svc.site.tz) if isinstance(body["expires_at"], str) else None
        if expires is None:
            raise Invalid({"expires_at": ["must be an ISO 8601 date-time"]})
    types = body.get("types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise Invalid({"types": ["must be a list of content type names"]})
    with_secret = body.get("with_secret", False)
    if not isinstance(with_secret, bool):
        raise Invalid({"with_secret": ["must be true or false"]})
    name = body.get("name")
    if not isinstance(name, str):
        raise Invalid({"name": ["is required"]})
    try:
        issued = await run_in_threadpool(
            lambda: svc.keys.create(name, scopes, expires_at=expires, with_secret=with_secret, types=types)
        )
    except BadRequest as exc:
        raise Invalid({"scopes" if "scope" in exc.message else "name": [exc.message]}) from None
    return json_response({"data": _issued(issued)}, 201, headers={"Location": f"/api/v1/api-keys/{issued.key.id}"})


async def get_key(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    return json_response({"data": services(request).keys.get(request.path_params["id"]).as_dict()})


async def delete_key(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    await run_in_threadpool(services(request).keys.revoke, request.path_params["id"])
    return Response(status_code=204)


async def disable_key(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    key = await run_in_threadpool(services(request).keys.set_enabled, request.path_params["id"], False)
    return json_response({"data": key.as_dict()})


async def enable_key(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    key = await run_in_threadpool(services(request).keys.set_enabled, request.path_params["id"], True)
    return json_response({"data": key.as_dict()})


async def rotate_key(request: Request) -> Response:
    require(request, "admin")
    only_params(query_params(request), ())
    issued = await run_in_threadpool(services(request).keys.rotate, request.path_params["id"])
    return json_response({"data": _issued(issued)})


async def key_status(request: Request) -> Response:
    """The calling key's own status (seed 001's GET /api-key/status)."""
    only_params(query_params(request), ())
    key = api_key(request)
    if key is None:
        raise Unauthorized("send an API key in X-API-Key or Authorization: Bearer")
    data = {"has_key": True, **key.as_dict()}
    return json_response({"data": data})


def routes() -> list[Route]:
    return [
        Route("/api/v1/api-keys", list_keys, methods=["GET"]),
        Route("/api/v1/api-keys", create_key, methods=["POST"]),
        Route("/api/v1/api-keys/{id}", get_key, methods=["GET"]),
        Route("/api/v1/api-keys/{id}", delete_key, methods=["DELETE"]),
        Route("/api/v1/api-keys/{id}/disable", disable_key, methods=["POST"]),
        Route("/api/v1/api-keys/{id}/enable", enable_key, methods=["POST"]),
        Route("/api/v1/api-keys/{id}/rotate", rotate_key, methods=["POST"]),
        Route("/api/v1/api-key/status", key_status, methods=["GET"]),
    ]
