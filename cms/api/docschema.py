"""The data-driven shapes of documents: their bodies, answers and list parameters, per content type.

A content type is data (`_type.yaml`), so its documents' shapes cannot be pydantic models fixed at
import time. These objects stand in for models in the declarations of cms/api/documents.py: the
route reads a document body as JSON and the store checks it against the type; the OpenAPI document
asks them for the schemas of one type (or of any type, for `/content/{type}`), derived from the
same registries the store and the serializer use: the document fields (cms/content/docfields.py),
the field types (cms/content/fieldtypes.py), the limits and the query grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from cms.content.docfields import DOC_FIELDS
from cms.content.fieldtypes import FIELD_TYPE_CLASSES
from cms.content.limits import MAX_ITEM_CHARS, MAX_LIST_ITEMS, MAX_TITLE_CHARS
from cms.content.model import BASE_KEYS, ContentType, Field, Status
from cms.content.names import FIELD_NAME_PATTERN, FIELD_PATH, TYPE_NAME_PATTERN
from cms.content.query import OPERATORS, PARAMS
from cms.content.query.params import FIELDS_PATTERN, SORT_PATTERN
from cms.content.store import STATUS_INPUTS

from .media import LocalizedImage
from .operations import Schemas, SpecContext

TYPE_NAME = TYPE_NAME_PATTERN  # cms.content.names.check_type_name, device names refused too
_BOOL = {"type": "boolean"}
_TEXT = {"type": "string"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_NULLABLE_TEXT = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def envelope(data: dict[str, Any], pagination: str | None = None) -> dict[str, Any]:
    """`{"data": ...}` (and `pagination` for a list): the answer around every resource."""
    props = {"data": data}
    if pagination:
        props["pagination"] = ref(pagination)
    return {"type": "object", "required": list(props), "properties": props, "additionalProperties": False}


# -- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentAnswer:
    """A document of the type as the serializer writes it; `selectable`: or the fields chosen with
    `fields=`; `written`: with `localized` beside it (localize_images on a write)."""

    read_by_handler: ClassVar[bool] = False

    selectable: bool = False
    written: bool = False

    def answer(self, spec: SpecContext, type_name: str | None, many: bool) -> dict[str, Any]:
        name = components(spec, type_name)
        data = {"anyOf": [ref(name), ref(f"{name}Selection")]} if self.selectable else ref(name)
        if many:
            return {"application/json": {"schema": envelope({"type": "array", "items": data}, "Pagination")}}
        out = envelope(data)
        if self.written:
            out["properties"]["localized"] = {
                "type": "array",
                "items": Schemas(spec.components).ref(LocalizedImage),
                "description": "With localize_images=true: what became of each remote image of the content",
            }
        return {"application/json": {"schema": out}}

    def request_body(self, spec: SpecContext, type_name: str | None) -> dict[str, Any]:
        raise TypeError("an answer shape describes no request body")


@dataclass(frozen=True)
class DocumentBody:
    """A document's values on create, replace (PUT) or update (PATCH, a merge)."""

    kind: Literal["create", "replace", "update"]
    read_by_handler: ClassVar[bool] = False

    def request_body(self, spec: SpecContext, type_name: str | None) -> dict[str, Any]:
        name = components(spec, type_name)
        if self.kind == "update":
            return {"application/json": {"schema": ref(f"{name}Input")}}
        ctype = _ctype(spec, type_name)
        builtin = ctype is None or ctype.builtin
        # The input schema, narrowed: one object, not an allOf (client generators cannot merge a
        # nullable property with a narrower one, and drop the operation).
        schema = input_schema(ctype)
        props = schema["properties"]
        props["title"] = {**props["title"], "type": "string", "minLength": 1}
        schema["required"] = ["title", "content"] if builtin or self.kind == "replace" else ["title"]
        props["content"] = {**props["content"], "type": "string"}  # null: only a PATCH's "unchanged"
        fields = [f for f in (ctype.fields if ctype else ()) if f.required and f.name not in BASE_KEYS]
        # Schema defaults fill fields left out of a create; a replace must give every required field.
        needed = [f.name for f in fields if self.kind == "replace" or f.default is None]
        if needed:
            schema["required"].append("data")
            props["data"] = {**props["data"], "required": needed}
        out: dict[str, Any] = {"schema": schema}
        if ctype is not None and self.kind == "create":
            out["example"] = example_body(ctype)
        return {"application/json": out}

    def answer(self, spec: SpecContext, type_name: str | None, many: bool) -> dict[str, Any]:
        raise TypeError("a request body is not an answer")


def _ctype(spec: SpecContext, type_name: str | None) -> ContentType | None:
    return None if type_name is None else spec.index.types.get(type_name, ContentType(type_name))


def components(spec: SpecContext, type_name: str | None) -> str:
    """Add the type's three schemas once (document, field selection, input); their name prefix."""
    name = spec.prefix(type_name)
    if f"{name}Input" not in spec.components:
        ctype = _ctype(spec, type_name)
        full, partial = document_schemas(ctype)
        spec.components[name] = full
        spec.components[f"{name}Selection"] = partial
        spec.components[f"{name}Input"] = input_schema(ctype)
    return name


def example_body(ctype: ContentType) -> dict[str, Any]:
    """A create body the type accepts: its required fields with an example value of their type."""
    data = {
        f.name: FIELD_TYPE_CLASSES[f.type].example(f) for f in ctype.fields if f.name not in BASE_KEYS and f.required
    }
    body: dict[str, Any] = {"title": f"Example {ctype.name}", "content": "Hello *world*.", "status": "draft"}
    if data:
        body["data"] = data
    return body


# -- schemas -----------------------------------------------------------------------------------


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
    if for_input:
        schema["propertyNames"] = {"pattern": FIELD_NAME_PATTERN}
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


def input_schema(ctype: ContentType | None) -> dict[str, Any]:
    """The values a write may send: the base fields (with the type's limits) and `data`."""

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
    builtin = ctype is None or ctype.builtin
    title = base("title", {"type": "string", "minLength": 1} if builtin else {"type": ["string", "null"]})
    title["maxLength"] = min(title.get("maxLength", MAX_TITLE_CHARS), MAX_TITLE_CHARS)
    props: dict[str, Any] = {
        "title": {**title, "description": "Required on create and replace"},
        "content": {"type": ["string", "null"], "description": "Markdown body (null on PATCH: unchanged)"},
        "slug": {
            "type": ["string", "null"],
            "format": "slug",  # cms.content.names.check_slug: lower case, NFC, no dot segments
            "maxLength": 200,
            "description": "Lower-case letters, digits and '-'; from the title when absent; a new one renames",
        },
        "excerpt": base("summary", {**_NULLABLE_TEXT, "description": "Summary (written as `summary`)"}),
        "status": {"enum": list(STATUS_INPUTS), "description": "scheduled needs a future published_at"},
        "published_at": {**date_time, "description": "Publication moment (written as `date`)"},
        "expires_at": {**date_time, "description": "After this moment the document is expired"},
        "tags": {**strings, "description": "Tag slugs (list or comma-separated)"},
        "categories": {**strings, "description": "Category slugs; must exist when the site has category files"},
        "author": {**strings, "description": "Author slug(s); must exist when the site has author files"},
        "featured_image": {**_NULLABLE_TEXT, "description": "Path of a file under uploads/"},
        "seo_title": base("seo_title", _NULLABLE_TEXT),
        "seo_description": base("seo_description", _NULLABLE_TEXT),
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
        "propertyNames": {"pattern": FIELD_NAME_PATTERN},
        "description": (
            f"Values of {label}. Also accepted: the spellings date/summary/category/image/meta_title..., "
            "read-only fields sent back from a GET (ignored)"
            + (", and any other frontmatter key" if builtin else ", and the fields of `data` at the top level")
            + "."
        ),
        "properties": props,
    }


def document_schemas(ctype: ContentType | None) -> tuple[dict[str, Any], dict[str, Any]]:
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


# -- the list's query grammar ------------------------------------------------------------------

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
    "order_by": (
        {"type": "string", "pattern": f"^(?:{FIELD_PATH})?$"},  # empty: no order_by, as the parser reads it
        "Sort by this field first; descending unless order=asc",
    ),
    "order": ({"enum": ["asc", "desc"]}, "Direction for order_by; alone it sorts by published_at"),
    "sort": (
        {"type": "string", "pattern": SORT_PATTERN},
        "Comma-separated sort fields, `-field` or `field:desc` descending",
    ),
    "filters": (
        {
            "type": "object",
            "propertyNames": {"pattern": f"^{FIELD_PATH}$"},
            "additionalProperties": {"type": "string"},
        },
        "Field filters in bracket form: `filters[field]=value` ($eq), `filters[field][$op]=value`, "
        f"`filters[$or][0][field][$op]=value`; operators: {', '.join(OPERATORS)}",
    ),
    "fields": (
        {"type": "string", "pattern": FIELDS_PATTERN},
        "Comma-separated fields to return (`-name` leaves one out); `html` adds rendered HTML",
    ),
    "exclude": (_TEXT, "Comma-separated ids or hashes to leave out"),
    "random": (_BOOL, "Shuffle the matching documents"),
    "seed": ({"type": "integer"}, "Seed for random, so a shuffled list can be paged"),
    "lang": (_TEXT, "Only this language (`all`: every language); default: the site language"),
    "draft": (_BOOL, "List every status but trash (when status is not given)"),
}
RENDER = ({"enum": ["html"]}, "`html` adds each document's rendered HTML as `html`")


def query_param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema, **extra}


class ListQuery:
    """The list grammar of cms/content/query (filters, sort, search...), plus `render` and one
    parameter per taxonomy of the site; the list handler parses it after its answer cache."""

    def parameters(self, spec: SpecContext, type_name: str | None) -> list[dict[str, Any]]:
        out = []
        for name in PARAMS:
            schema, text = QUERY_SCHEMAS[name]
            extra: dict[str, Any] = {}
            if name in ("per_page", "limit"):
                schema = {**schema, "maximum": spec.site.defaults.max_per_page}
            if name == "type" and type_name is not None:
                schema = {"const": type_name}  # set by the path: another type is refused
            if name == "filters":
                extra = {"style": "deepObject", "explode": True}
            elif schema.get("type") == "array":
                extra = {"style": "form", "explode": True}
            out.append(query_param(name, schema, text, **extra))
        out.append(query_param("render", *RENDER))
        for taxonomy in spec.site.taxonomies:
            out.append(query_param(taxonomy, _TEXT, f"Term slug(s) of the {taxonomy} taxonomy, comma-separated"))
        return out


LIST_QUERY = ListQuery()
ONE = DocumentAnswer(selectable=True)
WRITTEN = DocumentAnswer(written=True)
DOCUMENT = DocumentAnswer()


def live_example(spec: SpecContext, type_name: str | None) -> str | None:
    """A published document's slug, as a path parameter's example (drafts stay unnamed)."""
    if type_name is None:
        return None
    for doc in spec.index.docs.values():
        if doc.type == type_name and doc.is_live(spec.now):
            return doc.slug
    return None
