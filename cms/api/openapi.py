"""GET /api/v1/openapi.json and GET /api/docs: the API's OpenAPI 3.1 contract and its offline page.

The spec is built at request time from the app's own routes and the site's content types, so a
`_type.yaml` change shows up as typed request and response bodies at once; it is cached per index
generation and set of types. Each route is described by the family its path belongs to (documents,
terms, ...); a route no family knows is still listed, marked `x-undocumented`, and a test fails on it.
Nothing from the file system or the key store reaches the spec: only names the API already shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms import __version__
from cms.config import Site
from cms.content.docfields import DOC_FIELDS
from cms.content.fieldtypes import FIELD_TYPE_CLASSES
from cms.content.index import Index
from cms.content.limits import MAX_ITEM_CHARS, MAX_LIST_ITEMS, MAX_TITLE_CHARS
from cms.content.model import BASE_KEYS, ContentType, Field, Status
from cms.content.query import OPERATORS, PARAMS
from cms.content.store import STATUS_INPUTS

from . import docs_page
from .http import only_params, query_params, services
from .operations import Operation, Schemas, declared, query_parameters

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/docs"
DOCS_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
TYPE_NAME = "^[a-z][a-z0-9_-]{0,63}$"  # cms.content.names.check_type_name (device names also refused)
# A path under uploads/ may hold "/", but no "." or ".." segment: a client resolves those before
# sending (RFC 3986 5.2.4), so such a request would reach another path than the one described.
_UPLOAD_PATH = {"type": "string", "minLength": 1, "pattern": r"^(?!(.*/)?\.\.?(/|$))"}
# Path parameters never hold "/" (Starlette matches one segment) nor start with "." (dot segments).
SEGMENT = "^[^/.][^/]*$"
ERROR_TEXT = {
    400: "Malformed request: unknown query parameter, bad value, bad JSON, bad slug or name",
    401: "Missing, unknown, disabled or expired API key",
    403: "The key lacks the scope (or the content type) this operation needs",
    404: "No such document, type, term, key or taxonomy",
    409: "Conflict: slug or name taken, not in the trash, built in, or still has documents/children",
    412: "If-Match does not match the current version (the current ETag is in details and the ETag header)",
    413: "The request body is larger than api.max_json_bytes",
    414: "The query string is longer than api.max_query_bytes",
    415: "The body is not application/json",
    422: "The values break the schema: details maps each field to its messages",
    428: "This site requires If-Match on writes",
    429: "Rate limit exceeded; Retry-After says when to come back",
}
ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "PayloadTooLarge",
    414: "UriTooLong",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    428: "PreconditionRequired",
    429: "RateLimited",
}
AUTH = (401, 403, 429)
# Also the order of the paths: content types come after the documents and terms, so a fuzzer
# walking the spec in order reaches a custom type's operations before it deletes the type.
TAG_TEXT = {
    "system": "Health and public settings; no key needed.",
    "posts": "Dated articles (built-in type).",
    "pages": "Standalone pages (built-in type).",
    "content": "Documents of any type by name, and the list across every type.",
    "taxonomies": "Categories (nested through `parent`), tags and custom taxonomies.",
    "authors": "Authors (also under /users); e-mail addresses only for admin keys.",
    "media": "Uploaded images: the original, AVIF and WebP derivatives, responsive widths; files under /uploads/.",
    "api-keys": "API keys (admin) and the calling key's status.",
    "webhooks": "Signed webhook subscriptions, their deliveries and manual events (admin).",
    "audit": "The audit log of writes (admin).",
    "content-types": "The `_type.yaml` schemas of content types (admin to change).",
    "meta": "This contract and its human page.",
}


def routes() -> list[Route]:
    """The two routes; each app gets its own cache (no module-level state)."""
    cache: dict[str, Any] = {}

    def current(request: Request) -> tuple[dict[str, Any], bytes]:
        svc = services(request)
        key = (svc.index.generation, tuple(sorted(svc.index.types)))
        if cache.get("key") != key:
            spec = build_spec(request.app.routes, svc.site, svc.index, svc.clock())
            cache.update(key=key, spec=spec, json=orjson.dumps(spec, default=str), html=None)
        return cache["spec"], cache["json"]

    async def openapi_json(request: Request) -> Response:
        only_params(query_params(request), ())
        _, body = current(request)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    async def api_docs(request: Request) -> Response:
        only_params(query_params(request), ())
        spec, _ = current(request)
        if cache.get("html") is None:
            cache["html"] = docs_page.render(spec).encode()
        return Response(
            cache["html"],
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"},
        )

    return [Route(OPENAPI_PATH, openapi_json, methods=["GET"]), Route(DOCS_PATH, api_docs, methods=["GET"])]


# -- the spec -----------------------------------------------------------------------------


@dataclass
class _Ctx:
    site: Site
    index: Index
    now: datetime
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # content type -> component prefix
    reserved: set[str] = field(default_factory=set)  # names of the shared component schemas

    def prefix(self, type_name: str | None) -> str:
        if type_name is None:
            return "Document"
        if type_name not in self.names:
            base = "".join(p[:1].upper() + p[1:] for p in re.split(r"[-_]", type_name) if p) or "Type"
            name, n = base, 2
            # A type called `term` or `media-item` must not replace the shared Term or MediaItem.
            while name in self.names.values() or {name, f"{name}Input", f"{name}Selection"} & self.reserved:
                name, n = f"{base}{n}", n + 1
            self.names[type_name] = name
        return self.names[type_name]


def document_types(index: Index) -> list[str]:
    """Content types the API serves: schemas and folders holding documents (as the types list shows)."""
    return sorted(set(index.types) | {d.type for d in index.docs.values()})


def build_spec(app_routes: list[Any], site: Site, index: Index, now: datetime | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these routes, this site and the index's content types."""
    shared = _static_schemas(site) | _media_schemas()
    ctx = _Ctx(
        site, index, now or datetime.now(UTC), reserved={*shared, "Document", "DocumentInput", "DocumentSelection"}
    )
    custom = [t for t in document_types(index) if t not in ("posts", "pages")]
    paths: dict[str, dict[str, Any]] = {}
    described = {id(r): _declared_op(ctx, d) for r in app_routes if (d := declared(getattr(r, "endpoint", None)))}
    ctx.reserved |= set(ctx.components)  # a type called `term` must not replace a declared shape's schema
    for route in app_routes:
        if not isinstance(route, Route) or route.methods is None or not route.include_in_schema:
            continue  # the preview's pages are the website, described by the theme, not the API
        declaration = declared(route.endpoint)
        if declaration is not None:  # described by its declaration (cms/api/operations.py)
            paths.setdefault(spec_path(route.path), {})[declaration.method.lower()] = described[id(route)]
            continue
        for method in sorted(route.methods - {"HEAD"}):  # Starlette answers HEAD for every GET
            for path, op in _describe(ctx, spec_path(route.path), method, custom):
                paths.setdefault(path, {})[method.lower()] = op
    _unique_operation_ids(paths)
    used_tags = {t for item in paths.values() for op in item.values() for t in op.get("tags", ())}
    tag_order = list(dict.fromkeys(["system", "posts", "pages", "content", *map(_type_tag, custom), *TAG_TEXT]))
    rank = {name: i for i, name in enumerate(tag_order)}
    tags = []
    for name in dict.fromkeys(tag_order):
        if name in used_tags:
            text = TAG_TEXT.get(name) or _type_text(index, name.removeprefix("content/"))
            tags.append({"name": name, "description": text})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{site.site.title} API",
            "version": __version__,
            "summary": "REST API of a flat-file CMS: documents, taxonomies, content types and API keys.",
            "description": (
                'Every answer is JSON: `{"data": ...}` (lists add `pagination`), errors '
                '`{"error": {"code", "message", "details"}}`. Send a key in `X-API-Key` or '
                "`Authorization: Bearer` (plus `X-API-Secret` for keys created with a secret). "
                "Writes return the document's `ETag`; send it back in `If-Match` to refuse lost updates."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": tags,
        "paths": dict(sorted(paths.items(), key=lambda kv: _path_rank(kv[1], rank))),
        "components": {
            "schemas": shared | dict(sorted(ctx.components.items())),
            "responses": _error_responses(),
            "securitySchemes": _security_schemes(site),
        },
    }


def _type_tag(type_name: str) -> str:
    """A content type's tag: its name, unless that is one of the fixed tags."""
    return type_name if type_name in ("posts", "pages") or type_name not in TAG_TEXT else f"content/{type_name}"


def _path_rank(item: dict[str, Any], rank: dict[str, int]) -> int:
    """Paths in the order of their tags; within a tag, in the order of the app's routes."""
    tag = next(iter(item.values())).get("tags", ["meta"])[0]
    return rank.get(tag, len(rank))


def _type_text(index: Index, name: str) -> str:
    ctype = index.types.get(name)
    label = ctype.label if ctype and ctype.label else name
    return f"{label}: {ctype.description}" if ctype and ctype.description else f"Documents of type {name}."


def _unique_operation_ids(paths: dict[str, dict[str, Any]]) -> None:
    seen: set[str] = set()
    for item in paths.values():
        for op in item.values():
            base = op["operationId"]
            name, n = base, 2
            while name in seen:
                name, n = f"{base}{n}", n + 1
            op["operationId"] = name
            seen.add(name)


# -- route families -----------------------------------------------------------------------

_DOC_ROUTE = re.compile(r"^/api/v1/(?:(posts|pages)|content/\{type\})(/by-slug/\{slug\}|/\{ref\}(?:/(\w+))?)?$")


def _describe(ctx: _Ctx, path: str, method: str, custom: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(spec path, operation) pairs for one route and method; the generic type route adds one per type."""
    doc = _DOC_ROUTE.match(path)
    if doc:
        fixed, tail, action = doc.group(1), doc.group(2) or "", doc.group(3)
        out = [(path, _document_op(ctx, fixed, tail, action, method, generic=fixed is None))]
        if fixed is None:
            for name in custom:
                concrete = path.replace("{type}", name)
                out.append((concrete, _document_op(ctx, name, tail, action, method, generic=False)))
        return out
    builder = _STATIC.get((path, method))
    if builder is not None:
        return [(path, builder(ctx))]
    return [(path, _undocumented(path, method))]


def spec_path(route_path: str) -> str:
    """A Starlette path template as OpenAPI writes it: `/uploads/{path:path}` -> `/uploads/{path}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path)


def _undocumented(path: str, method: str) -> dict[str, Any]:
    """A route no family describes: still listed (and valid), so a test can name it."""
    return {
        "operationId": re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_"),
        "summary": "Undocumented route",
        "x-undocumented": True,
        "parameters": [_param(n, "path", _TEXT, "") for n in re.findall(r"\{(\w+)\}", path)],
        "responses": {"default": {"description": "not described yet"}},
    }


def _op(
    op_id: str,
    tag: str,
    summary: str,
    *,
    scope: str | None,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    bodies: dict[str, Any] | None = None,
    description: str = "",
    public: bool = False,
    site: Site | None = None,
    query_checked: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None or bodies:
        op["requestBody"] = {"required": True, "content": bodies or {"application/json": body}}
    if scope is None:
        op["security"] = []
    else:
        op["x-scope"] = scope
        # OpenAPI 3.1 lets non-OAuth requirements list role names: here the key scope needed.
        roles = [scope] if scope != "any" else []
        op["security"] = [{"ApiKeyHeader": roles}, {"Bearer": roles}]
        if site is not None and site.api.allow_query_token:
            op["security"].append({"ApiTokenQuery": roles})
        if public:
            op["security"].append({})
    responses = dict(ok)
    # Every handler refuses a query parameter it does not know (400), and the query-length guard
    # in front of the app answers 414 for any path.
    for status in sorted({*errors, 414} | ({400} if query_checked else set())):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_NAMES[status]}"}
    op["responses"] = responses
    return op


# -- declared operations (cms/api/operations.py) --------------------------------------------


def _declared_op(ctx: _Ctx, op: Operation) -> dict[str, Any]:
    """The OpenAPI operation of a declared handler: everything from its declaration and shapes."""
    schemas = Schemas(ctx.components)
    params = [_path_param(name, text) for name, text in op.path_params.items()]
    params += query_parameters(op.query)
    body = None
    if op.body is not None:
        body = {"schema": schemas.ref(op.body)}
        if op.example is not None:
            body["example"] = op.example
    answer = op.ok
    if answer.shape is None:
        ok: dict[str, Any] = {str(answer.status): {"description": answer.description}}
    else:
        data = schemas.ref(answer.shape)
        envelope = _envelope({"type": "array", "items": data}, answer.pagination) if answer.many else _envelope(data)
        known = {**LOCATION, **ETAG}
        headers = {name: known[name] for name in answer.headers}
        ok = {str(answer.status): _json(envelope, answer.description, headers or None)}
    return _op(
        op.operation_id,
        op.tag,
        op.summary,
        scope=op.scope,
        site=ctx.site,
        params=params or None,
        body=body,
        ok=ok,
        errors=op.implied_errors(),
        description=op.description,
    )


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _envelope(data: dict[str, Any], pagination: str | None = None) -> dict[str, Any]:
    props = {"data": data}
    if pagination:
        props["pagination"] = _ref(pagination)
    return {"type": "object", "required": list(props), "properties": props, "additionalProperties": False}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, schema: dict[str, Any] | None = None, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


ETAG = {"ETag": _header('Strong validator of the file: `"sha256-<hex>"`; send it back in If-Match')}
LOCATION = {"Location": _header("Path of the new resource")}
LIST_HEADERS = {
    "Link": _header('first, last, prev and next pages: `<url>; rel="next"`'),
    "X-Total-Count": _header("Number of matching documents", {"type": "string", "pattern": "^[0-9]+$"}),
}


def _param(
    name: str,
    where: str,
    schema: dict[str, Any],
    description: str,
    *,
    required: bool = False,
    example: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "required": required or where == "path"}
    out["description"] = description
    out["schema"] = schema
    if example is not None:
        out["example"] = example
    out.update(extra)
    return out


def _path_param(name: str, description: str, example: Any = None, pattern: str = SEGMENT) -> dict[str, Any]:
    return _param(name, "path", {"type": "string", "minLength": 1, "pattern": pattern}, description, example=example)


# -- documents ----------------------------------------------------------------------------

_BOOL = {"type": "boolean"}
_TEXT = {"type": "string"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
QUERY_SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "page": ({"type": "integer", "minimum": 1, "maximum": 1_000_000}, "Page number (default 1)"),
    "per_page": ({"type": "integer", "minimum": 1}, "Page size (default defaults.per_page)"),
    "limit": ({"type": "integer", "minimum": 1}, "Same as per_page (per_page wins)"),
    "status": (
        {"type": "array", "items": {"enum": [*(s.value for s in Status), "all", "any"]}},
        "Statuses to list (repeated or comma-separated; `all`: every status but trash, `any`: all); "
        "keys without write/delete/admin may only ask for published",
    ),
    "type": ({"type": "string", "pattern": TYPE_NAME}, "Only this content type (set by the path on typed lists)"),
    "category": (_TEXT, "A category slug; includes its child categories"),
    "tag": (_STRINGS, "Tag slug(s), repeated or comma-separated"),
    "tags": (_STRINGS, "Same as tag; both are combined"),
    "tag_mode": ({"enum": ["any", "all"]}, "Whether a document needs any (default) or all of the tags"),
    "author": (_TEXT, "An author slug"),
    "search": ({"type": "string", "maxLength": 500}, "Full-text search (bm25 ranking, items carry a snippet)"),
    "q": ({"type": "string", "maxLength": 500}, "Same as search (search wins)"),
    "order_by": (_TEXT, "Sort by this field first; descending unless order=asc"),
    "order": ({"enum": ["asc", "desc"]}, "Direction for order_by; alone it sorts by published_at"),
    "sort": (_TEXT, "Comma-separated sort fields, `-field` or `field:desc` descending"),
    "filters": (
        {"type": "object", "additionalProperties": {"type": "string"}},
        "Field filters in bracket form: `filters[field]=value` ($eq), `filters[field][$op]=value`, "
        f"`filters[$or][0][field][$op]=value`; operators: {', '.join(OPERATORS)}",
    ),
    "fields": (_TEXT, "Comma-separated fields to return (`-name` leaves one out); `html` adds rendered HTML"),
    "exclude": (_TEXT, "Comma-separated ids or hashes to leave out"),
    "random": (_BOOL, "Shuffle the matching documents"),
    "seed": ({"type": "integer"}, "Seed for random, so a shuffled list can be paged"),
    "lang": (_TEXT, "Only this language (`all`: every language); default: the site language"),
    "draft": (_BOOL, "List every status but trash (when status is not given)"),
}
RENDER = ({"enum": ["html"]}, "`html` adds each document's rendered HTML as `html`")


def _list_params(ctx: _Ctx) -> list[dict[str, Any]]:
    out = []
    for name in PARAMS:
        schema, text = QUERY_SCHEMAS[name]
        extra: dict[str, Any] = {}
        if name in ("per_page", "limit"):
            schema = {**schema, "maximum": ctx.site.defaults.max_per_page}
        if name == "filters":
            extra = {"style": "deepObject", "explode": True}
        elif schema.get("type") == "array":
            extra = {"style": "form", "explode": True}
        out.append(_param(name, "query", schema, text, **extra))
    out.append(_param("render", "query", *RENDER))
    for taxonomy in ctx.site.taxonomies:
        out.append(_param(taxonomy, "query", _TEXT, f"Term slug(s) of the {taxonomy} taxonomy, comma-separated"))
    return out


def _live_example(ctx: _Ctx, type_name: str | None) -> str | None:
    """A published document's slug, as the path parameter's example (drafts stay unnamed)."""
    if type_name is None:
        return None
    for doc in ctx.index.docs.values():
        if doc.type == type_name and doc.is_live(ctx.now):
            return doc.slug
    return None


def _document_op(
    ctx: _Ctx, type_name: str | None, tail: str, action: str | None, method: str, *, generic: bool
) -> dict[str, Any]:
    site = ctx.site
    name = ctx.prefix(None if generic else type_name)
    if not generic:
        _document_components(ctx, type_name)
    tag = "content" if generic else _type_tag(type_name)  # type: ignore[arg-type]
    label = f"{type_name}" if not generic else "documents of a type"
    public = bool(site.api.public_types) if generic else type_name in site.api.public_types
    params: list[dict[str, Any]] = []
    if generic:
        params.append(_path_param("type", "Content type name", pattern=TYPE_NAME))
    ref_text = "Document id, 12-hex short hash, slug, or the short hash as a decimal integer"
    if tail == "/{ref}" or action:
        params.append(_path_param("ref", ref_text, _live_example(ctx, type_name)))
    if_match_required = site.api.require_if_match and method in ("PUT", "PATCH", "DELETE")
    if_match = _param(
        "If-Match",
        "header",
        _TEXT,
        'ETag(s) of the version the write is based on (`"sha256-..."`, or `*`); 412 when the file changed'
        + ("; required on this site (428 without)" if if_match_required else ""),
        required=if_match_required,
    )
    write_errors: tuple[int, ...] = (400, *AUTH, 404, 412, 422) + ((428,) if if_match_required else ())
    # A custom type may be deleted while a client holds this spec: its paths then answer 404.
    type_404 = () if type_name in ("posts", "pages") else (404,)
    doc = _envelope(_ref(name))
    written = _envelope(_ref(name))
    written["properties"]["localized"] = {
        "type": "array",
        "items": _ref("LocalizedImage"),
        "description": "With localize_images=true: what became of each remote image of the content",
    }
    shaped = _envelope({"anyOf": [_ref(name), _ref(f"{name}Selection")]})
    suffix = "AnyType" if generic else name
    if tail == "" and method == "GET":
        return _op(
            f"list{suffix}",
            tag,
            f"List {label}",
            scope="read",
            public=public,
            site=site,
            params=params + _list_params(ctx),
            ok={
                "200": _json(
                    _envelope({"type": "array", "items": shaped["properties"]["data"]}, "Pagination"),
                    "One page of documents",
                    LIST_HEADERS,
                )
            },
            errors=(400, *AUTH, 422, *type_404),
            description="Published documents by default, newest first. See docs/querying.md for the grammar.",
        )
    if tail == "" and method == "POST":
        return _op(
            f"create{suffix}",
            tag,
            f"Create {'a document' if generic else f'a document in {type_name}'}",
            scope="write",
            site=site,
            params=params,
            body=_body(ctx, type_name, generic, "Create"),
            ok={"201": _json(written, "The new document", {**ETAG, **LOCATION})},
            errors=(400, *AUTH, 409, 413, 415, 422, *type_404),
            description="New documents are drafts unless `status` says otherwise; `status: trash` needs delete.",
        )
    if tail == "/by-slug/{slug}" or (tail == "/{ref}" and method == "GET"):
        if tail == "/by-slug/{slug}":
            params.append(_path_param("slug", "Document slug (ids and hashes work too)", _live_example(ctx, type_name)))
        params += [
            _param("fields", "query", *QUERY_SCHEMAS["fields"]),
            _param("render", "query", *RENDER),
            _param("If-None-Match", "header", _TEXT, "ETag(s) the client holds: 304 when one is current"),
        ]
        return _op(
            f"get{suffix}{'BySlug' if 'slug' in tail else ''}",
            tag,
            f"Get one {'document' if generic else f'document of {type_name}'}" + (" by slug" if "slug" in tail else ""),
            scope="read",
            public=public,
            site=site,
            params=params,
            ok={
                "200": _json(shaped, "The document", ETAG),
                "304": {"description": "Not modified (If-None-Match matched)", "headers": ETAG},
            },
            errors=(400, *AUTH, 404, 422),
            description="Drafts, scheduled and trashed documents are 404 for keys that cannot write.",
        )
    if tail == "/{ref}" and method in ("PUT", "PATCH"):
        replace = method == "PUT"
        return _op(
            f"{'replace' if replace else 'update'}{suffix}",
            tag,
            f"{'Replace' if replace else 'Update (merge)'} a document",
            scope="write",
            site=site,
            params=[*params, if_match],
            body=_body(ctx, type_name, generic, "Replace" if replace else "Input"),
            ok={"200": _json(written, "The updated document", ETAG)},
            errors=(*write_errors, 409, 413, 415),
            description=(
                "PUT replaces the frontmatter (title and content required); PATCH merges, `null` removes a key. "
                "A new `slug` renames the file and keeps the old URL in `aliases`."
            ),
        )
    if tail == "/{ref}" and method == "DELETE":
        params += [if_match, _param("permanent", "query", _BOOL, "Remove the file instead of moving it to trash")]
        return _op(
            f"delete{suffix}",
            tag,
            "Trash a document (or delete it for good)",
            scope="delete",
            site=site,
            params=params,
            ok={"200": _json(doc, "The trashed document", ETAG), "204": {"description": "Deleted for good"}},
            errors=write_errors,
        )
    verbs = {"publish": "Publish", "unpublish": "Unpublish (back to draft)", "restore": "Restore from the trash"}
    if method == "POST" and action in verbs:
        if_match_opt = {**if_match, "required": False}
        if_match_opt["description"] = if_match["description"].split(";")[0] + "; optional here"
        return _op(
            f"{action}{suffix}",
            tag,
            f"{verbs[action]}",
            scope="write",
            site=site,
            params=[*params, if_match_opt],
            ok={"200": _json(doc, "The document after the transition", ETAG)},
            errors=(400, *AUTH, 404, 412, 422) + ((409,) if action == "restore" else ()),
        )
    return _undocumented(tail, method)


def _document_components(ctx: _Ctx, type_name: str | None) -> None:
    name = ctx.prefix(type_name)
    if f"{name}Input" in ctx.components:
        return
    ctype = None if type_name is None else ctx.index.types.get(type_name, ContentType(type_name))
    full, partial = _document_schemas(ctype)
    ctx.components[name] = full
    ctx.components[f"{name}Selection"] = partial
    ctx.components[f"{name}Input"] = _input_schema(ctype)


def _body(ctx: _Ctx, type_name: str | None, generic: bool, kind: str) -> dict[str, Any]:
    _document_components(ctx, None if generic else type_name)
    name = ctx.prefix(None if generic else type_name)
    ctype = None if generic else ctx.index.types.get(type_name or "", ContentType(type_name or ""))
    if kind == "Input":
        return {"schema": _ref(f"{name}Input")}
    builtin = ctype is None or ctype.builtin
    required = ["title", "content"] if builtin or kind == "Replace" else ["title"]
    extra: dict[str, Any] = {
        "required": required,
        "properties": {"title": {"type": "string"}, "content": {"type": "string"}},
    }
    fields = [f for f in (ctype.fields if ctype else ()) if f.required and f.name not in BASE_KEYS]
    # Schema defaults fill fields left out of a create; a replace must give every required field.
    needed = [f.name for f in fields if kind == "Replace" or f.default is None]
    if needed:
        extra["required"].append("data")
        extra["properties"]["data"] = {"required": needed}
    schema = {"allOf": [_ref(f"{name}Input"), extra]}
    out: dict[str, Any] = {"schema": schema}
    if ctype is not None and kind == "Create":
        out["example"] = _example_body(ctype)
    return out


def _example_body(ctype: ContentType) -> dict[str, Any]:
    data = {f.name: _example_value(f) for f in ctype.fields if f.name not in BASE_KEYS and f.required}
    body: dict[str, Any] = {"title": f"Example {ctype.name}", "content": "Hello *world*.", "status": "draft"}
    if data:
        body["data"] = data
    return body


def _example_value(f: Field) -> Any:
    lo = f.min if f.min is not None else 0
    values: dict[str, Any] = {
        "number": lo,
        "integer": int(lo),
        "boolean": True,
        "date": "2026-01-01",
        "datetime": "2026-01-01T09:00:00Z",
        "select": f.options[0] if f.options else None,
        "tags": ["example"],
        "list": ["example"],
        "json": {},
    }
    return values.get(f.type, "example"[: f.max_length or 7])


def field_schema(f: Field, *, for_input: bool = False) -> dict[str, Any]:
    """The JSON Schema of one field's value: its field type's, as that type's `check` accepts it."""
    return FIELD_TYPE_CLASSES[f.type].json_schema(f, for_input=for_input)


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type", [])
    return t if isinstance(t, list) else [t]


def _data_schema(ctype: ContentType | None, *, for_input: bool) -> dict[str, Any]:
    fields = list(ctype.fields) if ctype else []
    open_keys = ctype is None or ctype.builtin or not fields
    # Input: a custom type's data takes its declared fields (any name); responses show the
    # frontmatter keys that are not base fields, typed by the schema, plus whatever a person wrote.
    shown = [f for f in fields if (for_input and not open_keys) or f.name not in BASE_KEYS]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: field_schema(f, for_input=for_input) for f in shown},
    }
    if for_input and not open_keys:
        schema["additionalProperties"] = False
        schema["description"] = "Values of the type's fields; null removes one"
    else:
        schema["description"] = (
            "Frontmatter keys that are not base fields"
            if not for_input
            else "Frontmatter keys (identifiers) and their values; null removes one"
        )
    return schema


def _input_schema(ctype: ContentType | None) -> dict[str, Any]:
    def base(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        f = ctype.field(name) if ctype else None
        if f is not None and f.max_length is not None and "string" in _types(schema):
            schema = {**schema, "maxLength": f.max_length}
        return schema

    # The limits of cms/content/limits.py (a comma-separated string is counted by the server).
    strings = {
        "type": ["string", "array", "null"],
        "items": {"type": "string", "maxLength": MAX_ITEM_CHARS},
        "maxItems": MAX_LIST_ITEMS,
    }
    date_time = {"type": ["string", "null"], "format": "date-time"}
    nullable_text = {"type": ["string", "null"]}
    builtin = ctype is None or ctype.builtin
    title = base("title", {"type": "string", "minLength": 1} if builtin else {"type": ["string", "null"]})
    title["maxLength"] = min(title.get("maxLength", MAX_TITLE_CHARS), MAX_TITLE_CHARS)
    props: dict[str, Any] = {
        "title": {**title, "description": "Required on create and replace"},
        "content": {"type": ["string", "null"], "description": "Markdown body (null on PATCH: unchanged)"},
        "slug": {
            "type": ["string", "null"],
            "maxLength": 200,
            "description": "Lower-case letters, digits and '-'; from the title when absent; a new one renames",
        },
        "excerpt": base("summary", {**nullable_text, "description": "Summary (written as `summary`)"}),
        "status": {"enum": list(STATUS_INPUTS), "description": "scheduled needs a future published_at"},
        "published_at": {**date_time, "description": "Publication moment (written as `date`)"},
        "expires_at": {**date_time, "description": "After this moment the document is expired"},
        "tags": {**strings, "description": "Tag slugs (list or comma-separated)"},
        "categories": {**strings, "description": "Category slugs; must exist when the site has category files"},
        "author": {**strings, "description": "Author slug(s); must exist when the site has author files"},
        "featured_image": {**nullable_text, "description": "Path of a file under uploads/"},
        "seo_title": base("seo_title", nullable_text),
        "seo_description": base("seo_description", nullable_text),
        "aliases": {**strings, "description": "Old URLs that redirect here"},
        "data": _data_schema(ctype, for_input=True),
        "localize_images": {
            "type": "boolean",
            "description": "Bring the content's remote images into the media library first (SSRF-guarded)",
        },
    }
    label = f"a {ctype.name} document" if ctype else "a document"
    return {
        "type": "object",
        "description": (
            f"Values of {label}. Also accepted: the spellings date/summary/category/image/meta_title..., "
            "read-only fields sent back from a GET (ignored)"
            + (", and any other frontmatter key" if builtin else ", and the fields of `data` at the top level")
            + "."
        ),
        "properties": props,
    }


_STRING_OR_NULL = {"type": ["string", "null"]}


def _document_schemas(ctype: ContentType | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(full document, field selection) response schemas, as DocumentSerializer.as_dict makes them."""
    props: dict[str, Any] = {f.name: dict(f.schema) for f in DOC_FIELDS if f.in_api}
    if ctype is not None:
        props["type"] = {"const": ctype.name}
    props["data"] = _data_schema(ctype, for_input=False)
    required = list(props)
    extra = {
        "html": {"type": "string", "description": "Rendered HTML (render=html or fields=html)"},
        "snippet": {"type": "string", "description": "Search hit with <mark> (with search)"},
    }
    full = {"type": "object", "required": required, "properties": {**props, **extra}, "additionalProperties": False}
    partial = {
        "type": "object",
        "description": "The fields chosen with `fields` (`id` unless left out), `data.<name>` paths, frontmatter keys",
        "properties": {**props, **extra},
    }
    return full, partial


# -- taxonomies, authors, types, keys, system -----------------------------------------------


MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/avif")


def _media_op(kind: str) -> Callable[[_Ctx], dict[str, Any]]:
    def build(ctx: _Ctx) -> dict[str, Any]:
        site = ctx.site
        media_id = [_path_param("id", "Media item id")]
        item = _envelope(_ref("MediaItem"))
        if kind == "list":
            params = [
                _param("page", "query", {"type": "integer", "minimum": 1}, "Page number"),
                _param(
                    "per_page",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": site.defaults.max_per_page},
                    "Page size (default defaults.per_page)",
                ),
                _param("folder", "query", _TEXT, "Only this folder of uploads/ and its subfolders"),
                _param("mime_type", "query", {"enum": list(MEDIA_TYPES)}, "Only this type of original"),
                _param("search", "query", _TEXT, "Words in the file name or alt text"),
            ]
            data = {"type": "array", "items": _ref("MediaItem")}
            return _op(
                "listMedia",
                "media",
                "List media items, newest first",
                scope="read",
                site=site,
                params=params,
                ok={"200": _json(_envelope(data, "Pagination"), "One page of items", LIST_HEADERS)},
                errors=(400, *AUTH),
            )
        if kind == "upload":
            return _op(
                "uploadMedia",
                "media",
                "Upload an image (multipart field `image`, or JSON with base64 `data`)",
                scope="write",
                site=site,
                bodies={
                    "multipart/form-data": {"schema": _ref("MediaUploadForm")},
                    "application/json": {"schema": _ref("MediaUpload")},
                },
                ok={"201": _json(item, "The stored item with its derivatives", LOCATION)},
                errors=(400, *AUTH, 413, 415, 422),
                description=(
                    f"JPEG, PNG, WebP or AVIF, judged by content (415 otherwise), at most media.max_bytes "
                    f"({site.media.max_bytes} bytes; 413) and media.max_pixels (422). EXIF orientation is applied; "
                    "GPS data never reaches a derivative."
                ),
            )
        if kind == "get":
            return _op(
                "getMedia",
                "media",
                "Get a media item",
                scope="read",
                site=site,
                params=media_id,
                ok={"200": _json(item, "The item")},
                errors=(400, *AUTH, 404),
            )
        if kind == "update":
            return _op(
                "updateMedia",
                "media",
                "Change an item's alt text, caption or credit",
                scope="write",
                site=site,
                params=media_id,
                body={"schema": _ref("MediaInput")},
                ok={"200": _json(item, "The item")},
                errors=(400, *AUTH, 404, 413, 415, 422),
            )
        if kind == "delete":
            return _op(
                "deleteMedia",
                "media",
                "Delete an item and every file of it",
                scope="delete",
                site=site,
                params=[*media_id, _param("force", "query", _BOOL, "Delete even when documents use it")],
                ok={"204": {"description": "Deleted"}},
                errors=(400, *AUTH, 404, 409),
                description="409 lists the documents that use the image, unless force=true.",
            )
        binary = {"type": "string", "format": "binary"}
        headers = {"ETag": _header("Validator of the file"), "Cache-Control": _header("Derivatives are immutable")}
        return _op(
            "getUpload",
            "media",
            "An uploaded image file",
            scope=None,
            params=[_param("path", "path", _UPLOAD_PATH, "Path under uploads/ (may hold /)")],
            ok={
                "200": {
                    "description": "The image, with its sniffed type",
                    "headers": headers,
                    "content": {m: {"schema": binary} for m in MEDIA_TYPES},
                },
                "304": {"description": "Not modified", "headers": {"ETag": headers["ETag"]}},
            },
            errors=(404,),
            query_checked=False,  # a file route: the query string is ignored
            description="Images only: sidecars, other files, hidden names and any path trick answer 404.",
        )

    return build


def _meta(kind: str) -> Callable[[_Ctx], dict[str, Any]]:
    def build(ctx: _Ctx) -> dict[str, Any]:
        if kind == "openapi":
            ok = {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "The OpenAPI 3.1 document")}
            return _op("getOpenApi", "meta", "This OpenAPI 3.1 document", scope=None, ok=ok, errors=(400,))
        page = {"description": "One self-contained HTML page", "content": {"text/html": {"schema": _TEXT}}}
        page["headers"] = {"Content-Security-Policy": _header("Allows nothing but the page itself")}
        return _op("getApiDocs", "meta", "The API reference as HTML", scope=None, ok={"200": page}, errors=(400,))

    return build


_STATIC: dict[tuple[str, str], Callable[[_Ctx], dict[str, Any]]] = {
    ("/api/v1/content", "GET"): lambda ctx: _list_all(ctx),
    ("/api/v1/media", "GET"): _media_op("list"),
    ("/api/v1/media", "POST"): _media_op("upload"),
    ("/api/v1/media/{id}", "GET"): _media_op("get"),
    ("/api/v1/media/{id}", "PATCH"): _media_op("update"),
    ("/api/v1/media/{id}", "DELETE"): _media_op("delete"),
    ("/uploads/{path}", "GET"): _media_op("file"),
    (OPENAPI_PATH, "GET"): _meta("openapi"),
    (DOCS_PATH, "GET"): _meta("docs"),
}


def _list_all(ctx: _Ctx) -> dict[str, Any]:
    _document_components(ctx, None)
    items = {"type": "array", "items": {"anyOf": [_ref("Document"), _ref("DocumentSelection")]}}
    return _op(
        "listAllContent",
        "content",
        "List documents of every type",
        scope="read",
        site=ctx.site,
        params=_list_params(ctx),
        ok={"200": _json(_envelope(items, "Pagination"), "One page of documents", LIST_HEADERS)},
        errors=(400, *AUTH, 404, 422),
        description="`type=` narrows it to one type (404 for an unknown one).",
    )


# -- shared components --------------------------------------------------------------------


def _obj(props: dict[str, Any], required: list[str] | None = None, *, closed: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "required": list(props) if required is None else required}
    out["properties"] = props
    if closed:
        out["additionalProperties"] = False
    return out


_INT = {"type": "integer"}


def _static_schemas(site: Site) -> dict[str, Any]:
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {"type": "string", "description": "Stable machine-readable code, e.g. NOT_FOUND"},
                        "message": {"type": "string", "description": "What went wrong, for people"},
                        "details": {"type": "object", "description": "Field messages, current_etag, retry_after..."},
                    }
                )
            }
        ),
        "Pagination": _obj(
            {
                "total": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "per_page": {"type": "integer", "minimum": 1},
                "total_pages": {"type": "integer", "minimum": 1},
                "has_next": _BOOL,
                "has_prev": _BOOL,
            }
        ),
        "Count": _obj({"total": {"type": "integer", "minimum": 0}}),
    }


def _media_schemas() -> dict[str, Any]:
    texts = {
        "alt": {**_STRING_OR_NULL, "maxLength": 2000, "description": "Alternative text"},
        "alt_text": {**_STRING_OR_NULL, "maxLength": 2000, "description": "Same as alt"},
        "caption": {**_STRING_OR_NULL, "maxLength": 2000},
        "credit": {**_STRING_OR_NULL, "maxLength": 2000},
    }
    upload: dict[str, dict[str, Any]] = {
        **texts,
        "filename": {**_STRING_OR_NULL, "description": "Original file name (its stem names the files)"},
        "folder": {**_STRING_OR_NULL, "description": "Folder under uploads/ (default media.folder_pattern)"},
    }
    url_or_null = {"type": ["string", "null"]}
    return {
        "MediaItem": _obj(
            {
                "id": _TEXT,
                "path": {"type": "string", "description": "What to put in featured_image"},
                "url": _TEXT,
                "url_orig": _TEXT,
                "url_avif": url_or_null,
                "url_webp": url_or_null,
                "variants": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": _TEXT},
                    "description": "Width -> {avif, webp} -> URL",
                },
                "folder": _TEXT,
                "filename": _TEXT,
                "file": _TEXT,
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "mime_type": {"enum": list(MEDIA_TYPES)},
                "size": {"type": "integer", "minimum": 0},
                "checksum": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                "alt": _TEXT,
                "caption": _TEXT,
                "credit": _TEXT,
                "created_at": {"type": "string", "format": "date-time"},
            }
        ),
        "MediaUpload": _obj(
            {**upload, "data": {"type": "string", "contentEncoding": "base64", "description": "base64 or data: URL"}},
            ["data"],
        ),
        "MediaUploadForm": _obj(
            {
                "image": {"type": "string", "format": "binary", "description": "The image file"},
                "file": {"type": "string", "format": "binary", "description": "Same as image"},
                **{k: {"type": "string", "description": v.get("description", "")} for k, v in upload.items()},
            },
            [],
        )
        | {"anyOf": [{"required": ["image"]}, {"required": ["file"]}]},
        "MediaInput": _obj(texts, []),
        "LocalizedImage": _obj(
            {
                "url": _TEXT,
                "status": {"enum": ["ok", "failed"]},
                "media_id": _TEXT,
                "local_url": _TEXT,
                "error": _TEXT,
            },
            ["url", "status"],
        ),
    }


def _error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, name in ERROR_NAMES.items():
        response = _json(_ref("Error"), ERROR_TEXT[status])
        if status == 401:
            response["headers"] = {"WWW-Authenticate": _header('`Bearer realm="cms"`')}
        if status == 429:
            response["headers"] = {"Retry-After": _header("Seconds to wait", {"type": "string", "pattern": "^[0-9]+$"})}
        out[name] = response
    return out


def _security_schemes(site: Site) -> dict[str, Any]:
    secret = " Keys created with a secret also need `X-API-Secret`."
    schemes: dict[str, Any] = {
        "ApiKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (`cms_<id>_<secret>`)." + secret,
        },
        "Bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The same key as `Authorization: Bearer cms_...`." + secret,
        },
    }
    if site.api.allow_query_token:
        schemes["ApiTokenQuery"] = {
            "type": "apiKey",
            "in": "query",
            "name": "api_token",
            "description": "Enabled by api.allow_query_token (also `api_token` in a JSON body). Ends up in logs.",
        }
    return schemes
