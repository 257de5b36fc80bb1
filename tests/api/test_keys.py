"""API keys: both credential styles, 401/403 answers, and the key management endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.auth import Keys

from .conftest import NOW, Clock, assert_error, client

KEYS = "/api/v1/api-keys"


def data(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()["data"]


def issue(admin: TestClient, **body: Any) -> dict[str, Any]:
    response = admin.post(KEYS, json={"name": "bot", "scopes": ["read"], **body})
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("bearer", [False, True], ids=["x-api-key", "bearer"])
def test_both_credential_styles_work(app: Starlette, tokens: dict[str, str], bearer: bool) -> None:
    assert client(app, tokens["read"], bearer=bearer).get("/api/v1/posts").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}, {"X-Api-Token": "cms_x_y"}],
    ids=["none", "basic", "empty-bearer", "other-header"],
)
def test_missing_key_is_401_with_www_authenticate(anon: TestClient, headers: dict[str, str]) -> None:
    response = anon.get("/api/v1/posts", headers=headers)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="cms"'


@pytest.mark.parametrize("token", ["nonsense", "cms_unknownid123_secret", "cms_", "cms_" + "x" * 300])
def test_unknown_key_is_401(anon: TestClient, token: str) -> None:
    response = anon.get("/api/v1/posts", headers={"X-API-Key": token})
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["message"] == "invalid API key" and "WWW-Authenticate" in response.headers


def test_wrong_secret_of_a_known_id_answers_like_an_unknown_key(anon: TestClient, tokens: dict[str, str]) -> None:
    key_id = tokens["read"].split("_")[1]
    wrong = anon.get("/api/v1/posts", headers={"X-API-Key": f"cms_{key_id}_not-the-secret"})
    unknown = anon.get("/api/v1/posts", headers={"X-API-Key": "cms_abcdefghijkm_not-the-secret"})
    assert wrong.json() == unknown.json()


def test_token_in_the_query_string_is_refused_by_default(anon: TestClient, tokens: dict[str, str]) -> None:
    assert_error(anon.get("/api/v1/posts", params={"api_token": tokens["admin"]}), 401, "UNAUTHORIZED")


def test_missing_scope_is_403(reader: TestClient, writer: TestClient) -> None:
    error = assert_error(reader.post("/api/v1/posts", json={"title": "T", "content": "C"}), 403, "FORBIDDEN")
    assert "write" in error["message"]
    assert_error(writer.get(KEYS), 403, "FORBIDDEN")


def test_disabled_key_is_401_key_disabled(admin: TestClient, app: Starlette) -> None:
    key = issue(admin)
    data(admin.post(f"{KEYS}/{key['id']}/disable"))
    response = client(app, key["key"]).get("/api/v1/posts")
    assert_error(response, 401, "KEY_DISABLED")
    assert "WWW-Authenticate" in response.headers
    assert data(admin.post(f"{KEYS}/{key['id']}/enable"))["enabled"] is True
    assert client(app, key["key"]).get("/api/v1/posts").status_code == 200


def test_expired_key_is_401_key_expired(admin: TestClient, app: Starlette, clock: Clock) -> None:
    key = issue(admin, expires_at=(NOW + timedelta(hours=1)).isoformat())
    assert key["expires_at"] == "2026-11-24T13:00:00Z"
    assert client(app, key["key"]).get("/api/v1/posts").status_code == 200
    clock.advance(hours=1)
    assert_error(client(app, key["key"]).get("/api/v1/posts"), 401, "KEY_EXPIRED")


def test_key_limited_to_types(admin: TestClient, app: Starlette) -> None:
    shop = client(app, issue(admin, types=["products"])["key"])
    assert shop.get("/api/v1/content/products").status_code == 200
    assert_error(shop.get("/api/v1/posts"), 403, "FORBIDDEN")
    assert_error(shop.get("/api/v1/content", params={"type": "posts"}), 403, "FORBIDDEN")


def test_key_with_secret_needs_both_parts(admin: TestClient, app: Starlette) -> None:
    key = issue(admin, with_secret=True)
    assert key["secret"].startswith("cmss_") and key["has_secret"] is True
    assert_error(client(app, key["key"]).get("/api/v1/posts"), 401, "UNAUTHORIZED")
    both = TestClient(app, headers={"X-API-Key": key["key"], "X-API-Secret": key["secret"]})
    assert both.get("/api/v1/posts").status_code == 200


# -- management --------------------------------------------------------------------------------


def test_create_key_shows_the_token_once(admin: TestClient, app: Starlette) -> None:
    response = admin.post(KEYS, json={"name": "deploy bot", "scopes": ["read", "write"]})
    assert response.status_code == 201
    key = response.json()["data"]
    assert response.headers["Location"] == f"{KEYS}/{key['id']}"
    assert key["key"].startswith(f"cms_{key['id']}_") and key["last4"] == key["key"][-4:]
    assert key["scopes"] == ["read", "write"] and "notice" in key
    assert (
        client(app, key["key"], bearer=True).post("/api/v1/posts", json={"title": "T", "content": "C"}).status_code
        == 201
    )
    assert key["key"] not in admin.get(KEYS).text
    assert key["key"] not in admin.get(f"{KEYS}/{key['id']}").text


def test_list_keys_never_shows_secrets(admin: TestClient, tokens: dict[str, str]) -> None:
    listed = data(admin.get(KEYS))
    assert {k["name"] for k in listed} == {"read key", "write key", "delete key", "admin key"}
    assert all(set(k) >= {"id", "name", "scopes", "last4", "enabled", "created_at", "expires_at"} for k in listed)
    text = admin.get(KEYS).text
    assert not any(token.split("_", 2)[2] in text for token in tokens.values())
    assert "digest" not in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": "read,sudo"}, "scopes"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "types": "posts"}, "types"),
        ({"name": "x", "with_secret": "yes"}, "with_secret"),
        ({"name": "x", "owner": "me"}, "owner"),
    ],
)
def test_create_key_with_bad_settings_is_422(admin: TestClient, body: dict[str, Any], field: str) -> None:
    count = len(data(admin.get(KEYS)))
    error = assert_error(admin.post(KEYS, json=body), 422, "VALIDATION_ERROR")
    assert field in error["details"]
    assert len(data(admin.get(KEYS))) == count


def test_the_published_key_input_says_which_names_and_scopes_are_refused(admin: TestClient) -> None:
    """What the schema allows is issued, what it does not is a 422: a blank name, no scope, a stray comma."""
    schema = admin.get("/api/v1/openapi.json").json()["components"]["schemas"]["ApiKeyInput"]["properties"]
    assert schema["name"]["pattern"] == r"\S"
    listed, text = schema["scopes"]["anyOf"]
    assert listed["minItems"] == 1 and text["pattern"].startswith("^")
    assert issue(admin, scopes=" read , write")["scopes"] == ["read", "write"]
    for body in ({"name": "  "}, {"name": "x", "scopes": ""}, {"name": "x", "scopes": "read,"}):
        assert_error(admin.post(KEYS, json=body), 422, "VALIDATION_ERROR")


def test_get_key(admin: TestClient) -> None:
    key = issue(admin)
    got = data(admin.get(f"{KEYS}/{key['id']}"))
    assert got["id"] == key["id"] and got["name"] == "bot" and "key" not in got
    assert_error(admin.get(f"{KEYS}/nosuchkey123"), 404, "NOT_FOUND")


def test_rotate_replaces_the_token(admin: TestClient, app: Starlette) -> None:
    key = issue(admin)
    rotated = data(admin.post(f"{KEYS}/{key['id']}/rotate"))
    assert rotated["id"] == key["id"] and rotated["key"] != key["key"] and rotated["scopes"] == ["read"]
    assert_error(client(app, key["key"]).get("/api/v1/posts"), 401, "UNAUTHORIZED")
    assert client(app, rotated["key"]).get("/api/v1/posts").status_code == 200


def test_delete_revokes_the_key(admin: TestClient, app: Starlette) -> None:
    key = issue(admin)
    assert admin.delete(f"{KEYS}/{key['id']}").status_code == 204
    assert_error(client(app, key["key"]).get("/api/v1/posts"), 401, "UNAUTHORIZED")
    assert_error(admin.get(f"{KEYS}/{key['id']}"), 404, "NOT_FOUND")
    assert_error(admin.delete(f"{KEYS}/{key['id']}"), 404, "NOT_FOUND")


@pytest.mark.parametrize("action", ["disable", "enable", "rotate"])
def test_actions_on_an_unknown_key_are_404(admin: TestClient, action: str) -> None:
    assert_error(admin.post(f"{KEYS}/nosuchkey123/{action}"), 404, "NOT_FOUND")


def test_status_describes_the_calling_key(app: Starlette, tokens: dict[str, str]) -> None:
    status = data(client(app, tokens["write"], bearer=True).get("/api/v1/api-key/status"))
    assert status["has_key"] is True and status["name"] == "write key" and status["scopes"] == ["write"]
    assert tokens["write"] not in str(status)


def test_status_without_a_key_is_401(anon: TestClient) -> None:
    assert_error(anon.get("/api/v1/api-key/status"), 401, "UNAUTHORIZED")


def test_last_used_at_is_recorded(app: Starlette, admin: TestClient, key_store: Keys, clock: Clock) -> None:
    key = issue(admin)
    assert data(admin.get(f"{KEYS}/{key['id']}"))["last_used_at"] is None
    client(app, key["key"]).get("/api/v1/posts")
    assert data(admin.get(f"{KEYS}/{key['id']}"))["last_used_at"] == "2026-11-24T12:00:00Z"


def test_admin_created_key_survives_in_the_state_store(admin: TestClient, key_store: Keys) -> None:
    key = issue(admin, scopes=["delete"])
    assert key_store.verify(key["key"]).scopes == frozenset({"delete"})


def test_health_and_settings_need_no_key(anon: TestClient) -> None:
    health = anon.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["data"]["status"] == "ok"
    settings = anon.get("/api/v1/settings").json()["data"]
    assert settings["title"] == "Cinder & Crema" and settings["per_page"] == 10
