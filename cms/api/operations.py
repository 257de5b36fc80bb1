"""API operations, each declared once beside its handler.

    @operation("POST", "/api/v1/api-keys", "createApiKey", "Issue an API key", tag="api-keys",
               scope="admin", body=ApiKeyInput, ok=Answer(201, IssuedApiKey, "The key with its token"),
               errors=(413, 415, 422))
    async def create_key(call: Call) -> Response: ...

From that one declaration come:
- the Starlette route (`routes_of(module)`), with `Allow` listing every method of its path;
- the scope check before the handler runs (401 without a key, 403 without the scope);
- the query parameters: a pydantic model (`NoQuery` when there are none), so a parameter the
  operation does not know is a 400 naming it and the accepted ones, and each value is read by the
  project's one boolean and one integer reader;
- the body: read strictly as JSON (`read_json`), then validated by the body model with every error
  collected into the 422's `details`, in the project's own words;
- the OpenAPI operation (`describe`): parameters, request body and answers from the same models.

Content-type documents keep their data-driven schemas (`_type.yaml` is data): their operations are
declared here like every other, with a `DataShape` (cms/api/docschema.py) in place of a model, which
describes the body and answer for one content type, and a `Grammar` in place of the query model for
the list filters, which the handler parses itself after its answer cache. An operation on
`/content/{type}` is described once per content type of the site.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.auth import ApiKey
from cms.config import Site
from cms.content.index import Index
from cms.content.query import to_bool, to_int
from cms.errors import BadRequest, Invalid, Unauthorized
from cms.history.actor import Actor, set_actor

from .http import Services, api_key, public_read, query_params, read_json, require, services

SCOPES = ("read", "write", "delete", "admin")
ANY_KEY = "any"  # any valid key, whatever its scopes (a key's own status)
TYPE_PARAM = "{type}"  # content_type= of an operation whose path names the type
# Path parameters: name -> description, or (description, pattern) where a segment has a rule of its own.
PathParams = dict[str, str | tuple[str, str]]


def _flag(value: Any) -> Any:
    """A query flag: a bare `?name` is true; the other spellings are the query engine's."""
    if value == "":
        return True
    if isinstance(value, str):
        read = to_bool(value)
        return value if read is None else read  # left as text, the bool check then refuses it
    return value


def read_integer(value: Any) -> Any:
    """A query integer, read as the query engine reads one (a bad one is left for the int check)."""
    if isinstance(value, str):
        try:
            return to_int(value, "")
        except BadRequest:
            return value
    return value


def comma_list(value: Any) -> Any:
    """A list that may also be sent as one comma-separated string (`"read,write"`)."""
    return [part.strip() for part in value.split(",")] if isinstance(value, str) else value


Flag = Annotated[bool, BeforeValidator(_flag)]
# An optional bounded integer puts its bounds first: `Annotated[int | None, Field(ge=1),
# BeforeValidator(read_integer)]` (pydantic cannot publish the bounds of `Integer | None`).
Integer = Annotated[int, BeforeValidator(read_integer)]


class Shape(BaseModel):
    """A fixed shape of the API (a request body or an answer): closed, strict, every error collected.

    Strict: JSON has its own types, so `"yes"` is not a boolean and `"3"` not an integer in a body
    (query parameters are text: `Flag` and `Integer` read them first)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class NoQuery(Shape):
    """An operation that takes no query parameter: any parameter is a 400 naming it."""


class DataShape(Protocol):
    """A shape that is data, not a model: a document of a content type (its `_type.yaml`).

    The route reads such a body as JSON and hands it over as it is: the store checks it against
    the type. The OpenAPI document asks the shape for its schemas, once per content type."""

    read_by_handler: ClassVar[bool]  # True: the handler reads the body (a multipart upload)

    def request_body(self, spec: SpecContext, type_name: str | None) -> dict[str, Any]:
        """The `requestBody.content` of an operation: media type -> {schema, example}."""
        ...

    def answer(self, spec: SpecContext, type_name: str | None, many: bool) -> dict[str, Any]:
        """The `content` of the success answer: media type -> {schema} (the envelope included)."""
        ...


class Grammar(Protocol):
    """Query parameters with a grammar of their own (`filters[field][$op]`), parsed by the handler."""

    def parameters(self, spec: SpecContext, type_name: str | None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Answer:
    """The success answer: its status, the shape of `data` in the envelope, and its headers."""

    status: int
    shape: type[BaseModel] | DataShape | None  # None: no body (204)
    description: str
    many: bool = False  # `data` is a list of the shape, with `pagination`
    pagination: str = "Count"  # the `pagination` of a list: Count ({total}) or Pagination (pages)
    headers: tuple[str, ...] = ()  # names from HEADERS


@dataclass(frozen=True)
class Operation:
    """One method on one path, declared once: everything else about it is derived."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    scope: str | None  # a scope name, ANY_KEY, or None for a public operation
    ok: Answer
    query: type[BaseModel] | Grammar = NoQuery
    body: type[BaseModel] | DataShape | None = None
    errors: tuple[int, ...] = ()  # besides the ones the declaration implies (400, 401/403/429, 422)
    path_params: PathParams = field(default_factory=dict)
    description: str = ""
    example: dict[str, Any] | None = None  # a request body that the tests send and validate
    content_type: str | None = None  # the documents' type: a name ("posts"), or TYPE_PARAM
    public: bool = False  # the site's api.public_types may be read without a key
    headers: tuple[str, ...] = ()  # request headers it reads: If-Match (If-Match?: optional), If-None-Match
    also: tuple[Answer, ...] = ()  # other successes: 304 Not Modified, 204 for a permanent delete

    def implied_errors(self) -> tuple[int, ...]:
        """Every refusal this operation can answer: declared, and implied by its parts."""
        implied = {400, 414, *self.errors}
        if self.scope is not None:
            implied |= {401, 429} | ({403} if self.scope != ANY_KEY else set())
        if self.body is not None:
            implied |= {413, 415, 422}
        if self.path_params or self.content_type == TYPE_PARAM:
            implied.add(404)
        if any(h.startswith("If-Match") for h in self.headers):
            implied.add(412)
        return tuple(sorted(implied))


@dataclass(frozen=True)
class Call:
    """What a handler gets: the request, the services, the calling key and the validated inputs."""

    request: Request
    services: Services
    key: ApiKey | None
    query: Any
    body: Any
    type_name: str | None = None  # the content type an operation with `content_type` acts on

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Call], Awaitable[Response]]


def operation(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    tag: str,
    scope: str | None,
    ok: Answer,
    **more: Any,
) -> Callable[[Handler], Handler]:
    """Declare the operation a handler serves; `routes_of` and the OpenAPI document read it back."""

    def declare(handler: Handler) -> Handler:
        handler.operation = Operation(method, path, operation_id, summary, tag, scope, ok, **more)  # type: ignore[attr-defined]
        return handler

    return declare


def declared(handler: Any) -> Operation | None:
    """The operation a handler or route endpoint was declared with, if any."""
    return getattr(handler, "operation", None)


def routes_of(*handlers: Handler) -> list[Route]:
    """One route per declared handler, each running its declaration's checks before the handler."""
    return [_route(h, op) for h in handlers if (op := declared(h)) is not None]


def _route(handler: Handler, op: Operation) -> Route:
    query_model = op.query if isinstance(op.query, type) else None  # a Grammar: the handler parses it
    body_model = op.body if isinstance(op.body, type) else None
    reads_json = op.body is not None and not getattr(op.body, "read_by_handler", False)

    async def endpoint(request: Request) -> Response:
        svc = services(request)
        type_name = _content_type(svc, request, op.content_type)
        key = _authorize(request, op, type_name)
        set_actor(None if key is None else key_actor(key, svc.site))  # the author of its writes' commits
        query = parse_query(query_model, query_params(request)) if query_model is not None else None
        body = None
        if reads_json:
            body = await read_json(request)
            if body_model is not None:
                body = parse_body(body_model, body)
        return await handler(Call(request, svc, key, query, body, type_name))

    endpoint.operation = op  # type: ignore[attr-defined]
    endpoint.__name__ = handler.__name__
    return Route(op.path, endpoint, methods=[op.method])


def key_actor(key: ApiKey, site: Site) -> Actor:
    """An API key as the author of a commit: `<key name> <key-id@site host>`."""
    host = urlsplit(site.site.base_url).hostname or "localhost"
    return Actor(key.name, f"{key.id}@{host}", key.id)


def _content_type(svc: Services, request: Request, declared_type: str | None) -> str | None:
    """The content type the operation acts on: 404 for an unknown one, 400 for a bad name."""
    if declared_type is None:
        return None
    name = request.path_params["type"] if declared_type == TYPE_PARAM else declared_type
    svc.store.content_type(name)
    return name


def _authorize(request: Request, op: Operation, type_name: str | None) -> ApiKey | None:
    scope = op.scope
    if scope is None:
        return None
    if scope == ANY_KEY:
        key = api_key(request)
        if key is None:
            raise Unauthorized("send an API key in X-API-Key or Authorization: Bearer")
        return key
    if op.public and type_name is not None:
        return public_read(request, type_name)
    return require(request, scope, type_name)


# -- inputs ---------------------------------------------------------------------------------


def parse_query(model: type[BaseModel], params: dict[str, Any]) -> Any:
    """Validated query parameters; 400 naming an unknown parameter, or the first bad value."""
    accepted = sorted(model.model_fields)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}; accepted: {', '.join(accepted) or 'none'}",
            details={"parameter": unknown[0], "accepted": accepted},
        )
    try:
        return model.model_validate({k: _single(v) for k, v in params.items()})
    except ValidationError as exc:
        name, problem = next(iter(_problems(exc).items()))
        raise BadRequest(f"{name} {problem[0]}") from None


def _single(value: Any) -> Any:
    """A repeated parameter's last value (lists are declared as comma-separated text)."""
    return value[-1] if isinstance(value, list) and value else value


def parse_body(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """The body as the model; a 422 with every problem, one list of messages per field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Invalid(_problems(exc)) from None


# The project's words for pydantic's error types (its own messages are another library's text).
_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a known setting",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "datetime_type": "must be an ISO 8601 date-time",
    "datetime_parsing": "must be an ISO 8601 date-time",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time",
    "timezone_aware": "needs a timezone",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be greater than {gt}",
    "less_than": "must be less than {lt}",
    "string_pattern_mismatch": "does not have the expected form",
}


def _problems(exc: ValidationError) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        top, *inner = error["loc"] or ("body",)
        where = str(top)  # details are keyed by the field a person sent, as everywhere in the API
        template = _MESSAGES.get(error["type"])
        if error["type"] == "value_error":  # a check of the project's own: its message is ours
            message = str(error.get("ctx", {}).get("error", "is not valid"))
        elif template is None:
            message = "is not valid"
        else:
            message = template.format(**{k: _shown(v) for k, v in (error.get("ctx") or {}).items()})
        if inner:  # inside a list or an object: say where
            message = f"{_inside(inner)} {message}"
        out.setdefault(where, []).append(message)
    return out


def _inside(parts: list[Any]) -> str:
    """`item 2`, `item 2.name`: where inside a field a problem is."""
    text = ".".join(str(p) for p in parts)
    return f"item {text}" if isinstance(parts[0], int) else text


def _shown(value: Any) -> Any:
    return str(value).replace("'", "") if isinstance(value, str) else value


# -- the OpenAPI side -----------------------------------------------------------------------


@dataclass
class SpecContext:
    """What describing operations needs: the site, its index, the moment, and the schemas so far."""

    site: Site
    index: Index
    now: datetime
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # content type -> component prefix
    reserved: set[str] = field(default_factory=set)  # names of the shared component schemas

    def prefix(self, type_name: str | None) -> str:
        """`Posts`, `Products`, `Document` (any type): the component names of a type's documents."""
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


class Schemas:
    """Component schemas gathered while describing operations: one entry per model, by its name."""

    REF: ClassVar[str] = "#/components/schemas/{model}"

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components  # the document's components.schemas, filled as models are met

    def ref(self, model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
        """A `$ref` to the model's schema (added once, with the schemas it refers to)."""
        schema = model.model_json_schema(ref_template=self.REF, mode=mode)  # type: ignore[arg-type]
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, sub)
        name = schema.get("title", model.__name__)
        schema.pop("title", None)
        self.components.setdefault(name, schema)
        return {"$ref": self.REF.format(model=name)}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query model's fields as OpenAPI parameters (name, schema, default, description)."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        # An optional parameter is absent, never null: `int | None` is published as the int.
        branches = prop.pop("anyOf", None)
        if branches is not None:
            kept = [b for b in branches if b != {"type": "null"}]
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
            if prop.get("default", "") is None:
                del prop["default"]
        description = prop.pop("description", "")
        required = name in schema.get("required", ())
        out.append({"name": name, "in": "query", "required": required, "description": description, "schema": prop})
    return out


def declared_operations(routes: Iterable[Any]) -> list[Operation]:
    """Every declared operation among an app's routes (the tests iterate these)."""
    return [op for route in routes if (op := declared(getattr(route, "endpoint", None))) is not None]
