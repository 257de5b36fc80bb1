"""Documents over HTTP: posts, pages and any content type. Thin: parse, check scope, call the store.

Each operation is declared once (cms/api/operations.py), for three families: `/api/v1/posts`,
`/api/v1/pages` and `/api/v1/content/{type}`. Their bodies and answers are the content type's data
(cms/api/docschema.py): the route resolves the type and checks the key against it (404 for an
unknown type, public reads for api.public_types), the store checks the values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from datetime import datetime
from functools import partial
from typing import Any, Literal

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.auth import ApiKey
from cms.content.model import Document, Status
from cms.content.names import TYPE_NAME_PATTERN
from cms.content.query import Query, parse_query, run
from cms.content.query.params import FIELDS_PATTERN
from cms.errors import BadRequest, Forbidden, Invalid, NotFound

from .answers import Answer as ReadyAnswer
from .docschema import DOCUMENT, LIST_QUERY, ONE, WRITTEN, DocumentBody
from .encode import dumps
from .http import if_match, may_see_unpublished, paging_headers, query_params, raw_json_response, services
from .media import localized_images
from .operations import TYPE_PARAM, Answer, Call, Flag, Handler, PathParams, Shape, operation, routes_of


def _etag_headers(doc: Document) -> dict[str, str]:
    return {"ETag": f'"{doc.etag}"'}


def _render_flag(params: dict[str, Any]) -> bool:
    value = params.pop("render", None)
    if value is None:
        return False
    if value != "html":
        raise BadRequest("render must be one of html")
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


async def _list(request: Request, key: ApiKey | None, type_name: str | None) -> Response:
    svc = services(request)
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
    ser = svc.serializer
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
        svc.answers.put(answer_key, ReadyAnswer(body, headers, generation, now, page.until))
    return raw_json_response(body, headers=headers)


def _find(call: Call, ref: str, now: datetime) -> Document:
    """The document `ref` names, if the key may see it (a draft is 404 to a key that cannot write)."""
    doc = call.services.index.get(ref, call.type_name)
    if call.key is not None:
        call.key.require("read", doc.type)
    if not doc.is_live(now) and not may_see_unpublished(call.key):
        raise NotFound(f"no {call.type_name or 'document'} {ref!r}")  # do not reveal drafts exist
    return doc


async def _get(call: Call, ref: str) -> Response:
    svc = call.services
    query: OneQuery = call.query
    now = svc.clock()
    doc = _find(call, ref, now)
    headers = _etag_headers(doc)
    inm = call.request.headers.get("if-none-match")
    if inm and doc.etag in {t.strip().removeprefix("W/").strip('"') for t in inm.split(",")}:
        return Response(status_code=304, headers=headers)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    if query.fields is not None:
        q = parse_query({"fields": query.fields})
        include, exclude = q.include, q.exclude_fields
    html = query.render == "html"
    if include or exclude or html:
        admin = call.key is not None and call.key.can("admin")
        body = dumps(
            {"data": svc.serializer.shaped(doc, now, include=include, exclude=exclude, html=html, admin=admin)}
        )
    else:
        body = b'{"data":' + svc.serializer.full(doc, now) + b"}"
    return raw_json_response(body, headers=headers)


def _doc_response(
    call: Call,
    doc: Document,
    status: int = 200,
    location: str | None = None,
    localized: list[dict[str, Any]] | None = None,
) -> Response:
    headers = _etag_headers(doc)
    if location:
        headers["Location"] = location
    body = b'{"data":' + call.services.serializer.full(doc, call.services.clock())
    if localized is not None:  # localize_images: one entry per remote image, beside "data"
        body += b',"localized":' + dumps(localized)
    return raw_json_response(body + b"}", status=status, headers=headers)


def _localize_flag(body: dict[str, Any]) -> bool:
    """Pop `localize_images` (true: bring remote images into the media library before writing)."""
    value = body.pop("localize_images", False)
    if not isinstance(value, bool):
        raise Invalid({"localize_images": ["must be true or false"]})
    return value


async def _create(call: Call, type_name: str) -> Response:
    svc = call.services
    body: dict[str, Any] = call.body
    localize = _localize_flag(body)
    ctype = svc.store.content_type(type_name)
    missing = [k for k in ("title", "content") if k not in body and (k == "title" or ctype.builtin)]
    if missing:
        raise Invalid({k: ["is required"] for k in missing})
    if body.get("status") == "trash":
        call.key.require("delete", type_name)  # type: ignore[union-attr]
    async with localized_images(call.request, body, localize) as report:
        doc = await run_in_threadpool(svc.store.create, type_name, body)
    location = f"{_prefix(type_name)}/{doc.id}"
    return _doc_response(call, doc, 201, location=location, localized=report if localize else None)


async def _write(call: Call, *, replace: bool) -> Response:
    svc = call.services
    doc = _find(call, call.path("ref"), svc.clock())
    assert call.key is not None  # a write scope was declared
    call.key.require("write", doc.type)
    body: dict[str, Any] = call.body
    localize = _localize_flag(body)
    if body.get("status") == "trash":
        call.key.require("delete", doc.type)
    match = if_match(call.request, required=svc.site.api.require_if_match)
    async with localized_images(call.request, body, localize) as report:
        updated = await run_in_threadpool(lambda: svc.store.update(doc, body, if_match=match, replace=replace))
    return _doc_response(call, updated, localized=report if localize else None)


async def _delete(call: Call) -> Response:
    svc = call.services
    doc = _find(call, call.path("ref"), svc.clock())
    assert call.key is not None
    call.key.require("delete", doc.type)
    match = if_match(call.request, required=svc.site.api.require_if_match)
    if call.query.permanent:
        await run_in_threadpool(lambda: svc.store.delete(doc, if_match=match))
        return Response(status_code=204)
    trashed = await run_in_threadpool(lambda: svc.store.set_status(doc, "trash", if_match=match))
    return _doc_response(call, trashed)


async def _transition(call: Call, action: str) -> Response:
    svc = call.services
    doc = _find(call, call.path("ref"), svc.clock())
    assert call.key is not None
    call.key.require("write", doc.type)
    match = if_match(call.request, required=False)
    store = svc.store
    if action == "restore":
        result = await run_in_threadpool(lambda: store.restore(doc, if_match=match))
    else:
        status = "published" if action == "publish" else "draft"
        result = await run_in_threadpool(lambda: store.set_status(doc, status, if_match=match))
    return _doc_response(call, result)


def _prefix(type_name: str) -> str:
    return f"/api/v1/{type_name}" if type_name in ("posts", "pages") else f"/api/v1/content/{type_name}"


class OneQuery(Shape):
    fields: str | None = Field(
        None,
        pattern=FIELDS_PATTERN,
        description="Comma-separated fields to return (`-name` leaves one out); `html` adds rendered HTML",
    )
    render: Literal["html"] | None = Field(None, description="`html` adds the rendered HTML as `html`")


class DeleteQuery(Shape):
    permanent: Flag = Field(False, description="Remove the file instead of moving it to trash")


REF = "Document id, 12-hex short hash, slug, or the short hash as a decimal integer"
WRITE_TEXT = (
    "PUT replaces the frontmatter (title and content required); PATCH merges, `null` removes a key. "
    "A new `slug` renames the file and keeps the old URL in `aliases`."
)
TRANSITIONS = {"publish": "Publish", "unpublish": "Unpublish (back to draft)", "restore": "Restore from the trash"}


def _document_operations(fixed: str | None) -> list[Handler]:
    """CRUD and transitions of one family: `/api/v1/posts`, `/api/v1/pages` or `/api/v1/content/{type}`."""
    base = _prefix(fixed) if fixed else "/api/v1/content/{type}"
    # `{Type}` and `{type}`: the OpenAPI document writes one operation per content type of the site.
    suffix = fixed.capitalize() if fixed else "{Type}"
    what = fixed or "{type}"
    family: PathParams = {} if fixed else {"type": ("Content type name", TYPE_NAME_PATTERN)}
    one: PathParams = {**family, "ref": REF}
    declare = partial(operation, tag=fixed or "content", content_type=fixed or TYPE_PARAM, path_params=one)

    @declare(
        "GET",
        base,
        f"list{suffix}",
        f"List the documents of {what}",
        scope="read",
        public=True,
        query=LIST_QUERY,
        path_params=family,
        ok=Answer(200, ONE, "One page of documents", many=True, headers=("Link", "X-Total-Count")),
        errors=(422,),
        description="Published documents by default, newest first. See docs/querying.md for the grammar.",
    )
    async def list_documents(call: Call) -> Response:
        return await _list(call.request, call.key, call.type_name)

    @declare(
        "POST",
        base,
        f"create{suffix}",
        f"Create a document in {what}",
        scope="write",
        body=DocumentBody("create"),
        path_params=family,
        ok=Answer(201, WRITTEN, "The new document", headers=("ETag", "Location")),
        errors=(409,),
        description="New documents are drafts unless `status` says otherwise; `status: trash` needs delete.",
    )
    async def create(call: Call) -> Response:
        return await _create(call, _type(call))

    def get(path: str, op_id: str, summary: str, params: PathParams) -> Handler:
        @declare(
            "GET",
            path,
            op_id,
            summary,
            scope="read",
            public=True,
            query=OneQuery,
            path_params=params,
            headers=("If-None-Match",),
            ok=Answer(200, ONE, "The document", headers=("ETag",)),
            also=(Answer(304, None, "Not modified (If-None-Match matched)", headers=("ETag",)),),
            errors=(422,),
            description="Drafts, scheduled and trashed documents are 404 for keys that cannot write.",
        )
        async def get_document(call: Call) -> Response:
            ref = call.path("slug" if "slug" in params else "ref")
            return await _get(call, ref)

        return get_document

    def write(method: str, verb: str, summary: str) -> Handler:
        @declare(
            method,
            base + "/{ref}",
            f"{verb}{suffix}",
            summary,
            scope="write",
            body=DocumentBody("replace" if method == "PUT" else "update"),
            headers=("If-Match",),
            ok=Answer(200, WRITTEN, "The updated document", headers=("ETag",)),
            errors=(409,),
            description=WRITE_TEXT,
        )
        async def write_document(call: Call) -> Response:
            return await _write(call, replace=method == "PUT")

        return write_document

    @declare(
        "DELETE",
        base + "/{ref}",
        f"delete{suffix}",
        "Trash a document (or delete it for good)",
        scope="delete",
        query=DeleteQuery,
        headers=("If-Match",),
        ok=Answer(200, DOCUMENT, "The trashed document", headers=("ETag",)),
        also=(Answer(204, None, "Deleted for good"),),
    )
    async def delete(call: Call) -> Response:
        return await _delete(call)

    def transition(action: str) -> Handler:
        @declare(
            "POST",
            f"{base}/{{ref}}/{action}",
            f"{action}{suffix}",
            TRANSITIONS[action],
            scope="write",
            headers=("If-Match?",),  # optional here, whatever the site's api.require_if_match
            ok=Answer(200, DOCUMENT, "The document after the transition", headers=("ETag",)),
            errors=(409,) if action == "restore" else (),
        )
        async def transition_document(call: Call) -> Response:
            return await _transition(call, action)

        return transition_document

    slug_params: PathParams = {**family, "slug": "Document slug (ids and hashes work too)"}
    return [
        list_documents,
        create,
        get(base + "/by-slug/{slug}", f"get{suffix}BySlug", f"Get one {_one(fixed)} by slug", slug_params),
        get(base + "/{ref}", f"get{suffix}", f"Get one {_one(fixed)}", one),
        write("PUT", "replace", "Replace a document"),
        write("PATCH", "update", "Update (merge) a document"),
        delete,
        *(transition(action) for action in TRANSITIONS),
    ]


def _one(fixed: str | None) -> str:
    return f"document of {fixed or '{type}'}"


def _type(call: Call) -> str:
    assert call.type_name is not None  # declared with content_type: the route resolved it
    return call.type_name


@operation(
    "GET",
    "/api/v1/content",
    "listAllContent",
    "List documents of every type",
    tag="content",
    scope="read",
    query=LIST_QUERY,
    ok=Answer(200, ONE, "One page of documents", many=True, headers=("Link", "X-Total-Count")),
    errors=(404, 422),
    description="`type=` narrows it to one type (404 for an unknown one).",
)
async def list_all(call: Call) -> Response:
    """GET /api/v1/content: documents of every type (seed 004's generic list), `type=` to narrow."""
    return await _list(call.request, call.key, None)


def routes() -> list[Route]:
    return routes_of(
        *_document_operations("posts"),
        *_document_operations("pages"),
        list_all,
        *_document_operations(None),
    )
