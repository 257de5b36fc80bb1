"""Operations declared once (cms/api/operations.py): what each declaration gives, and that it cannot drift."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import Field
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.operations import Flag, Integer, Shape, declared_operations, parse_body, parse_query
from cms.errors import BadRequest, Invalid

from .conftest import assert_error


class Sample(Shape):
    name: str = Field(min_length=1, max_length=5)
    count: int = 1
    tags: list[str] = Field(default_factory=list, max_length=2)
    on: bool = False


class SampleQuery(Shape):
    nested: Flag = False
    page: Integer = Field(1, ge=1)


def _spec(client: TestClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json()  # type: ignore[no-any-return]


def test_every_declared_operation_is_in_the_spec_as_declared(app: Starlette, anon: TestClient) -> None:
    spec = _spec(anon)
    operations = declared_operations(app.routes)
    assert operations, "no operation is declared yet"
    for op in operations:
        described = spec["paths"][op.path][op.method.lower()]
        # `/content/{type}`: the declaration's `{Type}` reads AnyType there, and the type's name on
        # each type's own copy (listProducts); tests/api/test_openapi.py checks those copies.
        assert described["operationId"] == op.operation_id.replace("{Type}", "AnyType")
        assert str(op.ok.status) in described["responses"]
        successes = {op.ok.status, *(a.status for a in op.also)}
        documented = {int(s) for s in described["responses"] if s.isdigit()} - successes
        assert documented == set(op.implied_errors()), op.operation_id
        assert ("requestBody" in described) == (op.body is not None)


def test_every_declared_example_passes_the_validator_and_the_published_schema(app: Starlette, anon: TestClient) -> None:
    spec = _spec(anon)
    registry = {"components": spec["components"]}
    # Bodies of a model; a content type's documents take the example its fields give (docschema).
    examples = [op for op in declared_operations(app.routes) if isinstance(op.body, type)]
    assert examples and all(op.example is not None for op in examples), "every body needs an example"
    for op in examples:
        parse_body(op.body, op.example)  # type: ignore[arg-type]  # the runtime validator takes it
        body = spec["paths"][op.path][op.method.lower()]["requestBody"]["content"]["application/json"]
        assert body["example"] == op.example
        jsonschema.validate(op.example, {**body["schema"], **registry})  # and so does the published schema


def test_an_unknown_query_parameter_names_itself_and_the_accepted_ones() -> None:
    with pytest.raises(BadRequest) as info:
        parse_query(SampleQuery, {"nestd": "1"})
    assert info.value.details == {"parameter": "nestd", "accepted": ["nested", "page"]}


@pytest.mark.parametrize(("text", "value"), [("", True), ("on", True), ("YES", True), ("0", False), ("off", False)])
def test_query_flags_read_every_spelling_of_the_one_boolean_reader(text: str, value: bool) -> None:
    assert parse_query(SampleQuery, {"nested": text}).nested is value


def test_a_bad_query_value_is_a_400_naming_the_parameter() -> None:
    with pytest.raises(BadRequest) as info:
        parse_query(SampleQuery, {"page": "0"})
    assert info.value.message == "page must be at least 1"
    with pytest.raises(BadRequest) as info:
        parse_query(SampleQuery, {"nested": "maybe"})
    assert info.value.message == "nested must be true or false"


def test_a_body_gets_every_problem_at_once_in_the_projects_words() -> None:
    with pytest.raises(Invalid) as info:
        parse_body(Sample, {"name": "", "count": "3", "tags": ["a", "b", "c"], "on": "yes", "colour": "red"})
    assert info.value.details == {
        "name": ["must be at least 1 characters"],
        "count": ["must be an integer"],  # strict: a JSON string is not a number
        "tags": ["must have at most 2 items"],
        "on": ["must be true or false"],
        "colour": ["is not a known setting"],
    }


def test_a_problem_inside_a_list_says_where() -> None:
    with pytest.raises(Invalid) as info:
        parse_body(Sample, {"name": "x", "tags": ["a", 7]})
    assert info.value.details == {"tags": ["item 1 must be a string"]}


def test_a_declared_body_is_refused_through_http_with_the_422_envelope(admin: TestClient) -> None:
    error = assert_error(
        admin.post("/api/v1/api-keys", json={"name": "x", "with_secret": "yes"}), 422, "VALIDATION_ERROR"
    )
    assert error["details"] == {"with_secret": ["must be true or false"]}
    error = assert_error(
        admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["root"]}), 422, "VALIDATION_ERROR"
    )
    assert error["details"] == {"scopes": ["item 0 must be one of read, write, delete or admin"]}
