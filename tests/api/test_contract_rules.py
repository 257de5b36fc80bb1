"""Rules the document publishes and the server applies, written once and checked from both sides.

Each test here failed before the rule had one declaration: the document allowed what the server
refused (a `sort` of any text, `type=` of another type on a typed list, both `image` and `file`),
or forbade what it accepted (an empty date, a random direction word in `sort`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cms.content.names import FIELD_NAME_PATTERN, TYPE_NAME_PATTERN, check_type_name, is_field_name
from cms.content.query.params import FIELDS_PATTERN, SORT_PATTERN, parse_query
from cms.errors import BadRequest

from .conftest import assert_error


def _spec(client: TestClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json()  # type: ignore[no-any-return]


def _query_schema(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    params = spec["paths"][path]["get"]["parameters"]
    return next(p["schema"] for p in params if p["name"] == name)  # type: ignore[no-any-return]


def _accepted(params: dict[str, Any]) -> bool:
    try:
        parse_query(params)
    except BadRequest:
        return False
    return True


# -- sort and fields: the published pattern is the parser's grammar --------------------------------


@settings(max_examples=300, deadline=None)
@given(st.from_regex(SORT_PATTERN, fullmatch=True))
def test_every_sort_the_document_allows_is_parsed(text: str) -> None:
    assert _accepted({"sort": text}), text


@settings(max_examples=300, deadline=None)
@given(st.from_regex(FIELDS_PATTERN, fullmatch=True))
def test_every_field_list_the_document_allows_is_parsed(text: str) -> None:
    assert _accepted({"fields": text}), text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ_0.:-+, é\t'{"), max_size=12))
def test_a_sort_is_parsed_exactly_when_the_document_allows_it(text: str) -> None:
    assert _accepted({"sort": text}) == bool(re.fullmatch(SORT_PATTERN, text)), text


@pytest.mark.parametrize("text", ["title:sideways", "--title", "é", "title\t", "data.", "data.x.", "+-title"])
def test_sorts_the_document_forbids_are_refused(text: str) -> None:
    assert not re.fullmatch(SORT_PATTERN, text)
    assert not _accepted({"sort": text})


@pytest.mark.parametrize("name", ["title", "_x", "a" * 64, "data"])
def test_field_names_are_one_rule(name: str) -> None:
    assert is_field_name(name) and re.fullmatch(FIELD_NAME_PATTERN, name)


@pytest.mark.parametrize("name", ["é", "1x", "a" * 65, "a-b", "", "x y"])
def test_what_is_not_a_field_name_is_refused_everywhere(name: str) -> None:
    assert not is_field_name(name) and not re.fullmatch(FIELD_NAME_PATTERN, name)


@pytest.mark.parametrize("name", ["con", "nul", "lpt1", "Posts", "-x", "a" * 65, "com¹"])
def test_the_type_name_pattern_refuses_what_the_server_refuses(name: str) -> None:
    assert not re.fullmatch(TYPE_NAME_PATTERN, name)
    with pytest.raises(BadRequest):
        check_type_name(name)


def test_the_published_type_patterns_are_the_servers(anon: TestClient) -> None:
    spec = _spec(anon)
    by_type = spec["paths"]["/api/v1/content/{type}"]["get"]["parameters"]
    assert next(p for p in by_type if p["name"] == "type")["schema"]["pattern"] == TYPE_NAME_PATTERN
    by_name = spec["paths"]["/api/v1/content-types/{name}"]["get"]["parameters"]
    assert next(p for p in by_name if p["name"] == "name")["schema"]["pattern"] == TYPE_NAME_PATTERN
    assert _query_schema(spec, "/api/v1/posts", "sort")["pattern"] == SORT_PATTERN
    assert _query_schema(spec, "/api/v1/posts/{ref}", "fields")["pattern"] == FIELDS_PATTERN


# -- the type of a typed list -------------------------------------------------------------------


def test_a_typed_list_refuses_another_type_and_says_its_own(reader: TestClient, anon: TestClient) -> None:
    assert reader.get("/api/v1/posts?type=posts").status_code == 200
    error = assert_error(reader.get("/api/v1/posts?type=pages"), 400, "BAD_REQUEST")
    assert "'posts'" in error["message"]
    assert_error(reader.get("/api/v1/posts?type="), 400, "BAD_REQUEST")
    assert_error(reader.get("/api/v1/content?type="), 400, "BAD_REQUEST")
    assert _query_schema(_spec(anon), "/api/v1/posts", "type") == {"const": "posts"}


# -- bodies ------------------------------------------------------------------------------------


def test_an_empty_date_is_refused_and_null_removes_one(writer: TestClient) -> None:
    created = writer.post(
        "/api/v1/posts", json={"title": "Dated", "content": "x", "expires_at": "2031-01-01T00:00:00Z"}
    )
    ref = created.json()["data"]["id"]
    error = assert_error(writer.patch(f"/api/v1/posts/{ref}", json={"expires_at": ""}), 422, "VALIDATION_ERROR")
    assert list(error["details"]) == ["expires_at"]
    removed = writer.patch(f"/api/v1/posts/{ref}", json={"expires_at": None})
    assert removed.status_code == 200 and removed.json()["data"]["expires_at"] is None


def test_a_body_key_that_is_not_a_field_name_is_published_as_refused(anon: TestClient, writer: TestClient) -> None:
    spec = _spec(anon)
    assert spec["components"]["schemas"]["PostsInput"]["propertyNames"] == {"pattern": FIELD_NAME_PATTERN}
    error = assert_error(
        writer.post("/api/v1/posts", json={"title": "T", "content": "", "é": 1}), 422, "VALIDATION_ERROR"
    )
    assert list(error["details"]) == ["é"]


def test_create_and_replace_publish_a_non_empty_title_and_a_string_content(anon: TestClient) -> None:
    spec = _spec(anon)
    for path, method in (("/api/v1/content/products", "post"), ("/api/v1/posts/{ref}", "put")):
        schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["title"]["minLength"] == 1
        assert schema["properties"]["content"]["type"] == "string"


# -- media -------------------------------------------------------------------------------------


def test_media_list_publishes_its_page_bounds_without_null(anon: TestClient, site: Any) -> None:
    schema = _query_schema(_spec(anon), "/api/v1/media", "per_page")
    assert schema == {**schema, "type": "integer", "minimum": 1, "maximum": site.defaults.max_per_page}
    assert "anyOf" not in schema and "default" not in schema


def test_if_match_is_published_as_entity_tags(anon: TestClient) -> None:
    params = _spec(anon)["paths"]["/api/v1/posts/{ref}"]["patch"]["parameters"]
    pattern = next(p for p in params if p["name"] == "If-Match")["schema"]["pattern"]
    for good in ('"sha256-abc"', "*", 'W/"x", "y"'):
        assert re.fullmatch(pattern, good)
    for bad in ("sha256-abc", '"a" "b"', "0"):
        assert not re.fullmatch(pattern, bad)
