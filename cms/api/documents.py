"""Documents over HTTP: posts, pages and any content type. Thin: parse, check scope, call the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.auth import ApiKey
from cms.content.model import Document, Status
from cms.content.query import Query, bool_param, parse_query, run
from cms.errors import Forbidden, Invalid, NotFound

from .answers import Answer
from .encode import dumps
from .http import (
    if_match,
    may_see_unpublished,
    only_params,
    paging_headers,
    public_read,
    query_params,
    raw_json_response,
    read_json,
    require,
    services,
)
from .media import localized_images
from .serialize import DocumentSerializer

ONE_PARAMS = ("fields", "render")


def _serializer(request: Request) -> DocumentSerializer:
    return services(request).serializer


def _type_of(request: Request, fixed: str | None) -> str:
    name = fixed or request.path_params["type"]
    services(request).store.content_type(name)  # 404 for an unknown type, 400 for a bad name
    return name


def _etag_headers(doc: Document) -> dict[str, str]:
    return {"ETag": f'"{doc.etag}"'}


def _render_flag(params: dict[str, Any]) -> bool:
    value = params.pop("render", None)
    if value is None:
        return False
    if value != "html":
        raise Invalid({"render": ["the only renderer is html"]})
    return True


def _visible_query(query: Query, may_see: bool) -> Query:
    if may_see:
        return query
    if query.statuses is not None and not query.statuses <= {Status.PUBLISHED}:
        raise Forbidden("this API key may only read published documents")
    return dataclasses.replace(query, statuses=frozenset({Status.PUBLISHED}))


def _answer_key(request: Request, type_name: str | None, key: ApiKey | None) -> Hashable:
    """What a list answer depends on besides the index and the time: the request as sent (the host
    shows in the Link header) and the standing of the key (which statuses, types and fields it sees)."""
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), b"")
    standing = None if key is None else (key.granted, key.types)
    return (type_name, scope["scheme"], host, scope["root_path"], scope["path"], scope["query_string"], standing)


async def _list(request: Request, type_name: str | None) -> Response:
    svc = services(request)
    key = public_read(request, type_name) if type_name else require(request, "read")
    now = svc.clock()
    generation = svc.index.generation  # read before the query: a change meanwhile makes the answer stale
    answer_key = _answer_key(request, type_name, key)
    ready = svc.answers.get(answer_key, generation, now)
    if ready is not None:
        return raw_json_response(ready.body, headers=ready.headers)
    params = query_params(request)
    html = _render_flag(params)
    query = parse_query(
        params,
        type_name=type_name,
        per_page=svc.site.defaults.per_page,
        max_per_page=svc.site.defaults.max_per_page,
        taxonomies=tuple(svc.site.taxonomies),
    )
    if type_name is None and query.type is not None:
        svc.store.content_type(query.type)
        if key is not None:
            key.require("read", query.type)
    query = _visible_query(query, may_see_unpublished(key))
    if query.search:  # full text may wait for its background fill: keep the event loop free
        page = await run_in_threadpool(run, svc.index, query, now)
    else:
        page = run(svc.index, query, now)
    ser = _serializer(request)
    if query.include or query.exclude_fields or html or query.search:
        items = b",".join(
            dumps(
                ser.shaped(
                    d,
                    now,
                    include=query.include,
                    exclude=query.exclude_fields,
                    html=html,
                    snippet=page.snippets.get(d.id) if query.search else None,
                    admin=key is not None and key.can("admin"),
                )
            )
            for d in page.items
        )
    else:
        items = b",".join(ser.full(d, now) for d in page.items)
    body = b'{"data":[' + items + b'],"pagination":' + dumps(page.pagination()) + b"}"
    headers = paging_headers(request, page)
    if page.until is not None:
        svc.answers.put(answer_key, Answer(body, headers, generation, now, page.until))
    return raw_json_response(body, headers=headers)


def _find(request: Request, type_name: str | None, ref: str, now: datetime) -> Document:
    svc = services(request)
    key = public_read(request, type_name) if type_name else require(request, "read")
    doc = svc.index.get(ref, type_name)
    if key is not None:
        key.require("read", doc.type)
    if not doc.is_live(now) and not may_see_unpublished(key):
        raise NotFound(f"no {type_name or 'document'} {ref!r}")  # do not reveal drafts exist
    return doc


async def _get(request: Request, type_name: str | None, ref: str) -> Response:
    svc = services(request)
    params = query_params(request)
    only_params(params, ONE_PARAMS)
    html = _render_flag(params)
    now = svc.clock()
    doc = _find(request, type_name, ref, now)
    headers = _etag_headers(doc)
    inm = request.headers.get("if-none-match")
    if inm and doc.etag in {t.strip().removeprefix("W/").strip('"') for t in inm.split(",")}:
        return Response(status_code=304, headers=headers)
    ser = _serializer(request)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    if "fields" in params:
        q = parse_query({"fields": params["fields"]})
        include, exclude = q.include, q.exclude_fields
    if include or exclude or html:
        key = request.scope.get("api_key")
        admin = key is not None and key.can("admin")
        body = dumps({"data": ser.shaped(doc, now, include=include, exclude=exclude, html=html, admin=admin)})
    else:
        body = b'{"data":' + ser.full(doc, now) + b"}"
    return raw_json_response(body, headers=headers)


def _doc_response(
    request: Request,
    doc: Document,
    status: int = 200,
    location: str | None = None,
    localized: list[dict[str, Any]] | None = None,
) -> Response:
    headers = _etag_headers(doc)
    if location:
        headers["Location"] = location
    body = b'{"data":' + _serializer(request).full(doc, services(request).clock())
    if localized is not None:  # localize_images: one entry per remote image, beside "data"
        body += b',"localized":' + dumps(localized)
    return raw_json_response(body + b"}", status=status, headers=headers)


def _localize_flag(body: dict[str, Any]) -> bool:
    """Pop `localize_images` (true: bring remote images into the media library before writing)."""
    value = body.pop("localize_images", False)
    if not isinstance(value, bool):
        raise Invalid({"localize_images": ["must be true or false"]})
    return value


def _prefix(type_name: str) -> str:
    return f"/api/v1/{type_name}" if type_name in ("posts", "pages") else f"/api/v1/content/{type_name}"


async def _create(request: Request, type_name: str) -> Response:
    svc = services(request)
    require(request, "write", type_name)
    body = await read_json(request)
    localize = _localize_flag(body)
    only_params(query_params(request), ())
    ctype = svc.store.content_type(type_name)
    missing = [k for k in ("title", "content") if k not in body and (k == "title" or ctype.builtin)]
    if missing:
        raise Invalid({k: ["is required"] for k in missing})
    if body.get("status") == "trash":
        require(request, "delete", type_name)
    async with localized_images(request, body, localize) as report:
        doc = await run_in_threadpool(svc.store.create, type_name, body)
    location = f"{_prefix(type_name)}/{doc.id}"
    return _doc_response(request, doc, 201, location=location, localized=report if localize else None)


async def _write(request: Request, type_name: str | None, ref: str, *, replace: bool) -> Response:
    svc = services(request)
    doc = _find(request, type_name, ref, svc.clock())
    require(request, "write", doc.type)
    only_params(query_params(request), ())
    body = await read_json(request)
    localize = _localize_flag(body)
    if body.get("status") == "trash":
        require(request, "delete", doc.type)
    match = if_match(request, required=svc.site.api.require_if_match)
    async with localized_images(request, body, localize) as report:
        updated = await run_in_threadpool(lambda: svc.store.update(doc, body, if_match=match, replace=replace))
    return _doc_response(request, updated, localized=report if localize else None)


async def _delete(request: Request, type_name: str | None, ref: str) -> Response:
    svc = services(request)
    doc = _find(request, type_name, ref, svc.clock())
    require(request, "delete", doc.type)
    params = query_params(request)
    only_params(params, ("permanent",))
    match = if_match(request, required=svc.site.api.require_if_match)
    if bool_param(params, "permanent"):
        await run_in_threadpool(lambda: svc.store.delete(doc, if_match=match))
        return Response(status_code=204)
    trashed = await run_in_threadpool(lambda: svc.store.set_status(doc, "trash", if_match=match))
    return _doc_response(request, trashed)


async def _transition(request: Request, type_name: str | None, ref: str, action: str) -> Response:
    svc = services(request)
    doc = _find(request, type_name, ref, svc.clock())
    require(request, "write", doc.type)
    only_params(query_params(request), ())
    match = if_match(request, required=False)
    store = svc.store
    if action == "restore":
        result = await run_in_threadpool(lambda: store.restore(doc, if_match=match))
    else:
        status = "published" if action == "publish" else "draft"
        result = await run_in_threadpool(lambda: store.set_status(doc, status, if_match=match))
    return _doc_response(request, result)


def document_routes(prefix: str, fixed: str | None) -> list[Route]:
    """CRUD + transitions under `prefix`, for one fixed type or for the `{type}` path parameter."""

    async def list_docs(request: Request) -> Response:
        return await _list(request, _type_of(request, fixed))

    async def create(request: Request) -> Response:
        return await _create(request, _type_of(request, fixed))

    async def get(request: Request) -> Response:
        return await _get(request, _type_of(request, fixed), request.path_params["ref"])

    async def by_slug(request: Request) -> Response:
        return await _get(request, _type_of(request, fixed), request.path_params["slug"])

    async def put(request: Request) -> Response:
        return await _write(request, _type_of(request, fixed), request.path_params["ref"], replace=True)

    async def patch(request: Request) -> Response:
        return await _write(request, _type_of(request, fixed), request.path_params["ref"], replace=False)

    async def delete(request: Request) -> Response:
        return await _delete(request, _type_of(request, fixed), request.path_params["ref"])

    def transition(action: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await _transition(request, _type_of(request, fixed), request.path_params["ref"], action)

        endpoint.__name__ = action
        return endpoint

    return [
        Route(prefix, list_docs, methods=["GET"]),
        Route(prefix, create, methods=["POST"]),
        Route(prefix + "/by-slug/{slug}", by_slug, methods=["GET"]),
        Route(prefix + "/{ref}", get, methods=["GET"]),
        Route(prefix + "/{ref}", put, methods=["PUT"]),
        Route(prefix + "/{ref}", patch, methods=["PATCH"]),
        Route(prefix + "/{ref}", delete, methods=["DELETE"]),
        Route(prefix + "/{ref}/publish", transition("publish"), methods=["POST"]),
        Route(prefix + "/{ref}/unpublish", transition("unpublish"), methods=["POST"]),
        Route(prefix + "/{ref}/restore", transition("restore"), methods=["POST"]),
    ]


async def list_all(request: Request) -> Response:
    """GET /api/v1/content: documents of every type (seed 004's generic list), `type=` to narrow."""
    return await _list(request, None)


def routes() -> list[Route]:
    return [
        *document_routes("/api/v1/posts", "posts"),
        *document_routes("/api/v1/pages", "pages"),
        Route("/api/v1/content", list_all, methods=["GET"]),
        *document_routes("/api/v1/content/{type}", None),
    ]
