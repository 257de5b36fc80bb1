"""The field types of a content type's schema: one class per type, which checks a value, describes it
as JSON Schema and names the admin widget that edits it. Pure: no I/O.

`cms.content.model.validate` checks values with `check`; the OpenAPI document types them with
`json_schema`, so what the server accepts and what the spec says come from the same class
(lektor's `types/` pairs `value_from_raw` with `to_json` the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any, ClassVar

from cms.content.limits import MAX_LIST_ITEMS


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a content type's schema."""

    name: str
    type: str = "text"
    label: str = ""
    required: bool = False
    default: Any = None
    unique: bool = False
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    options: tuple[Any, ...] = ()
    to: str | None = None  # reference: the content type or taxonomy referred to
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "label": self.label or self.name}
        for key in ("required", "unique"):
            if getattr(self, key):
                out[key] = True
        for key in ("default", "min", "max", "max_length", "to"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.options:
            out["options"] = list(self.options)
        if self.help:
            out["help"] = self.help
        return out


def to_datetime(value: Any, tz: tzinfo) -> datetime | None:
    """A frontmatter date (date, datetime, ISO string) as an aware UTC datetime; naive means `tz`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time())
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 east of UTC, year 9999 west of it
        return None


def type_name(value: Any) -> str:
    """A value's type in the words of JSON (for messages)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "list",
    dict: "object",
    type(None): "null",
}


class FieldType:
    """A field type: how a present, non-null value is checked and described."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()  # names other CMSes use (seed 004 and Strapi spellings)
    widget: ClassVar[str]  # the admin form widget that edits a value

    def check(self, value: Any, field: Field) -> list[str]:
        """Messages for one present, non-null value; empty when valid."""
        return []

    def value_schema(self, field: Field) -> dict[str, Any]:
        """The JSON Schema of a present value, before `required`, null and the annotations."""
        return {}

    def example(self, field: Field) -> Any:
        """A value `check` accepts, for the API's examples (text: as long as the field allows)."""
        return "example"[: field.max_length or 7]

    def json_schema(self, field: Field, *, for_input: bool) -> dict[str, Any]:
        """The JSON Schema of the field's value: null allowed unless required; label, help, default.

        Input and output take the same values today (a date is a string either way); `for_input`
        is where a type would say otherwise."""
        schema = self.value_schema(field)
        if field.required:  # null, "" and [] count as missing
            if "string" in _types(schema):
                schema["minLength"] = 1
            if "array" in _types(schema):
                schema["minItems"] = 1
        else:
            schema = _nullable(schema)
        if field.label and field.label != field.name:
            schema["title"] = field.label
        notes = [field.help] if field.help else []
        if field.unique:
            notes.append("unique within the type")
        if field.required:
            notes.append("required")
        if self.name == "reference" and field.to:
            notes.append(f"refers to {field.to}")
        if notes:
            schema["description"] = "; ".join(notes)
        if field.default is not None and isinstance(field.default, str | int | float | bool):
            schema["default"] = field.default
        return schema


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type", [])
    return t if isinstance(t, list) else [t]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    t = schema.get("type")
    if t is None:
        return schema
    types = t if isinstance(t, list) else [t]
    return {**schema, "type": [*types, "null"]}


def _max_length(value: str, field: Field) -> list[str]:
    if field.max_length is not None and len(value) > field.max_length:
        return [f"must be at most {field.max_length} characters, got {len(value)}"]
    return []


def _string_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if field.max_length is not None:
        schema["maxLength"] = field.max_length
    return schema


class Text(FieldType):
    name = "text"
    aliases: ClassVar[tuple[str, ...]] = ("string", "textarea")
    widget = "text"

    def check(self, value: Any, field: Field) -> list[str]:
        if not isinstance(value, str):
            return [f"must be a string, got {type_name(value)}"]
        return _max_length(value, field)

    def value_schema(self, field: Field) -> dict[str, Any]:
        return _string_schema(field)


class Markdown(Text):
    name = "markdown"
    aliases = ("richText", "richtext")
    widget = "markdown"


class Image(Text):
    name = "image"
    aliases = ("media",)
    widget = "image"


class Reference(FieldType):
    """One slug or id, or several (several authors, several related documents)."""

    name = "reference"
    aliases = ("relation",)
    widget = "reference"

    def check(self, value: Any, field: Field) -> list[str]:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return []
        if not isinstance(value, str):
            return [f"must be a string, got {type_name(value)}"]
        return _max_length(value, field)

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["string", "array"], "items": {"type": "string"}}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
        return schema


class Number(FieldType):
    name = "number"
    aliases = ("float",)
    widget = "number"

    def example(self, field: Field) -> Any:
        return field.min if field.min is not None else 0

    def check(self, value: Any, field: Field) -> list[str]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"must be a number, got {type_name(value)}"]
        if self.name == "integer" and not isinstance(value, int) and not float(value).is_integer():
            return ["must be an integer"]
        if isinstance(value, float) and not math.isfinite(value):
            return ["must be a finite number"]
        out = []
        if field.min is not None and value < field.min:
            out.append(f"must be >= {field.min}")
        if field.max is not None and value > field.max:
            out.append(f"must be <= {field.max}")
        return out

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.name}
        if field.min is not None:
            schema["minimum"] = field.min
        if field.max is not None:
            schema["maximum"] = field.max
        return schema


class Integer(Number):
    name = "integer"
    aliases = ("int",)

    def example(self, field: Field) -> Any:
        return int(field.min) if field.min is not None else 0


class Boolean(FieldType):
    name = "boolean"
    aliases = ("bool",)
    widget = "checkbox"

    def example(self, field: Field) -> Any:
        return True

    def check(self, value: Any, field: Field) -> list[str]:
        return [] if isinstance(value, bool) else [f"must be true or false, got {type_name(value)}"]

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "boolean"}


class Date(FieldType):
    name = "date"
    widget = "date"

    def example(self, field: Field) -> Any:
        return "2026-01-01"

    _format = "date"

    def check(self, value: Any, field: Field) -> list[str]:
        if isinstance(value, date):
            return []
        if isinstance(value, str) and to_datetime(value, UTC) is not None:
            return []
        return [f"must be an ISO 8601 {self.name}, got {value!r}"[:200]]

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "format": self._format}


class DateTime(Date):
    name = "datetime"
    widget = "datetime"

    def example(self, field: Field) -> Any:
        return "2026-01-01T09:00:00Z"

    _format = "date-time"


class Select(FieldType):
    name = "select"
    aliases = ("enum",)
    widget = "select"

    def example(self, field: Field) -> Any:
        return field.options[0] if field.options else None

    def check(self, value: Any, field: Field) -> list[str]:
        return [] if value in field.options else [f"must be one of {', '.join(map(str, field.options))}"]

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"enum": list(field.options)} if field.options else {"not": {}, "description": "no options declared"}


class List(FieldType):
    """A list of strings (steps, old URLs); `json` holds anything else."""

    name = "list"
    aliases: ClassVar[tuple[str, ...]] = ("array",)
    widget = "list"

    def example(self, field: Field) -> Any:
        return ["example"]

    def check(self, value: Any, field: Field) -> list[str]:
        if not isinstance(value, list):
            return [f"must be a list, got {type_name(value)}"]
        if not all(isinstance(v, str) for v in value):
            return ["must be a list of strings"]
        most = MAX_LIST_ITEMS if field.max_length is None else min(field.max_length, MAX_LIST_ITEMS)
        if len(value) > most:
            return [f"must have at most {most} items"]
        return []

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        if field.max_length is not None:
            schema["maxItems"] = field.max_length
        return schema


class Tags(List):
    """A list of strings, or one comma-separated string as hand-written frontmatter has it."""

    name = "tags"
    aliases = ()
    widget = "tags"

    def check(self, value: Any, field: Field) -> list[str]:
        return [] if isinstance(value, str) else super().check(value, field)

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {**super().value_schema(field), "type": ["array", "string"]}


class Json(FieldType):
    """Anything YAML can hold."""

    name = "json"
    aliases = ("object",)
    widget = "json"

    def example(self, field: Field) -> Any:
        return {}


# In the order docs/content-format.md lists them.
FIELD_TYPE_CLASSES: dict[str, FieldType] = {
    t.name: t
    for t in (
        Text(),
        Markdown(),
        Number(),
        Integer(),
        Boolean(),
        Date(),
        DateTime(),
        Select(),
        Tags(),
        Reference(),
        Image(),
        Json(),
        List(),
    )
}
FIELD_TYPES = frozenset(FIELD_TYPE_CLASSES)
FIELD_TYPE_ALIASES = {alias: t.name for t in FIELD_TYPE_CLASSES.values() for alias in t.aliases}
