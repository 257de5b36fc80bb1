"""Content types over HTTP: list, create, read, update (PATCH merges) and delete `_type.yaml` schemas.

Each operation is declared once (cms/api/operations.py): its route, scope, parameters, body and
answers, and so its OpenAPI description, come from the declarations and shapes below. The shapes
check the form of a definition; `content_type_from_dict` (the one reader of `_type.yaml`) still
decides whether the merged whole makes a valid type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from cms.content.model import BUILTIN_TYPES, FIELD_TYPE_ALIASES, FIELD_TYPES, ContentType, content_type_from_dict
from cms.content.names import FIELD_NAME_PATTERN, TYPE_NAME_PATTERN, check_type_name
from cms.errors import Invalid

from .http import json_response
from .operations import Answer, Call, Flag, Shape, operation, routes_of

TAG = "content-types"
TYPE_NAME = "^[a-z][a-z0-9_-]{0,63}$"  # cms.content.names.check_type_name (device names also refused)
FIELD_NAME = FIELD_NAME_PATTERN  # cms.content.names: the rule field_from_dict applies
NAME = {"name": ("Content type name", TYPE_NAME_PATTERN)}

# Every spelling model.py knows, keyed case-insensitively: `richText` and `richtext` are one name
# (a client generator turns enum values into upper-case constants, so both cannot be published).
_SPELLINGS = {s.casefold(): s for s in sorted({*FIELD_TYPES, *FIELD_TYPE_ALIASES})}


def _field_type(value: str) -> str:
    """A field type name in any case, as a spelling `content_type_from_dict` reads."""
    spelling = _SPELLINGS.get(value.casefold())
    if spelling is None:
        raise ValueError(f"must be a field type, got {value!r}; known: {', '.join(sorted(FIELD_TYPES))}")
    return spelling


FieldTypeName = Annotated[
    str,
    AfterValidator(_field_type),
    WithJsonSchema(
        {"type": "string", "enum": sorted(_SPELLINGS), "description": "A field type or an alias (any case)"},
        mode="validation",
    ),
]
FieldName = Annotated[str, Field(pattern=FIELD_NAME)]
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]  # an int stays an int in _type.yaml


class FieldSettings(Shape):
    """A field's settings: the value of one entry of a `{name: {...}}` fields map."""

    type: FieldTypeName = "text"
    label: str | None = None
    required: bool = False
    unique: bool = False
    default: Any = None
    min: Number | None = None
    max: Number | None = None
    max_length: int | None = Field(None, ge=0)
    maxLength: int | None = Field(None, ge=0, description="Same as max_length")  # noqa: N815  # seed 004
    options: list[Any] | None = Field(None, description="select: the allowed values")
    to: str | None = Field(None, description="reference: the type or taxonomy referred to")
    help: str | None = None


class FieldInput(FieldSettings):
    """One field of a content type, as an item of a fields list."""

    name: FieldName


def _fields_form(value: Any) -> str:
    return "map" if isinstance(value, dict) else "list"


# A list of fields, or a {name: {...}} map as in _type.yaml: kept in the form it was sent, since
# the form is written back into the file.
Fields = Annotated[
    Annotated[list[FieldInput], Tag("list")]
    # Closed: a key that is not a field name is refused, not ignored (patternProperties alone would allow it).
    | Annotated[
        dict[FieldName, FieldSettings | None], Tag("map"), Field(json_schema_extra={"additionalProperties": False})
    ],
    Discriminator(_fields_form),
]


class ContentTypeInput(Shape):
    """A content type definition; on update only the keys sent change (`fields` replaces the list)."""

    # The name is a folder: check_type_name refuses a bad one (400), as it does for a path's name.
    name: str | None = Field(None, json_schema_extra={"pattern": TYPE_NAME}, description="On create; ignored on update")
    label: str | None = None
    description: str | None = None
    fields: Fields | None = Field(None, description="The fields: a list, or a {name: {type: ...}} map as in _type.yaml")
    title_field: str | None = None
    slug_field: str | None = None
    titleField: str | None = Field(None, description="Same as title_field")  # noqa: N815  # seed 004
    slugField: str | None = Field(None, description="Same as slug_field")  # noqa: N815  # seed 004
    pages: bool = Field(True, description="Whether the build gives each document a page")
    template: str | None = None
    icon: Any = None
    builtin: Any = Field(None, description="Ignored")


class NewContentType(ContentTypeInput):
    """A content type to create: its name is required."""

    name: str = Field(json_schema_extra={"pattern": TYPE_NAME}, description="The folder under content/")


class FieldDefinition(Shape):
    """A field of a content type as the API shows it (aliases resolved)."""

    name: str = Field(pattern=FIELD_NAME)
    type: Literal[tuple(sorted(FIELD_TYPES))]  # type: ignore[valid-type]
    label: str
    required: Literal[True] = True
    unique: Literal[True] = True
    default: Any = None
    min: Number | None = None
    max: Number | None = None
    max_length: int | None = Field(None, ge=0)
    to: Any = None
    options: list[Any] | None = None
    help: str | None = None


class ContentTypeInfo(Shape):
    """A content type with its fields, document count and endpoint."""

    model_config = {"title": "ContentType"}

    name: str = Field(pattern=TYPE_NAME)
    label: str
    description: str
    title_field: str
    slug_field: str
    pages: bool
    template: str | None
    builtin: bool
    fields: list[FieldDefinition]
    documents: int = Field(ge=0)
    endpoint: str


class DeleteQuery(Shape):
    force: Flag = Field(False, description="Delete its documents too")


def _type_dict(call: Call, ctype: ContentType) -> dict[str, Any]:
    data = ctype.as_dict()
    data["documents"] = sum(1 for d in call.services.index.docs.values() if d.type == ctype.name)
    data["endpoint"] = f"/api/v1/{ctype.name}" if ctype.name in ("posts", "pages") else f"/api/v1/content/{ctype.name}"
    return data


def _sent(body: ContentTypeInput) -> dict[str, Any]:
    """The keys a client sent (and only those: the rest of _type.yaml keeps its bytes)."""
    raw = body.model_dump(exclude_unset=True)
    raw.pop("name", None)
    raw.pop("builtin", None)  # shown by GET, so sent back: ignored
    return raw


@operation(
    "GET",
    "/api/v1/content-types",
    "listContentTypes",
    "List content types",
    tag=TAG,
    scope="read",
    ok=Answer(200, ContentTypeInfo, "Every type", many=True),
)
async def list_types(call: Call) -> Response:
    index = call.services.index
    names = sorted(set(index.types) | {d.type for d in index.docs.values()})
    data = [_type_dict(call, call.services.store.content_type(n)) for n in names]
    return json_response({"data": data, "pagination": {"total": len(data)}})


@operation(
    "POST",
    "/api/v1/content-types",
    "createContentType",
    "Create a content type (writes content/<name>/_type.yaml)",
    tag=TAG,
    scope="admin",
    body=NewContentType,
    ok=Answer(201, ContentTypeInfo, "The new type", headers=("Location",)),
    errors=(409,),
    example={"name": "events", "fields": [{"name": "starts", "type": "datetime", "required": True}]},
)
async def create_type(call: Call) -> Response:
    body: NewContentType = call.body
    name = check_type_name(body.name)
    raw = _sent(body)
    ctype = await run_in_threadpool(lambda: call.services.store.save_type(name, raw, creating=True))
    return json_response(
        {"data": _type_dict(call, ctype)}, 201, headers={"Location": f"/api/v1/content-types/{ctype.name}"}
    )


@operation(
    "GET",
    "/api/v1/content-types/{name}",
    "getContentType",
    "Get a content type",
    tag=TAG,
    scope="read",
    path_params=NAME,
    ok=Answer(200, ContentTypeInfo, "The type"),
)
async def get_type(call: Call) -> Response:
    return json_response({"data": _type_dict(call, call.services.store.content_type(call.path("name")))})


@operation(
    "PATCH",
    "/api/v1/content-types/{name}",
    "updateContentType",
    "Update a content type (merge; `fields` replaces the list)",
    tag=TAG,
    scope="admin",
    body=ContentTypeInput,
    path_params=NAME,
    ok=Answer(200, ContentTypeInfo, "The updated type"),
    description="For posts and pages, `fields` lists only the fields added to the built-in ones.",
    example={"label": "Events", "fields": {"starts": {"type": "datetime", "required": True}}},
)
async def update_type(call: Call) -> Response:
    name = call.path("name")
    current = call.services.store.content_type(name)
    raw = _sent(call.body)
    merged = {
        k: v
        for k, v in current.as_dict().items()
        if k in ("label", "description", "title_field", "slug_field", "pages", "template")
    }
    base = BUILTIN_TYPES.get(name)
    builtin_names = {f.name for f in base.fields} if base else set()
    merged["fields"] = [f.as_dict() for f in current.fields if not current.builtin or f.name not in builtin_names]
    merged.update(raw)
    try:  # the whole merged schema must be valid...
        content_type_from_dict(name, merged, base=base)
    except ValueError as exc:
        raise Invalid({"fields": [str(exc)]}) from None
    # ...but only the keys sent are written: the rest of _type.yaml keeps its bytes and comments
    ctype = await run_in_threadpool(lambda: call.services.store.save_type(name, raw, creating=False))
    return json_response({"data": _type_dict(call, ctype)})


@operation(
    "DELETE",
    "/api/v1/content-types/{name}",
    "deleteContentType",
    "Delete a content type's schema",
    tag=TAG,
    scope="admin",
    query=DeleteQuery,
    path_params=NAME,
    ok=Answer(204, None, "Deleted"),
    errors=(409,),
    description="409 for built-in types, and for types with documents unless force=true.",
)
async def delete_type(call: Call) -> Response:
    force = call.query.force
    await run_in_threadpool(lambda: call.services.store.delete_type(call.path("name"), force=force))
    return Response(status_code=204)


def routes() -> list[Route]:
    return routes_of(list_types, create_type, get_type, update_type, delete_type)
