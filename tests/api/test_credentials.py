"""Empty credential headers count as absent: an empty one beside a valid one is not refused."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from .conftest import assert_error


@pytest.fixture
def bare(app: Starlette) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


EMPTY_KEYS = [("X-API-Key", ""), ("X-API-Key", "   ")]
EMPTY_BEARERS = [("Authorization", "Bearer"), ("Authorization", "Bearer "), ("Authorization", "")]


@pytest.mark.parametrize(
    ("empty", "valid"),
    [(e, "X-API-Key") for e in EMPTY_BEARERS] + [(e, "Authorization") for e in EMPTY_KEYS],
    ids=lambda v: repr(v) if isinstance(v, tuple) else v,
)
def test_an_empty_header_beside_a_valid_one_is_ignored(
    bare: TestClient, tokens: dict[str, str], empty: tuple[str, str], valid: str
) -> None:
    token = tokens["read"]
    given = (valid, token if valid == "X-API-Key" else f"Bearer {token}")
    for headers in ([empty, given], [given, empty]):  # order must not matter
        r = bare.get("/api/v1/posts", headers=headers)
        assert r.status_code == 200, (headers, r.text)


def test_a_repeated_key_header_with_one_empty_copy_is_the_valid_one(bare: TestClient, tokens: dict[str, str]) -> None:
    r = bare.get("/api/v1/posts", headers=[("X-API-Key", ""), ("X-API-Key", tokens["read"])])
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "headers",
    [[("X-API-Key", "")], [("Authorization", "Bearer")], [("X-API-Key", " "), ("Authorization", "Bearer  ")]],
    ids=["empty key", "bearer without token", "both blank"],
)
def test_only_empty_headers_is_the_same_as_none(bare: TestClient, headers: list[tuple[str, str]]) -> None:
    absent = assert_error(bare.get("/api/v1/posts"), 401, "UNAUTHORIZED")
    empty = assert_error(bare.get("/api/v1/posts", headers=headers), 401, "UNAUTHORIZED")
    assert empty == absent  # "send an API key", not "invalid API key"


def test_a_wrong_key_is_still_refused_beside_an_empty_bearer(bare: TestClient) -> None:
    r = bare.get("/api/v1/posts", headers=[("X-API-Key", "cms_nope_nope"), ("Authorization", "Bearer")])
    assert_error(r, 401, "UNAUTHORIZED")
