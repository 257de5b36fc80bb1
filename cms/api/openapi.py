"""GET /api/v1/openapi.json and GET /api/docs: the API's OpenAPI 3.1 contract and its offline page.

The spec is built at request time from the app's own routes and the site's content types, so a
`_type.yaml` change shows up as typed request and response bodies at once; it is cached per index
generation and set of types. Each route is described by the family its path belongs to (documents,
terms, ...); a route no family knows is still listed, marked `x-undocumented`, and a test fails on it.
Nothing from the file system or the key store reaches the spec: only names the API already shows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms import __version__
from cms.config import Site
from cms.content.index import Index

from . import docs_page
from .docschema import envelope as _envelope
from .docschema import live_example
from .docschema import ref as _ref
from .http import services
from .operations import (
    TYPE_PARAM,
    Answer,
    Call,
    Operation,
    Schemas,
    SpecContext,
    declared,
    operation,
    query_parameters,
    routes_of,
)

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/docs"
DOCS_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# A path under uploads/ may hold "/", but no "." or ".." segment: a client resolves those before
# sending (RFC 3986 5.2.4), so such a request would reach another path than the one described.
_UPLOAD_PATH = {"type": "string", "minLength": 1, "pattern": r"^(?!(.*/)?\.\.?(/|$))"}
# Path parameters never hold "/" (Starlette matches one segment) nor start with "." (dot segments).
SEGMENT = "^[^/.][^/]*$"
ERROR_TEXT = {
    400: (
        "Malformed request: unknown query parameter, bad value, bad JSON (an integer beyond 64 bits anywhere "
        "in a JSON body too), bad slug or name"
    ),
    401: "Missing, unknown, disabled or expired API key",
    403: "The key lacks the scope (or the content type) this operation needs",
    404: "No such document, type, term, key or taxonomy",
    409: "Conflict: slug, name or unique value taken, not in the trash, built in, or still has documents/children",
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


class _Verbatim:
    """An answer that is not an envelope: this document itself, or its HTML page."""

    read_by_handler: ClassVar[bool] = True

    def __init__(self, media_type: str, schema: dict[str, Any]) -> None:
        self.media_type, self.schema = media_type, schema

    def answer(self, spec: SpecContext, type_name: str | None, many: bool) -> dict[str, Any]:
        return {self.media_type: {"schema": self.schema}}

    def request_body(self, spec: SpecContext, type_name: str | None) -> dict[str, Any]:
        raise TypeError("an answer shape describes no request body")


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

    @operation(
        "GET",
        OPENAPI_PATH,
        "getOpenApi",
        "This OpenAPI 3.1 document",
        tag="meta",
        scope=None,
        ok=Answer(
            200, _Verbatim("application/json", {"type": "object", "required": ["openapi", "paths"]}), "The document"
        ),
    )
    async def openapi_json(call: Call) -> Response:
        _, body = current(call.request)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    @operation(
        "GET",
        DOCS_PATH,
        "getApiDocs",
        "The API reference as HTML",
        tag="meta",
        scope=None,
        ok=Answer(
            200,
            _Verbatim("text/html", {"type": "string"}),
            "One self-contained HTML page",
            headers=("Content-Security-Policy",),
        ),
    )
    async def api_docs(call: Call) -> Response:
        spec, _ = current(call.request)
        if cache.get("html") is None:
            cache["html"] = docs_page.render(spec).encode()
        return Response(
            cache["html"],
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"},
        )

    return routes_of(openapi_json, api_docs)


# -- the spec -----------------------------------------------------------------------------


def document_types(index: Index) -> list[str]:
    """Content types the API serves: schemas and folders holding documents (as the types list shows)."""
    return sorted(set(index.types) | {d.type for d in index.docs.values()})


def build_spec(app_routes: list[Any], site: Site, index: Index, now: datetime | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these routes, this site and the index's content types."""
    shared = _static_schemas()
    ctx = SpecContext(
        site, index, now or datetime.now(UTC), reserved={*shared, "Document", "DocumentInput", "DocumentSelection"}
    )
    custom = [t for t in document_types(index) if t not in ("posts", "pages")]
    listed = [r for r in app_routes if isinstance(r, Route) and r.methods is not None and r.include_in_schema]
    # The fixed shapes first, so that a type called `term` cannot take a declared shape's name.
    fixed = {id(r): _declared_op(ctx, d, None) for r in listed if (d := declared(r.endpoint)) and not d.content_type}
    ctx.reserved |= set(ctx.components)
    paths: dict[str, dict[str, Any]] = {}
    for route in listed:  # the preview's pages are the website, described by the theme: not listed
        op = declared(route.endpoint)
        if op is None:  # a route without a declaration is still listed, and a test names it
            for method in sorted(route.methods - {"HEAD"}):  # type: ignore[operator]
                paths.setdefault(spec_path(route.path), {})[method.lower()] = _undocumented(route.path, method)
            continue
        method = op.method.lower()
        if not op.content_type:
            paths.setdefault(spec_path(route.path), {})[method] = fixed[id(route)]
            continue
        fixed_type = None if op.content_type == TYPE_PARAM else op.content_type
        paths.setdefault(spec_path(route.path), {})[method] = _declared_op(ctx, op, fixed_type)
        if fixed_type is None:  # `/content/{type}`: once more for each custom type, with its schemas
            for name in custom:
                concrete = spec_path(route.path).replace("{type}", name)
                paths.setdefault(concrete, {})[method] = _declared_op(ctx, op, name, concrete=True)
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


def spec_path(route_path: str) -> str:
    """A Starlette path template as OpenAPI writes it: `/uploads/{path:path}` -> `/uploads/{path}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path)


def _undocumented(path: str, method: str) -> dict[str, Any]:
    """A route no family describes: still listed (and valid), so a test can name it."""
    return {
        "operationId": re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_"),
        "summary": "Undocumented route",
        "x-undocumented": True,
        "parameters": [_path_param(n, "") for n in re.findall(r"\{(\w+)(?::\w+)?\}", path)],
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
    bodies: dict[str, Any] | None = None,
    description: str = "",
    public: bool = False,
    site: Site | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if bodies:
        op["requestBody"] = {"required": True, "content": bodies}
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
    for status in errors:
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_NAMES[status]}"}
    op["responses"] = responses
    return op


# -- declared operations (cms/api/operations.py) --------------------------------------------


def _declared_op(ctx: SpecContext, op: Operation, type_name: str | None, *, concrete: bool = False) -> dict[str, Any]:
    """The OpenAPI operation of a declaration; for a content type's operation, of that type
    (`concrete`: the `/content/{type}` operation written out for one type)."""
    site = ctx.site
    schemas = Schemas(ctx.components)
    params = []
    for name, declared_param in op.path_params.items():
        if name == "type" and concrete:
            continue
        text, pattern = declared_param if isinstance(declared_param, tuple) else (declared_param, SEGMENT)
        example = live_example(ctx, type_name) if op.content_type and name in ("ref", "slug") else None
        params.append(_path_param(name, text, example, pattern))
    if isinstance(op.query, type):
        for param in query_parameters(op.query):
            if param["name"] == "per_page" and "maximum" not in param["schema"]:  # the site's cap
                param["schema"] = {**param["schema"], "maximum": site.defaults.max_per_page}
            params.append(param)
    else:
        params += op.query.parameters(ctx, type_name)
    writes = op.method in ("PUT", "PATCH", "DELETE")
    if_match_required = site.api.require_if_match and writes and "If-Match" in op.headers
    for header in op.headers:
        params.append(_request_header(header, required=if_match_required))
    bodies = None
    if isinstance(op.body, type):
        bodies = {"application/json": {"schema": schemas.ref(op.body)}}
        if op.example is not None:
            bodies["application/json"]["example"] = op.example
    elif op.body is not None:
        bodies = op.body.request_body(ctx, type_name)
    ok = {}
    for answer in (op.ok, *op.also):
        ok[str(answer.status)] = _answer(ctx, schemas, answer, type_name)
    public = op.public and (type_name in site.api.public_types if type_name else bool(site.api.public_types))
    errors = set(op.implied_errors()) | ({428} if if_match_required else set())
    tag = op.tag if type_name is None or not op.content_type else _type_tag(type_name)
    what = type_name or "a type"
    return _op(
        op.operation_id.replace("{Type}", ctx.prefix(type_name) if concrete else "AnyType"),
        tag,
        op.summary.replace("{type}", what),
        scope=op.scope,
        site=site,
        public=public,
        params=params or None,
        bodies=bodies,
        ok=ok,
        errors=tuple(sorted(errors)),
        description=op.description,
    )


def _answer(ctx: SpecContext, schemas: Schemas, answer: Answer, type_name: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = {name: RESPONSE_HEADERS[name] for name in answer.headers}
    shape = answer.shape
    if shape is None:
        return out
    if isinstance(shape, type):
        data = schemas.ref(shape)
        many = {"type": "array", "items": data}
        schema = _envelope(many, answer.pagination) if answer.many else _envelope(data)
        out["content"] = {"application/json": {"schema": schema}}
    else:
        out["content"] = shape.answer(ctx, type_name, answer.many)
    return out


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _header(description: str, schema: dict[str, Any] | None = None, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema or {"type": "string"}}


RESPONSE_HEADERS = {
    "ETag": _header('Strong validator of the file: `"sha256-<hex>"`; send it back in If-Match'),
    "Location": _header("Path of the new resource"),
    "Link": _header('first, last, prev and next pages: `<url>; rel="next"`'),
    "X-Total-Count": _header("Number of matching items", {"type": "string", "pattern": "^[0-9]+$"}),
    "Content-Security-Policy": _header("Allows nothing but the page itself"),
}
_IF_MATCH = 'ETag(s) of the version the write is based on (`"sha256-..."`, or `*`); 412 when the file changed'
REQUEST_HEADERS = {
    "If-Match": _IF_MATCH,
    "If-Match?": _IF_MATCH + "; optional here",
    "If-None-Match": "ETag(s) the client holds: 304 when one is current",
}


# RFC 9110 entity tags: `*`, or a list of (weak) quoted tags.
# (empty: the header counts as absent, as the server reads it)
_ETAGS = {"type": "string", "pattern": r'^(\*|(W/)?"[\x21\x23-\x7e]*"(\s*,\s*(W/)?"[\x21\x23-\x7e]*")*)?$'}


def _request_header(name: str, *, required: bool) -> dict[str, Any]:
    text = REQUEST_HEADERS[name]
    if name == "If-Match" and required:
        text += "; required on this site (428 without)"
    # If-None-Match that names no tag of ours simply does not match (RFC 9110 13.1.2): any text goes.
    schema = {"type": "string"} if name == "If-None-Match" else _ETAGS
    return _param(name.rstrip("?"), "header", schema, text, required=required and name == "If-Match")


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


# -- shared components --------------------------------------------------------------------


def _obj(props: dict[str, Any], required: list[str] | None = None, *, closed: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "required": list(props) if required is None else required}
    out["properties"] = props
    if closed:
        out["additionalProperties"] = False
    return out


_BOOL = {"type": "boolean"}


def _static_schemas() -> dict[str, Any]:
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
