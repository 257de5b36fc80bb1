"""Each field type's `check` and `json_schema` agree: a value passes the check exactly when it is valid
against the schema the OpenAPI document publishes for it (the list drift was one that did not)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from cms.content.fieldtypes import FIELD_TYPE_ALIASES, FIELD_TYPE_CLASSES, Field

SAMPLES: list[Any] = [
    "x",
    "",
    "a,b",
    "2026-01-02",
    5,
    2.0,
    2.5,
    -3,
    True,
    [],
    ["a", "b"],
    ["a", 1],
    [1, {"a": 1}],
    [["a"]],
    {"a": 1},
]


def _fields(type_name: str) -> list[Field]:
    options = ("a", "b", 5) if type_name == "select" else ()
    return [
        Field("f", type_name, options=options),
        Field("f", type_name, options=options, min=0, max=4, max_length=1),
    ]


@pytest.mark.parametrize("type_name", sorted(FIELD_TYPE_CLASSES))
def test_check_and_json_schema_accept_the_same_values(type_name: str) -> None:
    ftype = FIELD_TYPE_CLASSES[type_name]
    for field in _fields(type_name):
        validator = Draft202012Validator(ftype.json_schema(field, for_input=True))
        for value in SAMPLES:
            if type_name in ("date", "datetime") and isinstance(value, str):
                continue  # `format` is an annotation in JSON Schema 2020-12; the check parses the string
            accepted = not ftype.check(value, field)
            assert accepted == validator.is_valid(value), (field, value, ftype.check(value, field))


def test_a_list_field_holds_strings() -> None:
    """docs/content-format.md: a `list` is a list of strings (`json` holds anything else), as the spec says."""
    lst = FIELD_TYPE_CLASSES["list"]
    assert lst.check([1, {"a": 1}], Field("l", "list")) == ["must be a list of strings"]
    assert lst.json_schema(Field("l", "list"), for_input=True)["items"] == {"type": "string"}


def test_every_type_names_its_widget_and_every_alias_a_type() -> None:
    assert all(t.widget for t in FIELD_TYPE_CLASSES.values())
    assert set(FIELD_TYPE_ALIASES.values()) <= set(FIELD_TYPE_CLASSES)
    assert not set(FIELD_TYPE_ALIASES) & set(FIELD_TYPE_CLASSES)
