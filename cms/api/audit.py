"""GET /api/v1/audit: the audit log, newest first (admin scope)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.content.query import int_param, pagination

from .http import json_response, only_params, query_params, require, services


async def list_audit(request: Request) -> Response:
    require(request, "admin")
    params = query_params(request)
    only_params(params, ("page", "per_page", "action", "key_id"))
    page = int_param(params, "page", 1, 1, 1_000_000)
    per_page = int_param(params, "per_page", 50, 1, 500)
    action = params.get("action") if isinstance(params.get("action"), str) else None
    key_id = params.get("key_id") if isinstance(params.get("key_id"), str) else None
    entries, total = services(request).audit.read(page=page, per_page=per_page, action=action, key_id=key_id)
    return json_response({"data": entries, "pagination": pagination(total, page, per_page)})


def routes() -> list[Route]:
    return [Route("/api/v1/audit", list_audit, methods=["GET"])]
