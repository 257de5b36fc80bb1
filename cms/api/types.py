"""Content types over HTTP: list, create, read, update (PATCH merges) and delete `_type.yaml` schemas."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.content.model import BUILTIN_TYPES, ContentType, content_type_from_dict
from cms.content.query import bool_param
from cms.errors import Invalid

from .http import json_response, only_params, query_params, read_json, require, services


def _type_dict(request: Request, ctype: ContentType) -> dict[str, Any]:
    svc = services(request)
    data = ctype.as_dict()
    data["documents"] = sum(1 for d in svc.index.docs.values() if d.type == ctype.name)
    data["endpoint"] = f"/api/v1/{ctype.name}" if ctype.name in ("posts", "pages") else f"/api/v1/content/{ctype.name}"
    return data


async def list_types(request: Request) -> Response:
    svc = services(request)
    require(request, "read")
    only_params(query_params(request), ())
    names = sorted(set(svc.index.types) | {d.type for d in svc.index.docs.values()})
    data = [_type_dict(request, svc.store.content_type(n)) for n in names]
    return json_response({"data": data, "pagination": {"total": len(data)}})


async def get_type(request: Request) -> Response:
    svc = services(request)
    require(request, "read")
    only_params(query_params(request), ())
    return json_response({"data": _type_dict(request, svc.store.content_type(request.path_params["name"]))})


async def create_type(request: Request) -> Response:
    svc = services(request)
    require(request, "admin")
    only_params(query_params(request), ())
    body = await read_json(request)
    name = body.pop("name", None)
    from cms.content.names import check_type_name

    check_type_name(name)
    ctype = await run_in_threadpool(lambda: svc.store.save_type(name, body, creating=True))
    return json_response(
        {"data": _type_dict(request, ctype)}, 201, headers={"Location": f"/api/v1/content-types/{ctype.name}"}
    )


async def update_type(request: Request) -> Response:
    svc = services(request)
    require(request, "admin")
    only_params(query_params(request), ())
    name = request.path_params["name"]
    current = svc.store.content_type(name)
    body = await read_json(request)
    body.pop("name", None)
    merged = {
        k: v
        for k, v in current.as_dict().items()
        if k in ("label", "description", "title_field", "slug_field", "pages", "template")
    }
    merged["fields"] = [
        f.as_dict() for f in current.fields if not current.builtin or f.name not in _builtin_names(name)
    ]
    merged.update(body)
    try:  # the whole merged schema must be valid...
        content_type_from_dict(name, merged, base=BUILTIN_TYPES.get(name))
    except ValueError as exc:
        raise Invalid({"fields": [str(exc)]}) from None
    # ...but only the keys sent are written: the rest of _type.yaml keeps its bytes and comments
    ctype = await run_in_threadpool(lambda: svc.store.save_type(name, body, creating=False))
    return json_response({"data": _type_dict(request, ctype)})


def _builtin_names(name: str) -> set[str]:
    from cms.content.model import BUILTIN_TYPES

    base = BUILTIN_TYPES.get(name)
    return {f.name for f in base.fields} if base else set()


async def delete_type(request: Request) -> Response:
    svc = services(request)
    require(request, "admin")
    params = query_params(request)
    only_params(params, ("force",))
    name = request.path_params["name"]
    await run_in_threadpool(lambda: svc.store.delete_type(name, force=bool_param(params, "force")))
    return Response(status_code=204)


def routes() -> list[Route]:
    return [
        Route("/api/v1/content-types", list_types, methods=["GET"]),
        Route("/api/v1/content-types", create_type, methods=["POST"]),
        Route("/api/v1/content-types/{name}", get_type, methods=["GET"]),
        Route("/api/v1/content-types/{name}", update_type, methods=["PATCH"]),
        Route("/api/v1/content-types/{name}", delete_type, methods=["DELETE"]),
    ]
