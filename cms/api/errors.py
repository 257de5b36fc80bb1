"""The only place that picks HTTP status codes: CMS errors and Starlette's own -> one JSON envelope.

Every error answer is `{"error": {"code", "message", "details"}}`; no stack trace or file system
path ever reaches a client. Unexpected exceptions are logged with a request id that the 500 answer
carries, so an operator can find the traceback.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from cms import errors

log = logging.getLogger("cms.api")

STATUS: dict[type[errors.CMSError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Invalid: 422,
    errors.ParseError: 422,
    errors.PreconditionRequired: 428,
    errors.RateLimited: 429,
}
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    428: "PRECONDITION_REQUIRED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details if details is not None else {}}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def status_of(exc: errors.CMSError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def cms_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CMSError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    details = exc.details
    if isinstance(exc, errors.ParseError):  # a file's own path stays on the server
        details = {"line": exc.line}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="cms"'
    if isinstance(exc, errors.PreconditionFailed | errors.Conflict) and exc.current_etag:
        headers["ETag"] = f'"{exc.current_etag}"'
    if status == 500:
        return await unexpected_error(request, exc)
    return error_response(status, exc.code, exc.message, details, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "ERROR")
    message = {404: "no such endpoint", 405: f"method {request.method} is not allowed here"}.get(
        exc.status_code, str(exc.detail)
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, code, message, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this path (RFC 9110: Allow lists them all).

    Starlette's own 405 names only the methods of the first route whose path matched, and a path
    often has one route per method. Each route is asked as the router asks it (`matches`), so a
    route that declines a path (the preview's pages decline the API's) adds nothing to its Allow."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    request_id = secrets.token_hex(8)
    log.error("unhandled error %s on %s %s", request_id, request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "an unexpected error occurred", {"request_id": request_id})


HANDLERS = {errors.CMSError: cms_error, HTTPException: http_error, Exception: unexpected_error}
