"""Access control: credential styles, key lifecycle, expiry, secrets, rate limits, throttling, audit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cms.api.app import create_app
from cms.config import Site
from cms.content.index import Index
from tests.support import Clock

CONFIG = """
[site]
title = "Access"
timezone = "UTC"

[api]
rate_limit_per_minute = {per_minute}
rate_limit_per_day = {per_day}
allow_query_token = {query_token}
public_types = {public}
cors_origins = ["https://admin.example"]
"""

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POST = """---
id: 01JD3K5Z7Q8W9X0Y1Z2A3B4C5D
title: Open
date: 2025-01-01T10:00:00Z
---
Hello.
"""


@pytest.fixture
def build(make_site: Callable[..., Site]) -> Callable[..., tuple[TestClient, Clock]]:
    def make(
        *, per_minute: int = 1000, per_day: int = 100000, query_token: bool = False, public: str = "[]"
    ) -> tuple[TestClient, Clock]:
        site = make_site(
            {"content/posts/open.md": POST},
            config=CONFIG.format(
                per_minute=per_minute, per_day=per_day, query_token=str(query_token).lower(), public=public
            ),
        )
        clock = Clock(START)
        app = create_app(site, index=Index.load(site, background_search=False), clock=clock)
        return TestClient(app), clock

    return make


def _keys(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.services.keys  # type: ignore[attr-defined]


@pytest.mark.parametrize("style", ["x-api-key", "bearer", "bearer-lowercase"])
def test_credential_styles(build: Callable[..., tuple[TestClient, Clock]], style: str) -> None:
    client, _ = build()
    token = _keys(client).create("reader", ["read"]).token
    headers = {
        "x-api-key": {"X-API-Key": token},
        "bearer": {"Authorization": f"Bearer {token}"},
        "bearer-lowercase": {"authorization": f"bearer {token}"},
    }[style]
    assert client.get("/api/v1/posts", headers=headers).status_code == 200


def test_key_and_secret_pair(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    issued = _keys(client).create("pair", ["read"], with_secret=True)
    ok = client.get("/api/v1/posts", headers={"X-API-Key": issued.token, "X-API-Secret": issued.secret})
    assert ok.status_code == 200
    wrong = client.get("/api/v1/posts", headers={"X-API-Key": issued.token, "X-API-Secret": "cmss_wrong"})
    missing = client.get("/api/v1/posts", headers={"X-API-Key": issued.token})
    unknown = client.get("/api/v1/posts", headers={"X-API-Key": "cms_nosuchkeyid_x"})
    # A wrong secret gets exactly the answer an unknown key gets: nothing to learn from the difference.
    assert wrong.status_code == missing.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == missing.json()


def test_expiry_crossing_during_a_session(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, clock = build()
    token = _keys(client).create("short", ["read"], expires_at=clock.now + timedelta(seconds=2)).token
    assert client.get("/api/v1/posts", headers={"X-API-Key": token}).status_code == 200
    clock.now += timedelta(seconds=3)
    expired = client.get("/api/v1/posts", headers={"X-API-Key": token})
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "KEY_EXPIRED"


def test_disable_enable_and_rotate(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    admin = _keys(client).create("admin", ["admin"]).token
    other = client.post("/api/v1/api-keys", headers={"X-API-Key": admin}, json={"name": "bot", "scopes": ["read"]})
    assert other.status_code == 201
    key_id, token = other.json()["data"]["id"], other.json()["data"]["key"]
    h = {"X-API-Key": admin}
    assert client.post(f"/api/v1/api-keys/{key_id}/disable", headers=h).status_code == 200
    disabled = client.get("/api/v1/posts", headers={"X-API-Key": token})
    assert disabled.status_code == 401 and disabled.json()["error"]["code"] == "KEY_DISABLED"
    assert client.post(f"/api/v1/api-keys/{key_id}/enable", headers=h).status_code == 200
    assert client.get("/api/v1/posts", headers={"X-API-Key": token}).status_code == 200
    rotated = client.post(f"/api/v1/api-keys/{key_id}/rotate", headers=h).json()["data"]["key"]
    assert client.get("/api/v1/posts", headers={"X-API-Key": token}).status_code == 401  # the old one, at once
    assert client.get("/api/v1/posts", headers={"X-API-Key": rotated}).status_code == 200
    status = client.get("/api/v1/api-key/status", headers={"X-API-Key": rotated}).json()["data"]
    assert status["has_key"] is True and status["enabled"] is True and status["scopes"] == ["read"]
    listing = client.get("/api/v1/api-keys", headers=h).json()["data"]
    assert all("key" not in k and "secret" not in k for k in listing)


def test_type_restricted_key(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    token = _keys(client).create("pages only", ["read"], types=["pages"]).token
    assert client.get("/api/v1/pages", headers={"X-API-Key": token}).status_code == 200
    assert client.get("/api/v1/posts", headers={"X-API-Key": token}).status_code == 403


def test_api_token_refused_unless_enabled(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build(query_token=False)
    token = _keys(client).create("q", ["read", "write"]).token
    assert client.get(f"/api/v1/posts?api_token={token}").status_code == 401  # not a credential here
    body = client.post("/api/v1/posts", json={"api_token": token, "title": "x", "content": "y"})
    assert body.status_code == 401
    client2, _ = build(query_token=True)
    token2 = _keys(client2).create("q", ["read", "write"]).token
    created = client2.post("/api/v1/posts", json={"api_token": token2, "title": "Via body", "content": "y"})
    assert created.status_code == 201
    assert "api_token" not in json.dumps(created.json())
    assert client2.get(f"/api/v1/posts?api_token={token2}&per_page=1").status_code == 200


def test_anonymous_read_only_for_public_types(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build(public='["posts"]')
    assert client.get("/api/v1/posts").status_code == 200
    assert client.get("/api/v1/pages").status_code == 401
    assert client.post("/api/v1/posts", json={"title": "x", "content": "y"}).status_code == 401
    assert client.get("/api/v1/posts?status=draft").status_code == 403


def test_rate_limit_headers_and_retry_after(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build(per_minute=5)
    token = _keys(client).create("limited", ["read"]).token
    remaining = []
    for _ in range(5):
        r = client.get("/api/v1/posts", headers={"X-API-Key": token})
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "5"
        remaining.append(int(r.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]  # never increases inside a window
    refused = client.get("/api/v1/posts", headers={"X-API-Key": token})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    retry = int(refused.headers["retry-after"])
    reset = int(refused.headers["x-ratelimit-reset"])
    assert 1 <= retry <= 60
    assert reset % 60 == 0


def test_wrong_keys_are_throttled_per_address(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    statuses = [
        client.get("/api/v1/posts", headers={"X-API-Key": f"cms_guess{i:07d}_x"}).status_code for i in range(1000)
    ]
    assert 200 not in statuses
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}  # from the 21st failure in the minute on
    throttled = client.get("/api/v1/posts", headers={"X-API-Key": "cms_another_x"})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1


def test_guessing_from_an_address_does_not_cut_off_a_key_in_use_there(
    build: Callable[..., tuple[TestClient, Clock]],
) -> None:
    client, _ = build()
    working = _keys(client).create("working", ["read"]).token
    idle = _keys(client).create("idle", ["read"]).token
    assert client.get("/api/v1/posts", headers={"X-API-Key": working}).status_code == 200
    for i in range(20):  # the allowance (few requests: the working key's verification must stay < 1 s old)
        client.get("/api/v1/posts", headers={"X-API-Key": f"cms_guess{i:07d}_x"})
    assert client.get("/api/v1/posts", headers={"X-API-Key": "cms_guess9999999_x"}).status_code == 429
    assert client.get("/api/v1/posts", headers={"X-API-Key": working}).status_code == 200  # verified < 1 s ago
    assert client.get("/api/v1/posts", headers={"X-API-Key": idle}).status_code == 429  # would need verifying


def test_security_headers_and_cors(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    r = client.get("/api/v1/health")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    allowed = client.options(
        "/api/v1/posts", headers={"Origin": "https://admin.example", "Access-Control-Request-Method": "GET"}
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://admin.example"
    other = client.options(
        "/api/v1/posts", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert other.headers.get("access-control-allow-origin") is None


def test_long_query_string_is_refused(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    r = client.get("/api/v1/posts?search=" + "a" * 9000)
    assert r.status_code == 414 and r.json()["error"]["code"] == "URI_TOO_LONG"


def test_audit_log_records_writes(build: Callable[..., tuple[TestClient, Clock]]) -> None:
    client, _ = build()
    admin = _keys(client).create("auditor", ["admin"])
    h = {"X-API-Key": admin.token}
    created = client.post("/api/v1/posts", headers=h, json={"title": "Audited", "content": "x"})
    doc = created.json()["data"]["id"]
    client.post(f"/api/v1/posts/{doc}/publish", headers=h)
    client.post("/api/v1/api-keys", headers=h, json={"name": "new", "scopes": ["read"]})
    client.post("/api/v1/posts", headers={"X-API-Key": "cms_bad_x"}, json={"title": "x", "content": "y"})
    entries = client.get("/api/v1/audit", headers=h).json()["data"]
    actions = [(e["action"], e["result"], e["key_id"]) for e in entries]
    assert ("posts.create", 201, admin.key.id) in actions
    assert ("posts.publish", 200, admin.key.id) in actions
    assert ("api-keys.create", 201, admin.key.id) in actions
    assert ("posts.create", 401, None) in actions
    assert (
        client.get("/api/v1/audit", headers={"X-API-Key": _keys(client).create("r", ["read"]).token}).status_code == 403
    )


def test_no_secret_is_stored_or_logged(
    build: Callable[..., tuple[TestClient, Clock]], caplog: pytest.LogCaptureFixture
) -> None:
    """T16: after issuing keys and using them, no full token or secret is in the state store or logs."""
    client, _ = build()
    keys = _keys(client)
    issued = [keys.create(f"k{i}", ["admin"], with_secret=bool(i % 2)) for i in range(6)]
    with caplog.at_level("DEBUG"):
        for item in issued:
            headers = {"X-API-Key": item.token, **({"X-API-Secret": item.secret} if item.secret else {})}
            client.get("/api/v1/posts", headers=headers)
            client.post("/api/v1/posts", headers=headers, json={"title": "t", "content": "c"})
        rotated = keys.rotate(issued[0].key.id)
    secrets = [s for item in issued for s in (item.token, item.secret, item.token.split("_", 2)[2]) if s]
    secrets.append(rotated.token)
    state_dir = Path(client.app.state.services.site.state_dir)  # type: ignore[attr-defined]
    stored = b"".join(p.read_bytes() for p in state_dir.rglob("*") if p.is_file())
    logged = caplog.text
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret not in logged
