"""GET /api/v1/audit: the audit log, newest first (admin scope), declared once (cms/api/operations.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field
from starlette.responses import Response
from starlette.routing import Route

from cms.content.query import pagination

from .http import json_response
from .operations import Answer, Call, Integer, Shape, operation, routes_of


class AuditEntry(Shape):
    """One write attempt: who, from where, what, and how it ended (cms.audit.AuditEntry)."""

    model_config = ConfigDict(extra="allow")  # a line of a file a person may have edited

    time: datetime
    action: str = Field(description="e.g. posts.create, api-keys.rotate")
    target: str = Field(description="The request path")
    result: int = Field(description="HTTP status of the answer")
    key_id: str | None
    key_name: str | None
    client: str | None
    method: str


class AuditQuery(Shape):
    page: Integer = Field(1, ge=1, le=1_000_000, description="Page number")
    per_page: Integer = Field(50, ge=1, le=500, description="Page size")
    action: str = Field("", description="Action prefix, e.g. `posts` or `posts.create`")
    key_id: str = Field("", description="Only writes by this key")


@operation(
    "GET",
    "/api/v1/audit",
    "listAudit",
    "Read the audit log, newest first",
    tag="audit",
    scope="admin",
    query=AuditQuery,
    ok=Answer(200, AuditEntry, "One page of entries", many=True, pagination="Pagination"),
)
async def list_audit(call: Call) -> Response:
    query: AuditQuery = call.query
    entries, total = call.services.audit.read(
        page=query.page, per_page=query.per_page, action=query.action or None, key_id=query.key_id or None
    )
    return json_response({"data": entries, "pagination": pagination(total, query.page, query.per_page)})


def routes() -> list[Route]:
    return routes_of(list_audit)
