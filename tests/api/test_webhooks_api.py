"""The webhooks API: admin-only CRUD, validation, seed 004 aliases, content-type filters, SSRF
refusals, seed 000's list/trigger, test deliveries and the delivery log, config-declared
subscriptions, and the outbox row being durable before a write returns (T20, in-process)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as Verifier
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bench.webhooks import Hit, Receiver, Reply
from cms.api.app import create_app
from cms.config import NetworkSection, Site
from cms.content.index import Index
from cms.events.webhooks import Deliverer, Webhooks
from cms.state import State
from tests.api.conftest import Clock, assert_error, client, unlimited, with_upload
from tests.support import WAIT_TIMEOUT_S, wait_until

HOOKS = "/api/v1/webhooks"


def local(site: Site, **delivery: Any) -> Site:
    """Receivers on 127.0.0.1 allowed, retries a thousand times faster, no jitter."""
    return dataclasses.replace(
        site,
        network=NetworkSection(allow_private_addresses=True),
        delivery=dataclasses.replace(site.delivery, time_scale=0.001, jitter=0.0, **delivery),
    )


@pytest.fixture
def site(demo_site: Site) -> Site:  # overrides tests/api/conftest.py's: local receivers allowed
    return local(unlimited(with_upload(demo_site)))


class RunningClock(Clock):
    """DEMO_NOW when the test starts, then moving with real time: the demo's statuses hold, and retries,
    which the outbox schedules on the app's clock, come due."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return self.now + timedelta(seconds=time.monotonic() - self.started)


@pytest.fixture
def clock() -> Clock:  # overrides tests/api/conftest.py's fixed clock
    return RunningClock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hooks_of(app: Starlette) -> Webhooks:
    hooks: Webhooks = app.state.services.webhooks
    return hooks


@contextmanager
def delivering(app: Starlette) -> Iterator[Deliverer]:
    deliverer = Deliverer(hooks_of(app))
    deliverer.start()
    try:
        yield deliverer
    finally:
        deliverer.stop()


def outbox(app: Starlette, hook_id: str) -> list[Any]:
    return hooks_of(app).state.query("SELECT * FROM outbox WHERE webhook_id = ? ORDER BY id", (hook_id,))


def make_hook(admin: TestClient, url: str, **values: Any) -> dict[str, Any]:
    response = admin.post(HOOKS, json={"name": "hook", "url": url, **values})
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


CONTROL = "?control"  # the query string of the positive control's subscription


def prove_running(admin: TestClient, app: Starlette, receiver: Receiver) -> None:
    """The positive control of a quiet period: a test delivery to a new subscription arrives.

    The delivery loop claims due rows oldest first, so once this newer row was sent, any older row the
    quiet period was checking for was claimed and sent by then too: a stalled loop cannot make the
    negative check pass. The control's subscription wants no content event, and is answered 200."""
    answer = receiver.respond
    receiver.respond = lambda hit: 200 if hit.path.endswith(CONTROL) else answer(hit)
    control = make_hook(admin, receiver.url + CONTROL, events=["webhook.test"])
    queued = admin.post(f"{HOOKS}/{control['id']}/test")
    assert queued.status_code == 202, queued.text
    event_id = queued.json()["data"]["event_id"]
    sent = receiver.wait_for(lambda hits: any(h.headers.get("webhook-id") == event_id for h in hits), WAIT_TIMEOUT_S)
    assert sent, "the delivery loop sent nothing: the quiet period proved nothing"
    state = hooks_of(app).state
    wait_until(lambda: not state.query("SELECT id FROM outbox WHERE status = 'sending'"), message="a send never ended")
    receiver.respond = answer


def uncontrolled(receiver: Receiver) -> list[Hit]:
    """What the receiver got, without the positive control's delivery."""
    return [h for h in receiver.snapshot() if not h.path.endswith(CONTROL)]


# -- CRUD and scopes -----------------------------------------------------------------------------


def test_crud_with_the_admin_scope(admin: TestClient, receiver: Receiver) -> None:
    created = admin.post(
        HOOKS, json={"name": "Deploy", "url": receiver.url, "events": ["post.published"], "content_types": ["posts"]}
    )
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert created.headers["location"] == f"{HOOKS}/{data['id']}"
    assert data["secret"].startswith("whsec_") and "once" in data["notice"]
    assert data["events"] == ["post.published"] and data["content_types"] == ["posts"] and data["enabled"] is True
    hook_id = data["id"]

    got = admin.get(f"{HOOKS}/{hook_id}")
    assert got.status_code == 200
    assert "secret" not in got.json()["data"]  # shown once only
    assert data["secret"] not in got.text and data["secret"][6:-4] not in got.text
    listed = admin.get(HOOKS).json()
    assert [h["id"] for h in listed["data"]] == [hook_id] and listed["pagination"]["total"] == 1
    assert data["secret"] not in admin.get(HOOKS).text

    patched = admin.patch(f"{HOOKS}/{hook_id}", json={"name": "Renamed", "events": ["post.*"], "enabled": False})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"]["name"], patched.json()["data"]["events"]) == ("Renamed", ["post.*"])
    assert patched.json()["data"]["enabled"] is False
    assert admin.delete(f"{HOOKS}/{hook_id}").status_code == 204
    assert_error(admin.get(f"{HOOKS}/{hook_id}"), 404, "NOT_FOUND")
    assert_error(admin.patch(f"{HOOKS}/{hook_id}", json={"name": "x"}), 404, "NOT_FOUND")
    assert_error(admin.delete(f"{HOOKS}/{hook_id}"), 404, "NOT_FOUND")


@pytest.mark.parametrize("who", ["reader", "writer", "deleter", "anon"])
def test_every_webhook_route_needs_the_admin_scope(
    who: str, request: pytest.FixtureRequest, admin: TestClient, receiver: Receiver
) -> None:
    hook_id = make_hook(admin, receiver.url)["id"]
    other: TestClient = request.getfixturevalue(who)
    expected = 401 if who == "anon" else 403
    calls = [
        ("GET", HOOKS, None),
        ("POST", HOOKS, {"name": "x", "url": receiver.url}),
        ("GET", f"{HOOKS}/{hook_id}", None),
        ("PATCH", f"{HOOKS}/{hook_id}", {"name": "y"}),
        ("DELETE", f"{HOOKS}/{hook_id}", None),
        ("POST", f"{HOOKS}/{hook_id}/test", None),
        ("GET", f"{HOOKS}/{hook_id}/deliveries", None),
        ("POST", f"{HOOKS}/{hook_id}/deliveries/1/redeliver", None),
        ("GET", "/api/v1/webhook/list", None),
        ("POST", "/api/v1/webhook/trigger", {"event": "post.published", "payload": {}}),
    ]
    for method, path, body in calls:
        response = other.request(method, path, json=body)
        assert response.status_code == expected, (method, path, response.text)
    assert [h["id"] for h in admin.get(HOOKS).json()["data"]] == [hook_id]  # nothing changed
    assert receiver.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "url": "http://127.0.0.1:9/", "events": ["post.exploded"]}, "events"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "events": ["entry.publish", "nope"]}, "events"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "events": "post.published"}, "events"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "events": []}, "events"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "events": [1]}, "events"),
        ({"name": "x", "events": ["*"]}, "url"),
        ({"name": "x", "url": 5}, "url"),
        ({"url": "http://127.0.0.1:9/"}, "name"),
        ({"name": "  ", "url": "http://127.0.0.1:9/"}, "name"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "secret": "too-short"}, "secret"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "secret": "whsec_%%%%not-base64%%%%"}, "secret"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "secret": 1234567890123456789}, "secret"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "surprise": True}, "surprise"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "content_types": "posts"}, "content_types"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "contentTypes": [1]}, "content_types"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "enabled": "yes"}, "enabled"),
    ],
)
def test_invalid_subscriptions_are_422(admin: TestClient, body: dict[str, Any], field: str) -> None:
    error = assert_error(admin.post(HOOKS, json=body), 422, "VALIDATION_ERROR")
    assert field in error["details"], error
    assert admin.get(HOOKS).json()["data"] == []


def test_invalid_updates_are_422_and_change_nothing(admin: TestClient, receiver: Receiver) -> None:
    hook = make_hook(admin, receiver.url, events=["post.published"])
    for body, field in [
        ({"events": ["bad.event"]}, "events"),
        ({"events": "post.*"}, "events"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"name": ""}, "name"),
        ({"enabled": 1}, "enabled"),
        ({"color": "red"}, "color"),
    ]:
        error = assert_error(admin.patch(f"{HOOKS}/{hook['id']}", json=body), 422, "VALIDATION_ERROR")
        assert field in error["details"], (body, error)
    after = admin.get(f"{HOOKS}/{hook['id']}").json()["data"]
    assert {k: after[k] for k in ("name", "url", "events", "enabled")} == {
        k: hook[k] for k in ("name", "url", "events", "enabled")
    }
    assert_error(admin.post(HOOKS, json=[{"name": "x"}]), 400, "BAD_REQUEST")
    assert_error(admin.post(HOOKS, content=b"{", headers={"content-type": "application/json"}), 400, "BAD_REQUEST")


# -- what a subscription receives ----------------------------------------------------------------


def test_seed_004_content_types_and_the_entry_publish_alias(
    app: Starlette, admin: TestClient, writer: TestClient
) -> None:
    publish = make_hook(admin, "http://127.0.0.1:9/publish", events=["entry.publish"])
    products = make_hook(admin, "http://127.0.0.1:9/products", events=["*"], contentTypes=["products"])
    assert products["content_types"] == ["products"]

    draft = writer.post("/api/v1/posts", json={"title": "Draft", "content": "x"}).json()["data"]
    assert writer.post(f"/api/v1/posts/{draft['id']}/publish").status_code == 200
    product = writer.post(
        "/api/v1/content/products",
        json={"title": "Grinder X", "content": "", "price": 99, "sku": "GX-1", "status": "published"},
    )
    assert product.status_code == 201, product.text

    def names(hook: dict[str, Any]) -> list[str]:
        return [r["event_name"] for r in outbox(app, hook["id"])]

    assert names(publish) == ["post.published", "entry.published"]
    assert names(products) == ["entry.created", "entry.published"]
    for row in outbox(app, products["id"]):
        assert json.loads(row["body"])["entry"]["type"] == "products"


def test_the_outbox_row_is_committed_before_the_write_returns(
    app: Starlette, admin: TestClient, writer: TestClient, receiver: Receiver
) -> None:
    hook = make_hook(admin, receiver.url, events=["post.*"])
    secret = hook["secret"]
    created = writer.post("/api/v1/posts", json={"title": "Durable", "content": "x", "status": "published"})
    assert created.status_code == 201
    # No deliverer runs: the rows are there, committed, the moment the response is back.
    fresh = State(hooks_of(app).site.state_dir)  # another connection sees only committed data
    try:
        stored = fresh.query("SELECT event_name, status FROM outbox WHERE webhook_id = ? ORDER BY id", (hook["id"],))
        assert [(r["event_name"], r["status"]) for r in stored] == [
            ("post.created", "pending"),
            ("post.published", "pending"),
        ]
    finally:
        fresh.close()
    doc_id = created.json()["data"]["id"]
    patched = writer.patch(f"/api/v1/posts/{doc_id}", json={"title": "Durable, edited"})
    assert patched.status_code == 200
    assert [r["event_name"] for r in outbox(app, hook["id"])] == ["post.created", "post.published", "post.updated"]
    assert receiver.count() == 0
    with delivering(app):
        assert receiver.wait_for(lambda hits: len(hits) >= 3, WAIT_TIMEOUT_S)
        wait_until(lambda: hooks_of(app).pending_count() == 0)
        time.sleep(0.2)  # nothing is sent twice ...
        prove_running(admin, app, receiver)  # ... while the loop kept running
    hits = uncontrolled(receiver)
    assert len(hits) == 3  # everything, once
    assert [json.loads(h.body)["event"] for h in hits] == ["post.created", "post.published", "post.updated"]
    for hit in hits:
        Verifier(secret).verify(hit.body, hit.headers)
    updated = json.loads(hits[2].body)
    assert updated["post"]["id"] == doc_id and "title" in updated["changes"]
    assert updated["site"] == "https://cinder-and-crema.example"


# -- SSRF ----------------------------------------------------------------------------------------


def test_private_and_malformed_targets_are_refused(demo_site: Site, receiver: Receiver) -> None:
    strict = dataclasses.replace(unlimited(demo_site), network=NetworkSection(allow_private_addresses=False))
    assert strict.network.allow_private_addresses is False
    state = State(strict.state_dir)
    try:
        app = create_app(strict, index=Index.load(strict, background_search=False), state=state, clock=Clock())
        admin = client(app, app.state.services.keys.create("admin", ["admin"]).token)
        port = receiver.port
        targets = [
            f"http://127.0.0.1:{port}/hook",
            "http://127.0.0.1/hook",
            f"http://[::1]:{port}/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://10.0.0.1/",
            "http://[64:ff9b::7f00:1]/",
            "http://localhost/",
            "ftp://x/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://user:pass@example.com/",
            "http:///nohost",
            "not a url",
        ]
        for url in targets:
            error = assert_error(admin.post(HOOKS, json={"name": "ssrf", "url": url}), 422, "VALIDATION_ERROR")
            assert "url" in error["details"], url
        assert admin.get(HOOKS).json()["data"] == []
        ok = admin.post(HOOKS, json={"name": "public", "url": "https://93.184.216.34/hook"})
        assert ok.status_code == 201  # a public address is fine (nothing is sent: no deliverer runs)
        hook_id = ok.json()["data"]["id"]
        assert_error(
            admin.patch(f"{HOOKS}/{hook_id}", json={"url": f"http://127.0.0.1:{port}/"}), 422, "VALIDATION_ERROR"
        )
        assert admin.delete(f"{HOOKS}/{hook_id}").status_code == 204
        assert hooks_of(app).state.query("SELECT id FROM outbox") == []  # the proof: nothing can be sent
        # The delivery loop runs anyway, with a public subscription as the positive control (its request
        # is answered by a mock transport: no packet leaves the machine). A refused target is never
        # stored, so nothing reaches the local receiver however long the loop runs.
        public = make_hook(admin, "https://93.184.216.34/control", events=["webhook.test"])
        sent: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request.headers["webhook-id"])
            return httpx.Response(200)

        event_id = admin.post(f"{HOOKS}/{public['id']}/test").json()["data"]["event_id"]
        deliverer = Deliverer(hooks_of(app), transport=httpx.MockTransport(answer))
        deliverer.start()
        try:
            time.sleep(0.3)  # nothing reaches the receiver ...
            wait_until(lambda: event_id in sent, message="the delivery loop sent nothing")  # ... while it ran
        finally:
            deliverer.stop()
    finally:
        state.close()
    assert receiver.count() == 0


# -- seed 000, tests, the delivery log -----------------------------------------------------------


def test_seed_000_list_and_trigger(admin: TestClient, app: Starlette, receiver: Receiver) -> None:
    hook = make_hook(admin, receiver.url, events=["post.published"])
    make_hook(admin, receiver.url + "?other", events=["media.uploaded"])
    listed = admin.get("/api/v1/webhook/list")
    assert listed.status_code == 200 and listed.json() == admin.get(HOOKS).json()
    triggered = admin.post("/api/v1/webhook/trigger", json={"event": "post.published", "payload": {"slug": "hello"}})
    assert triggered.status_code == 202, triggered.text
    event_id = triggered.json()["data"]["event_id"]
    with delivering(app):
        assert receiver.wait_for(lambda hits: len(hits) >= 1, WAIT_TIMEOUT_S)
        time.sleep(0.2)  # the media.uploaded subscription gets nothing ...
        prove_running(admin, app, receiver)  # ... while the loop kept running
    (hit,) = uncontrolled(receiver)
    body = Verifier(hook["secret"]).verify(hit.body, hit.headers)
    assert hit.headers["webhook-id"] == event_id
    assert body["event"] == "post.published" and body["payload"] == {"slug": "hello"} and body["manual"] is True
    for bad in ({"event": "post.exploded"}, {"event": "post.published", "payload": [1]}, {}):
        assert_error(admin.post("/api/v1/webhook/trigger", json=bad), 422, "VALIDATION_ERROR")


def test_the_test_endpoint_queues_a_delivery_that_then_appears(
    admin: TestClient, app: Starlette, receiver: Receiver
) -> None:
    hook = make_hook(admin, receiver.url, events=["post.published"])
    other = make_hook(admin, receiver.url + "?other", events=["*"])
    response = admin.post(f"{HOOKS}/{hook['id']}/test")
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["event_id"].startswith("evt_") and isinstance(data["delivery_id"], int)
    with delivering(app):
        assert receiver.wait_for(lambda hits: len(hits) >= 1, WAIT_TIMEOUT_S)
        wait_until(lambda: hooks_of(app).pending_count() == 0)
        time.sleep(0.2)  # nothing for the other subscription ...
        prove_running(admin, app, receiver)  # ... while the loop kept running
    (hit,) = uncontrolled(receiver)  # the one subscription only, even if others want everything
    assert hit.path == "/hook"
    assert Verifier(hook["secret"]).verify(hit.body, hit.headers)["event"] == "webhook.test"
    log = admin.get(f"{HOOKS}/{hook['id']}/deliveries").json()
    (delivery,) = log["data"]
    assert delivery["id"] == data["delivery_id"] and delivery["event_id"] == data["event_id"]
    assert delivery["event"] == "webhook.test" and delivery["status"] == "delivered"
    assert admin.get(f"{HOOKS}/{other['id']}/deliveries").json()["data"] == []
    assert_error(admin.post(f"{HOOKS}/wh_nope/test"), 404, "NOT_FOUND")


def test_every_attempt_is_visible_and_redeliver_sends_again(
    admin: TestClient, app: Starlette, writer: TestClient, receiver: Receiver
) -> None:
    hook = make_hook(admin, receiver.url, events=["post.created"])
    answers = iter([Reply(500, body=b"x" * 3000), Reply(503, {"Retry-After": "1"}, b"busy"), Reply(200, body=b"ok")])
    receiver.respond = lambda hit: next(answers, Reply(200, body=b"again"))
    assert writer.post("/api/v1/posts", json={"title": "Logged", "content": "x"}).status_code == 201
    with delivering(app):
        assert receiver.wait_for(lambda hits: len(hits) >= 3, WAIT_TIMEOUT_S)
        wait_until(lambda: hooks_of(app).pending_count() == 0)
        log = admin.get(f"{HOOKS}/{hook['id']}/deliveries")
        assert log.status_code == 200
        (delivery,) = log.json()["data"]
        assert log.json()["pagination"]["total"] == 1
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["last_status"] == 200
        assert [a["status"] for a in delivery["log"]] == [500, 503, 200]
        assert [a["response"] for a in delivery["log"]] == ["x" * 1024, "busy", "ok"]
        assert all(a["error"] is None and a["latency_ms"] >= 0 and a["at"].endswith("Z") for a in delivery["log"])

        again = admin.post(f"{HOOKS}/{hook['id']}/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202 and again.json()["data"] == {"delivery_id": delivery["id"], "status": "pending"}
        assert receiver.wait_for(lambda hits: len(hits) >= 4, WAIT_TIMEOUT_S)
        wait_until(lambda: admin.get(f"{HOOKS}/{hook['id']}/deliveries").json()["data"][0]["attempts"] == 4)
    hits = receiver.snapshot()
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # one event, four attempts
    (delivery,) = admin.get(f"{HOOKS}/{hook['id']}/deliveries").json()["data"]
    assert delivery["status"] == "delivered" and [a["response"] for a in delivery["log"]][-1] == "again"
    assert_error(admin.post(f"{HOOKS}/{hook['id']}/deliveries/999999/redeliver"), 404, "NOT_FOUND")
    assert_error(admin.post(f"{HOOKS}/{hook['id']}/deliveries/abc/redeliver"), 404, "NOT_FOUND")
    assert_error(admin.get(f"{HOOKS}/wh_nope/deliveries"), 404, "NOT_FOUND")
    paged = admin.get(f"{HOOKS}/{hook['id']}/deliveries?page=2&per_page=1").json()
    assert paged["data"] == [] and paged["pagination"]["has_prev"] is True
    assert_error(admin.get(f"{HOOKS}/{hook['id']}/deliveries?color=red"), 400, "BAD_REQUEST")


def test_410_over_the_api_disables_the_subscription(
    admin: TestClient, app: Starlette, writer: TestClient, receiver: Receiver
) -> None:
    hook = make_hook(admin, receiver.url, events=["post.created"])
    receiver.respond = lambda hit: 410
    writer.post("/api/v1/posts", json={"title": "One", "content": "x"})
    with delivering(app):
        wait_until(lambda: admin.get(f"{HOOKS}/{hook['id']}").json()["data"]["enabled"] is False)
        writer.post("/api/v1/posts", json={"title": "Two", "content": "x"})
        time.sleep(0.3)  # the disabled subscription gets nothing more ...
        prove_running(admin, app, receiver)  # ... while the loop kept running
    data = admin.get(f"{HOOKS}/{hook['id']}").json()["data"]
    assert "410" in data["disabled_reason"]
    assert len(uncontrolled(receiver)) == 1
    # Turning it on again clears the reason, and deliveries resume for new events.
    receiver.respond = lambda hit: 200
    on = admin.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True}).json()["data"]
    assert on["enabled"] is True and on["disabled_reason"] is None
    writer.post("/api/v1/posts", json={"title": "Three", "content": "x"})
    with delivering(app):
        wait_until(lambda: len(uncontrolled(receiver)) >= 2, message="the re-enabled subscription got nothing")
    assert json.loads(uncontrolled(receiver)[1].body)["post"]["title"] == "Three"


# -- declared in cms.toml ------------------------------------------------------------------------


def test_config_webhooks_are_listed_read_only_and_keep_their_secret(demo_site: Site, receiver: Receiver) -> None:
    toml = demo_site.root / "cms.toml"
    toml.write_text(
        toml.read_text()
        + f'\n[[webhooks]]\nname = "Deploy"\nurl = "{receiver.url}"\nevents = ["post.published"]\n'
        + "\n[network]\nallow_private_addresses = true\n",
        encoding="utf-8",
    )

    def start() -> tuple[Starlette, State, TestClient]:
        site = local(unlimited(Site.load(demo_site.root)))
        st = State(site.state_dir)
        app = create_app(site, index=Index.load(site, background_search=False), state=st, clock=Clock())
        return app, st, client(app, app.state.services.keys.create("admin", ["admin"]).token)

    app, state, admin = start()
    try:
        (hook,) = admin.get(HOOKS).json()["data"]
        assert hook["source"] == "config" and hook["name"] == "Deploy" and hook["events"] == ["post.published"]
        assert "secret" not in hook
        secret = hooks_of(app).secret_of(hook["id"])
        assert secret.startswith("whsec_")
        assert_error(admin.patch(f"{HOOKS}/{hook['id']}", json={"name": "Mine now"}), 409, "CONFLICT")
        assert_error(admin.delete(f"{HOOKS}/{hook['id']}"), 409, "CONFLICT")
        assert admin.post(f"{HOOKS}/{hook['id']}/test").status_code == 202  # testing is fine
        with delivering(app):
            assert receiver.wait_for(lambda hits: len(hits) >= 1, WAIT_TIMEOUT_S)
        Verifier(secret).verify(receiver.snapshot()[0].body, receiver.snapshot()[0].headers)
    finally:
        state.close()
    app, state, admin = start()  # a restart
    try:
        (again,) = admin.get(HOOKS).json()["data"]
        assert again["id"] == hook["id"] and hooks_of(app).secret_of(hook["id"]) == secret
        assert len(admin.get(f"{HOOKS}/{hook['id']}/deliveries").json()["data"]) == 1  # its log survives too
    finally:
        state.close()


def test_a_receiver_sees_only_the_events_it_subscribed_to(
    admin: TestClient, app: Starlette, writer: TestClient, deleter: TestClient, receiver: Receiver
) -> None:
    make_hook(admin, receiver.url, events=["post.deleted", "*.restored"])
    seen: list[str] = []

    def respond(hit: Hit) -> int:
        seen.append(json.loads(hit.body)["event"])
        return 200

    receiver.respond = respond
    doc = writer.post("/api/v1/posts", json={"title": "Bin me", "content": "x", "status": "published"}).json()["data"]
    assert deleter.delete(f"/api/v1/posts/{doc['id']}").status_code in (200, 204)
    assert writer.post(f"/api/v1/posts/{doc['id']}/restore").status_code == 200
    with delivering(app):
        assert receiver.wait_for(lambda hits: len(hits) >= 2, WAIT_TIMEOUT_S)
        time.sleep(0.2)  # no other event follows ...
        prove_running(admin, app, receiver)  # ... while the loop kept running (its hit is not in `seen`)
    assert seen == ["post.deleted", "post.restored"]


def test_unknown_query_parameters_are_400_on_every_webhook_route(admin: TestClient, receiver: Receiver) -> None:
    hook_id = make_hook(admin, receiver.url)["id"]
    for method, path, body in [
        ("GET", HOOKS, None),
        ("POST", HOOKS, {"name": "x", "url": receiver.url}),
        ("GET", f"{HOOKS}/{hook_id}", None),
        ("PATCH", f"{HOOKS}/{hook_id}", {"name": "y"}),
        ("DELETE", f"{HOOKS}/{hook_id}", None),
        ("POST", f"{HOOKS}/{hook_id}/test", None),
        ("GET", f"{HOOKS}/{hook_id}/deliveries", None),
        ("POST", f"{HOOKS}/{hook_id}/deliveries/1/redeliver", None),
        ("GET", "/api/v1/webhook/list", None),
        ("POST", "/api/v1/webhook/trigger", {"event": "post.published", "payload": {}}),
    ]:
        response = admin.request(method, path + "?colour=red", json=body)
        error = assert_error(response, 400, "BAD_REQUEST")
        assert error["details"]["parameter"] == "colour", (method, path)
    assert [h["id"] for h in admin.get(HOOKS).json()["data"]] == [hook_id]
    assert admin.get(f"{HOOKS}/{hook_id}").json()["data"]["name"] == "hook"
