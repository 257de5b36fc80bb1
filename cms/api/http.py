"""Request and response plumbing shared by the resource modules: services, auth, JSON in and out.

JSON bodies are parsed strictly: `application/json` only (415), no `NaN`/`Infinity`, no duplicate
keys, bounded depth; a body too deep for the parser's recursion is a 400 like any other bad JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from cms.audit import AuditLog
from cms.auth import ApiKey, Keys
from cms.clock import Clock
from cms.config import Site
from cms.content.index import Index
from cms.content.query import Page, parse_brackets
from cms.content.store import Store
from cms.errors import BadRequest, PreconditionRequired, RateLimited, Unauthorized, UnsupportedMediaType
from cms.events.bus import Bus
from cms.events.webhooks import Webhooks
from cms.media import MediaLibrary
from cms.ratelimit import RateLimiter
from cms.state import State

from .answers import ReadyAnswers
from .encode import dumps
from .serialize import DocumentSerializer


@dataclass
class Services:
    """What handlers work with; one per app, built by create_app."""

    site: Site
    index: Index
    store: Store
    state: State
    keys: Keys
    bus: Bus
    clock: Clock
    limiter: RateLimiter
    audit: AuditLog
    answers: ReadyAnswers
    webhooks: Webhooks
    serializer: DocumentSerializer
    # Published documents per term, per taxonomy: (index generation, monotonic time, counts); see terms.py.
    term_counts: dict[str, tuple[int, float, dict[str, int]]] = field(default_factory=dict)
    # Scanned from uploads/ on first use (`media.library_of`; cms serve loads it at startup).
    media: MediaLibrary | None = None


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def paging_headers(request: Request, page: Page) -> dict[str, str]:
    """X-Total-Count and a Link header (first, prev, next, last) for a paged list answer."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    base = str(request.url.replace(query=""))
    targets = {"first": 1, "last": page.total_pages}
    if page.has_prev:
        targets["prev"] = page.page - 1
    if page.has_next:
        targets["next"] = page.page + 1
    query = urlencode(pairs)  # once: encoding it per link was the costliest step of a cached list
    prefix = f"{base}?{query}&page=" if query else f"{base}?page="
    links = [f'<{prefix}{number}>; rel="{rel}"' for rel, number in targets.items()]
    return {"X-Total-Count": str(page.total), "Link": ", ".join(links)}


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


# -- input --------------------------------------------------------------------------------


INTEGER_TOO_LARGE = "integers in JSON bodies must fit in 64 bits"


def _bounded_int(text: str) -> int:
    """Integers within 64 bits: what JSON clients, SQLite and the JSON encoder all handle."""
    if len(text) > 20:
        raise BadRequest(INTEGER_TOO_LARGE)
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise BadRequest(INTEGER_TOO_LARGE)
    return value


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"JSON literal {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to inf: Infinity by another spelling
        raise BadRequest(f"JSON number {text[:40]} is too large for a float")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"duplicate key {key!r} in JSON object")
        out[key] = value
    return out


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


async def read_json(request: Request, *, allow_array: bool = False) -> Any:
    """The request's JSON body as an object; 400/413/415 with a precise message otherwise."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json (got {media or 'no content type'})")
    body = await request.body()  # capped by the body-limit middleware before it is buffered
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        text = body.decode("utf-8")  # strict: json.loads(bytes) would let raw surrogate bytes through
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("malformed JSON: nesting is too deep") from None
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        raise BadRequest("malformed JSON: a number has too many digits") from None
    if _has_lone_surrogate(value):  # "\ud800" parses, but no file, log or JSON answer can hold it
        raise BadRequest("the JSON body holds a lone surrogate (\\ud800-\\udfff), which is not valid unicode")
    limit = services(request).site.api.max_json_depth
    if _depth(value, limit) > limit:
        raise BadRequest(f"JSON is nested deeper than {limit} levels")
    if not isinstance(value, dict) and not (allow_array and isinstance(value, list)):
        raise BadRequest(f"the request body must be a JSON object, not {type(value).__name__}")
    return value


def query_params(request: Request) -> dict[str, Any]:
    """Query-string pairs as a nested dict (bracket grammar)."""
    params = parse_brackets(request.query_params.multi_items())
    if services(request).site.api.allow_query_token:
        params.pop("api_token", None)  # a credential, not a list parameter
    return params


def only_params(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}; accepted: {', '.join(sorted(allowed)) or 'none'}",
            details={"parameter": unknown[0], "accepted": sorted(allowed)},
        )


def if_match(request: Request, *, required: bool) -> str | None:
    value = request.headers.get("if-match")
    if value is None and required:
        raise PreconditionRequired("this site requires an If-Match header with the document's ETag on writes")
    return value


# -- authentication -----------------------------------------------------------------------


def credentials(request: Request) -> tuple[str | None, str | None]:
    """(token, secret) from X-API-Key or Authorization: Bearer, and X-API-Secret.

    `api_token` in the query string or JSON body counts only where the site enables it (it ends up
    in logs and browser history, so it is off by default).
    """
    # An empty or blank header counts as absent (clients and proxies send `X-API-Key:` beside a real
    # Authorization), and so does a header repeated with one empty copy: the first value that holds
    # something is the credential.
    token = _first_value(request.headers.getlist("x-api-key"))
    if token is None:
        for auth in request.headers.getlist("authorization"):
            scheme, _, value = auth.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
                break
    if token is None and services(request).site.api.allow_query_token:
        token = request.query_params.get("api_token") or request.scope.get("body_token") or None
    return token, _first_value(request.headers.getlist("x-api-secret"))


def _first_value(values: list[str]) -> str | None:
    return next((v.strip() for v in values if v.strip()), None)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def api_key(request: Request) -> ApiKey | None:
    """The calling key, None when no credentials were sent; Unauthorized for bad ones. Cached per request.

    Each authenticated request counts against its key's limits; each failed one against the
    client address, which is refused with 429 once it has failed too often this minute.
    """
    if "api_key" in request.scope:
        return request.scope["api_key"]  # type: ignore[no-any-return]
    svc = services(request)
    token, secret = credentials(request)
    if not token:
        request.scope["api_key"] = None
        return None
    address = client_address(request)
    try:
        # A token this process verified a moment ago is not a guess: it skips the per-address
        # failure count (a database read per request). Guesses always meet it, before verification.
        key = svc.keys.recently_verified(token, secret)
        if key is None:
            svc.limiter.check_address(address, svc.site.api.failed_auth_per_minute)
            key = svc.keys.verify(token, secret)
    except Unauthorized:
        svc.limiter.fail(address)
        raise
    verdict = svc.limiter.hit(f"key:{key.id}", svc.site.api.rate_limit_per_minute, svc.site.api.rate_limit_per_day)
    request.scope["rate_limit"] = verdict
    request.scope["api_key"] = key
    if not verdict.allowed:
        raise RateLimited("rate limit exceeded for this API key", retry_after=verdict.retry_after, limit=verdict.limit)
    return key


def require(request: Request, scope: str, type_name: str | None = None) -> ApiKey:
    """The calling key if it holds `scope`; 401 without a key, 403 without the scope."""
    key = api_key(request)
    if key is None:
        svc = services(request)
        address = client_address(request)
        svc.limiter.check_address(address, svc.site.api.failed_auth_per_minute)
        svc.limiter.fail(address)
        raise Unauthorized("send an API key in X-API-Key or Authorization: Bearer")
    key.require(scope, type_name)
    return key


def public_read(request: Request, type_name: str) -> ApiKey | None:
    """Read access: a key with `read`, or nobody when the site lets anyone read this type."""
    token, _ = credentials(request)
    svc = services(request)
    if token is None and type_name in svc.site.api.public_types:
        verdict = svc.limiter.hit(
            f"anon:{client_address(request)}", svc.site.api.rate_limit_per_minute, svc.site.api.rate_limit_per_day
        )
        request.scope["rate_limit"] = verdict
        if not verdict.allowed:
            raise RateLimited("rate limit exceeded for this address", retry_after=verdict.retry_after)
        return None
    return require(request, "read", type_name)


def may_see_unpublished(key: ApiKey | None) -> bool:
    """Drafts, scheduled and trashed documents: for keys that write, delete or administer."""
    return key is not None and (key.can("write") or key.can("delete") or key.can("admin"))
