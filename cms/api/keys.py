"""API key management over HTTP (admin scope) and the calling key's own status.

Each operation is declared once (cms/api/operations.py): its route, scope, parameters, body and
answers, and so its OpenAPI description, come from the declarations and shapes below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from cms.auth import SCOPES, IssuedKey
from cms.content.model import to_datetime
from cms.errors import BadRequest, Invalid

from .http import json_response
from .operations import ANY_KEY, Answer, Call, Shape, comma_list, operation, routes_of

ScopeName = Literal["read", "write", "delete", "admin"]
assert set(ScopeName.__args__) == set(SCOPES)  # type: ignore[attr-defined]  # one list of scopes

# The two spellings of a key's scopes: a list, or the same list as a comma-separated string.
_ONE_SCOPE = r"\s*(read|write|delete|admin)\s*"
ScopesInput = (
    Annotated[list[ScopeName], Field(min_length=1)] | Annotated[str, Field(pattern=f"^{_ONE_SCOPE}(,{_ONE_SCOPE})*$")]
)
NON_BLANK = r"\S"

TAG = "api-keys"
DEFAULT_SCOPES: tuple[ScopeName, ...] = ("read",)
KEY_ID = {"id": "Key id (12 characters, the part after cms_)"}


class ApiKey(Shape):
    """An API key as the API shows it: never its token or secret."""

    id: str
    name: str
    scopes: list[ScopeName]
    types: list[str] | None = Field(description="null: every content type")
    last4: str
    has_secret: bool
    enabled: bool
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class IssuedApiKey(ApiKey):
    """A key right after it was made or rotated: the only answer that holds its token."""

    key: str = Field(pattern="^cms_", description="The token: shown only now")
    secret: str | None = Field(None, description="Only for keys created with_secret: shown only now")
    notice: str


class KeyStatus(ApiKey):
    """The calling key's own status (seed 001's GET /api-key/status)."""

    has_key: Literal[True]


class ApiKeyInput(Shape):
    """A new key: who uses it, what it may do, until when."""

    # Not blank: Keys.create finds no name in one made of spaces.
    name: str = Field(min_length=1, max_length=100, json_schema_extra={"pattern": NON_BLANK})
    scopes: Annotated[list[ScopeName], BeforeValidator(comma_list, json_schema_input_type=ScopesInput)] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        min_length=1,
        description="write and delete include read; admin includes everything (default [read]); "
        "a comma-separated string is read as a list",
    )
    expires_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})] | None = Field(
        None, description="When the key stops working (a time without an offset is in the site's timezone)"
    )
    with_secret: bool = Field(False, description="Also require X-API-Secret")
    types: list[str] | None = Field(None, description="Limit the key to these types")


def _issued(issued: IssuedKey) -> dict[str, object]:
    data: dict[str, object] = {**issued.key.as_dict(), "key": issued.token}
    if issued.secret:
        data["secret"] = issued.secret
    data["notice"] = "store the key now: it is shown only once"
    return data


@operation(
    "GET",
    "/api/v1/api-keys",
    "listApiKeys",
    "List API keys",
    tag=TAG,
    scope="admin",
    ok=Answer(200, ApiKey, "Every key (never a secret)", many=True),
)
async def list_keys(call: Call) -> Response:
    keys = call.services.keys.list()
    return json_response({"data": [k.as_dict() for k in keys], "pagination": {"total": len(keys)}})


@operation(
    "POST",
    "/api/v1/api-keys",
    "createApiKey",
    "Issue an API key (the token is shown once)",
    tag=TAG,
    scope="admin",
    body=ApiKeyInput,
    ok=Answer(201, IssuedApiKey, "The key with its token", headers=("Location",)),
    example={"name": "deploy bot", "scopes": ["read"]},
)
async def create_key(call: Call) -> Response:
    body: ApiKeyInput = call.body
    scopes = list(body.scopes)
    expires = None
    if body.expires_at is not None:
        expires = to_datetime(body.expires_at, call.services.site.tz)
        if expires is None:
            raise Invalid({"expires_at": ["must be an ISO 8601 date-time"]})
    try:
        issued = await run_in_threadpool(
            lambda: call.services.keys.create(
                body.name, scopes, expires_at=expires, with_secret=body.with_secret, types=body.types
            )
        )
    except BadRequest as exc:
        raise Invalid({"scopes" if "scope" in exc.message else "name": [exc.message]}) from None
    return json_response({"data": _issued(issued)}, 201, headers={"Location": f"/api/v1/api-keys/{issued.key.id}"})


@operation(
    "GET",
    "/api/v1/api-keys/{id}",
    "getApiKey",
    "Get an API key",
    tag=TAG,
    scope="admin",
    path_params=KEY_ID,
    ok=Answer(200, ApiKey, "The key"),
)
async def get_key(call: Call) -> Response:
    return json_response({"data": call.services.keys.get(call.path("id")).as_dict()})


@operation(
    "DELETE",
    "/api/v1/api-keys/{id}",
    "revokeApiKey",
    "Revoke an API key",
    tag=TAG,
    scope="admin",
    path_params=KEY_ID,
    ok=Answer(204, None, "Revoked"),
)
async def delete_key(call: Call) -> Response:
    await run_in_threadpool(call.services.keys.revoke, call.path("id"))
    return Response(status_code=204)


@operation(
    "POST",
    "/api/v1/api-keys/{id}/disable",
    "disableApiKey",
    "Disable an API key",
    tag=TAG,
    scope="admin",
    path_params=KEY_ID,
    ok=Answer(200, ApiKey, "The key"),
)
async def disable_key(call: Call) -> Response:
    key = await run_in_threadpool(call.services.keys.set_enabled, call.path("id"), False)
    return json_response({"data": key.as_dict()})


@operation(
    "POST",
    "/api/v1/api-keys/{id}/enable",
    "enableApiKey",
    "Enable an API key",
    tag=TAG,
    scope="admin",
    path_params=KEY_ID,
    ok=Answer(200, ApiKey, "The key"),
)
async def enable_key(call: Call) -> Response:
    key = await run_in_threadpool(call.services.keys.set_enabled, call.path("id"), True)
    return json_response({"data": key.as_dict()})


@operation(
    "POST",
    "/api/v1/api-keys/{id}/rotate",
    "rotateApiKey",
    "Rotate an API key (new token, same id)",
    tag=TAG,
    scope="admin",
    path_params=KEY_ID,
    ok=Answer(200, IssuedApiKey, "The key with its new token"),
)
async def rotate_key(call: Call) -> Response:
    issued = await run_in_threadpool(call.services.keys.rotate, call.path("id"))
    return json_response({"data": _issued(issued)})


@operation(
    "GET",
    "/api/v1/api-key/status",
    "getApiKeyStatus",
    "The calling key's own status",
    tag=TAG,
    scope=ANY_KEY,
    ok=Answer(200, KeyStatus, "The calling key"),
)
async def key_status(call: Call) -> Response:
    assert call.key is not None  # ANY_KEY: the declaration refused a call without one
    return json_response({"data": {"has_key": True, **call.key.as_dict()}})


def routes() -> list[Route]:
    return routes_of(list_keys, create_key, get_key, delete_key, disable_key, enable_key, rotate_key, key_status)
