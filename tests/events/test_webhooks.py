"""Webhook signing (T18), delivery semantics (T19) and per-document order (T21) against real HTTP
receivers on 127.0.0.1, checked with the independent `standardwebhooks` verifier.

Sizes: CMS_WEBHOOK_N deliveries for T18 (default 200; 1000 for the full run) and 50 documents x 5
updates for T21 (200 x 5 when CMS_WEBHOOK_N >= 1000). Every wait is bounded.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import random
import threading
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

import cms.events.delivery as delivery_module
from bench.webhooks import Hit, Receiver, Reply, make_site
from cms.config import NetworkSection, Site
from cms.content.index import Index
from cms.content.store import Store
from cms.errors import ConfigError, Conflict, Invalid
from cms.events.bus import Bus, Event
from cms.events.webhooks import Deliverer, Webhooks, new_secret, secret_key, sign
from cms.state import State
from tests.support import WAIT_TIMEOUT_S, Clock, wait_until

N = int(os.environ.get("CMS_WEBHOOK_N", "200"))


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def state_for() -> Iterator[Callable[[Site], State]]:
    opened: list[State] = []

    def open_state(site: Site) -> State:
        st = State(site.state_dir)
        opened.append(st)
        return st

    yield open_state
    for st in opened:
        st.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@contextmanager
def running(hooks: Webhooks) -> Iterator[Deliverer]:
    deliverer = Deliverer(hooks)
    deliverer.start()
    try:
        yield deliverer
    finally:
        deliverer.stop()


def doc_event(i: int, name: str = "post.updated", *, key: str | None = None, **extra: Any) -> Event:
    doc = {"id": f"doc{i}", "type": "posts", "title": f"Post {i}", **extra}
    return Event(name, {"post": doc}, source="api", key=key or f"doc{i}")


def rows(state: State, hook_id: str | None = None) -> list[Any]:
    if hook_id is None:
        return state.query("SELECT * FROM outbox ORDER BY id")
    return state.query("SELECT * FROM outbox WHERE webhook_id = ? ORDER BY id", (hook_id,))


def step(hooks: Webhooks, deliverer: Deliverer, limit: int = 10) -> int:
    """Claim what is due now and send it in this thread (a deterministic delivery loop)."""
    claimed = hooks.claim(limit)
    for row in claimed:
        hooks.send(row, deliverer.client)
    return len(claimed)


def verify(secret: str | bytes, hit: Hit) -> Any:
    return Verifier(secret).verify(hit.body, hit.headers)


CONTROL = "?control"  # the query string of the positive control's subscription


def prove_running(hooks: Webhooks, receiver: Receiver) -> None:
    """The positive control of a quiet period: a new subscription's delivery arrives.

    The delivery loop claims due rows oldest first, so once this newer row was sent, any row the quiet
    period was checking for (one sent again, or one that should be cancelled) was claimed and sent by then
    too: a loop that had stalled cannot make the negative check pass. The control is answered 200."""
    answer = receiver.respond
    receiver.respond = lambda hit: 200 if hit.path.endswith(CONTROL) else answer(hit)
    control, _ = hooks.create({"name": "control", "url": receiver.url + CONTROL, "events": ["webhook.test"]})
    event = doc_event(999, key="control")
    assert hooks.enqueue(event, only=control.id)
    sent = receiver.wait_for(lambda hits: any(h.headers.get("webhook-id") == event.id for h in hits), WAIT_TIMEOUT_S)
    assert sent, "the delivery loop sent nothing: the quiet period proved nothing"
    wait_until(lambda: not [r for r in rows(hooks.state) if r["status"] == "sending"], message="a send never ended")
    receiver.respond = answer


def uncontrolled(receiver: Receiver) -> list[Hit]:
    """What the receiver got, without the positive control's delivery."""
    return [h for h in receiver.snapshot() if not h.path.endswith(CONTROL)]


# -- T18: signatures ---------------------------------------------------------------------------


def test_every_delivery_verifies_with_the_reference_verifier(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, secret = hooks.create({"name": "verify", "url": receiver.url, "events": ["*"]})
    assert secret is not None
    verifier = Verifier(secret)
    failures: list[str] = []

    def respond(hit: Hit) -> int:
        try:
            verifier.verify(hit.body, hit.headers)
        except WebhookVerificationError as exc:
            failures.append(str(exc))
            return 400
        return 200

    receiver.respond = respond
    events = [doc_event(i, title_suffix="é ✓ 😀") for i in range(N)]  # non-ASCII: the bytes are signed
    for event in events:
        assert len(hooks.enqueue(event)) == 1
    sending_from = int(time.time())  # whole seconds, as the header
    with running(hooks):
        assert receiver.wait_for(lambda hits: len(hits) >= N, 60), f"{receiver.count()} of {N} arrived"
        wait_until(lambda: hooks.pending_count() == 0)
    hits = receiver.snapshot()
    assert failures == []
    assert len(hits) == N
    ids = [h.headers["webhook-id"] for h in hits]
    assert len(set(ids)) == N  # unique across events ...
    assert set(ids) == {e.id for e in events}  # ... and each is the event's own id
    for hit in hits:
        payload = json.loads(hit.body)
        assert payload["id"] == hit.headers["webhook-id"]
        assert hit.headers["content-type"] == "application/json"
        # Taken when the attempt was sent, so between the start of sending and the arrival (bounds a
        # slow machine cannot break; that the stamp is new per attempt is the next tests' business).
        assert sending_from <= int(hit.headers["webhook-timestamp"]) <= hit.wall
        assert hit.headers["webhook-signature"].startswith("v1,")
    assert {r["status"] for r in rows(hooks.state, hook.id)} == {"delivered"}


def test_tampered_wrong_secret_and_stale_or_future_deliveries_are_refused(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, secret = hooks.create({"name": "capture", "url": receiver.url})
    assert secret is not None
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        assert step(hooks, deliverer) == 1
    finally:
        deliverer.stop()
    (hit,) = receiver.snapshot()
    assert verify(secret, hit)["post"]["id"] == "doc1"  # the captured delivery itself is valid

    def refused(body: bytes, headers: dict[str, str], key: str | bytes = secret) -> bool:
        try:
            Verifier(key).verify(body, headers)
        except WebhookVerificationError:
            return True
        return False

    msg_id = hit.headers["webhook-id"]
    body = hit.body
    tampered = body.replace(b'"doc1"', b'"doc2"')
    assert tampered != body
    assert refused(tampered, hit.headers)
    assert refused(body + b" ", hit.headers)
    assert refused(body, hit.headers, new_secret())  # another subscription's secret
    assert refused(body, {**hit.headers, "webhook-id": msg_id + "x"})  # the id is signed too
    now = int(time.time())
    for offset in (-301, 301):
        # correctly signed, but outside the 5-minute window: refused for its time alone
        stale = {
            **hit.headers,
            "webhook-timestamp": str(now + offset),
            "webhook-signature": sign(secret, msg_id, now + offset, body),
        }
        assert refused(body, stale), offset
        # the old signature with a new timestamp: refused as well
        assert refused(body, {**hit.headers, "webhook-timestamp": str(now + offset)})
    fresh = {**hit.headers, "webhook-timestamp": str(now), "webhook-signature": sign(secret, msg_id, now, body)}
    assert not refused(body, fresh)  # the control: the same construction inside the window passes
    assert not refused(body, {**fresh, "webhook-signature": "v1,AAAA " + fresh["webhook-signature"]})  # several


def test_webhook_id_is_fixed_per_event_and_the_timestamp_new_per_attempt(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each attempt reads the clock: make the clock move 2 s per read so a timestamp kept from an
    # earlier attempt (or from the enqueue) would show, while staying inside the 5-minute window.
    calls = {"n": 0}

    def moving_time() -> float:
        calls["n"] += 1
        return time.time() + 2 * calls["n"]

    fake = types.SimpleNamespace(
        time=moving_time, perf_counter=time.perf_counter, monotonic=time.monotonic, sleep=time.sleep
    )
    monkeypatch.setattr(delivery_module, "time", fake)
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, secret = hooks.create({"name": "retry", "url": receiver.url})
    assert secret is not None
    seen: dict[str, int] = defaultdict(int)

    def respond(hit: Hit) -> int:
        seen[hit.headers["webhook-id"]] += 1
        return 200 if seen[hit.headers["webhook-id"]] >= 3 else 500

    receiver.respond = respond
    events = [doc_event(i) for i in range(5)]
    for event in events:
        hooks.enqueue(event)
    with running(hooks):
        assert receiver.wait_for(lambda hits: len(hits) >= 15, WAIT_TIMEOUT_S)
        wait_until(lambda: hooks.pending_count() == 0)
    hits = receiver.snapshot()
    assert len(hits) == 15
    by_id: dict[str, list[Hit]] = defaultdict(list)
    for hit in hits:
        by_id[hit.headers["webhook-id"]].append(hit)
    assert set(by_id) == {e.id for e in events}
    for attempts in by_id.values():
        assert len(attempts) == 3
        assert len({a.body for a in attempts}) == 1  # the stored bytes, signed again
        stamps = [a.headers["webhook-timestamp"] for a in attempts]
        assert len(set(stamps)) == 3, stamps
        assert len({a.headers["webhook-signature"] for a in attempts}) == 3
        for attempt in attempts:
            verify(secret, attempt)
    assert all(r["attempts"] == 3 and r["status"] == "delivered" for r in rows(hooks.state, hook.id))


def test_generated_secrets_are_whsec_and_32_random_bytes(tmp_path: Path, state_for: Callable[[Site], State]) -> None:
    generated = {new_secret() for _ in range(50)}
    assert len(generated) == 50
    for secret in generated:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, secret = hooks.create({"name": "gen", "url": "http://127.0.0.1:9/x"})
    assert secret is not None and secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert hooks.secret_of(hook.id) == secret
    assert hook.as_dict()["secret_hint"] == secret[:10] + "…" and "secret" not in hook.as_dict()  # shown once
    plain, _ = hooks.create({"name": "plain", "url": "http://127.0.0.1:9/y", "secret": "0123456789abcdef"})
    assert plain.as_dict()["secret_hint"] == "0123…"  # a short hand-made secret shows 4 of its characters


def test_a_given_whsec_secret_is_used_as_its_decoded_bytes(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    key = bytes(range(24))
    given = "whsec_" + base64.b64encode(key).decode()
    plain = "a plain shared secret, not base64!"
    hook_a, shown_a = hooks.create({"name": "given", "url": receiver.url, "secret": given})
    hook_b, shown_b = hooks.create({"name": "plain", "url": receiver.url + "?b", "secret": plain})
    assert shown_a is None and shown_b is None  # a secret the caller chose is not echoed
    assert secret_key(given) == key
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        assert step(hooks, deliverer) == 2
    finally:
        deliverer.stop()
    hit_a, hit_b = sorted(receiver.snapshot(), key=lambda h: h.path)
    verify(given, hit_a)
    verify(key, hit_a)
    msg = f"{hit_a.headers['webhook-id']}.{hit_a.headers['webhook-timestamp']}.".encode() + hit_a.body
    by_hand = "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
    assert hit_a.headers["webhook-signature"] == by_hand
    verify(plain.encode(), hit_b)  # any other secret: its UTF-8 bytes
    with pytest.raises(WebhookVerificationError):
        verify(given, hit_b)


@pytest.mark.parametrize("secret", ["short", 12345678901234567, "whsec_not*base64*at*all!!"])
def test_bad_secrets_are_refused_with_422(secret: Any, tmp_path: Path, state_for: Callable[[Site], State]) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    with pytest.raises(Invalid) as caught:
        hooks.create({"name": "x", "url": "http://127.0.0.1:9/", "secret": secret})
    assert "secret" in caught.value.details
    hook, _ = hooks.create({"name": "y", "url": "http://127.0.0.1:9/"})
    with pytest.raises(Invalid):
        hooks.update(hook.id, {"secret": secret})


# -- T19: delivery semantics ---------------------------------------------------------------------


def test_fail_fail_ok_is_three_attempts_and_one_delivery(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, _ = hooks.create({"name": "flaky", "url": receiver.url})
    answers = iter([500, 502, 200])
    receiver.respond = lambda hit: next(answers, 599)
    hooks.enqueue(doc_event(1))
    with running(hooks):
        wait_until(lambda: rows(hooks.state)[0]["status"] == "delivered")
        time.sleep(0.3)  # nothing more may follow ...
        prove_running(hooks, receiver)  # ... while the loop kept running
    assert len(uncontrolled(receiver)) == 3
    (row,) = rows(hooks.state, hook.id)
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 3, 200)
    (delivery,), total = hooks.deliveries(hook.id)
    assert total == 1
    assert [a["status"] for a in delivery["log"]] == [500, 502, 200]
    assert hooks.get(hook.id).failing_since is None


def test_410_disables_the_subscription_and_cancels_its_queue(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, _ = hooks.create({"name": "gone", "url": receiver.url})
    receiver.respond = lambda hit: Reply(410, body=b"gone for good")
    for i in range(3):
        hooks.enqueue(doc_event(i))
    deliverer = Deliverer(hooks)
    try:
        first = hooks.claim(1)
        hooks.send(first[0], deliverer.client)
        after = hooks.get(hook.id)
        assert after.enabled is False
        assert after.disabled_reason and "410" in after.disabled_reason
        assert [r["status"] for r in rows(hooks.state)] == ["failed", "cancelled", "cancelled"]
        assert hooks.enqueue(doc_event(9)) == []  # a disabled subscription gets no new rows
        assert step(hooks, deliverer) == 0
    finally:
        deliverer.stop()
    with running(hooks):
        time.sleep(0.3)  # the cancelled rows and the new event stay unsent ...
        prove_running(hooks, receiver)  # ... while the loop kept running
    assert len(uncontrolled(receiver)) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "7", 7.0),  # Retry-After beyond the schedule's 5 s wins
        (503, "9", 9.0),
        (503, None, 5.0),  # no Retry-After: the schedule
        (429, "1", 5.0),  # a shorter Retry-After never shortens the schedule
        (429, "999999999", 86_400.0),  # capped at 24 h
        (500, "60", 5.0),  # honoured on 429 and 503 only
    ],
)
def test_retry_after_is_honoured_on_429_and_503(
    status: int,
    retry_after: str | None,
    expected: float,
    tmp_path: Path,
    receiver: Receiver,
    state_for: Callable[[Site], State],
) -> None:
    site = make_site(tmp_path / "site")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))  # whole seconds: the rows keep float seconds
    hooks = Webhooks(site, state_for(site), clock=clock)
    hooks.create({"name": "busy", "url": receiver.url})
    receiver.respond = lambda hit: Reply(status, {"Retry-After": retry_after} if retry_after else {})
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        assert step(hooks, deliverer) == 1
        (row,) = rows(hooks.state)
        assert row["status"] == "pending" and row["last_status"] == status
        scale = site.delivery.time_scale
        assert row["next_attempt_at"] - clock().timestamp() == pytest.approx(expected * scale, abs=1e-6)
        assert row["next_attempt_at"] - clock().timestamp() >= expected * scale - 1e-6  # float seconds since 1970
        assert step(hooks, deliverer) == 0  # not due before its time
        clock.advance(seconds=expected * scale)
        assert step(hooks, deliverer) == 1
    finally:
        deliverer.stop()
    assert receiver.count() == 2


def test_a_receiver_slower_than_the_timeout_is_a_timed_out_attempt(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site", delivery="timeout = 0.5")
    hooks = Webhooks(site, state_for(site))
    hook, _ = hooks.create({"name": "slow", "url": receiver.url})
    receiver.respond = lambda hit: Reply(200, delay=1.5)
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        assert step(hooks, deliverer) == 1
    finally:
        deliverer.stop()
    (delivery,), _ = hooks.deliveries(hook.id)
    (attempt,) = delivery["log"]
    # Cut at the timeout, not after the receiver's 1.5 s: had it waited, the attempt would be the 200.
    assert attempt["status"] is None
    assert attempt["error"] == "timed out after 0.5 s"
    assert attempt["latency_ms"] is not None
    assert delivery["status"] == "pending"  # retried later


def test_a_receiver_dripping_its_answer_is_cut_at_the_timeout(
    tmp_path: Path, state_for: Callable[[Site], State]
) -> None:
    """httpx's timeout is per read; the attempt as a whole must still end near `timeout`."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    stop = threading.Event()
    dripped = [0]  # body bytes sent; a KiB of them (~100 s) would mean the attempt waited for its excerpt

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                dripped[0] += 1
                stop.wait(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    site = make_site(tmp_path / "site", delivery="timeout = 0.5")
    hooks = Webhooks(site, state_for(site))
    hook, _ = hooks.create({"name": "drip", "url": f"http://127.0.0.1:{port}/"})
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        step(hooks, deliverer)  # pytest's timeout (120 s) fails it long before the ~200 s drip would end
        sent = dripped[0]
    finally:
        stop.set()
        deliverer.stop()
        thread.join(5)
        server.close()
    assert sent < 1024  # the attempt ended at its deadline, before the first KiB (its excerpt) was in
    (delivery,), _ = hooks.deliveries(hook.id)
    (attempt,) = delivery["log"]
    assert attempt["status"] == 200 and attempt["error"] is None  # the status counts; the rest is an excerpt
    assert set(attempt["response"] or "x") == {"x"} and len(attempt["response"]) < 1024


def test_a_redirect_is_a_failure_and_is_not_followed(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))  # whole seconds: the rows keep float seconds
    hooks = Webhooks(site, state_for(site), clock=clock)
    hook, _ = hooks.create({"name": "moved", "url": receiver.url})
    with Receiver() as elsewhere:
        receiver.respond = lambda hit: Reply(301, {"Location": elsewhere.url})
        hooks.enqueue(doc_event(1))
        deliverer = Deliverer(hooks)
        try:
            for _ in range(3):
                assert step(hooks, deliverer) == 1
                clock.advance(seconds=10_000)
        finally:
            deliverer.stop()
        assert elsewhere.count() == 0
    assert receiver.count() == 3
    (delivery,), _ = hooks.deliveries(hook.id)
    assert [a["status"] for a in delivery["log"]] == [301, 301, 301]
    assert delivery["status"] == "pending"


def test_an_exhausted_schedule_fails_the_delivery_and_flags_the_subscription(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site", delivery="retry_schedule = [1, 2, 3]")
    hooks = Webhooks(site, state_for(site))
    hook, _ = hooks.create({"name": "down", "url": receiver.url})
    receiver.respond = lambda hit: Reply(500, body=b"E" * 5000)
    hooks.enqueue(doc_event(1))
    with running(hooks):
        wait_until(lambda: rows(hooks.state)[0]["status"] == "failed")
        time.sleep(0.2)  # no fifth attempt follows ...
        prove_running(hooks, receiver)  # ... while the loop kept running
    assert len(uncontrolled(receiver)) == 4  # the first attempt and three retries
    flagged = hooks.get(hook.id)
    assert flagged.failing_since is not None and flagged.enabled is True
    (delivery,), _ = hooks.deliveries(hook.id)
    assert delivery["status"] == "failed" and delivery["attempts"] == 4 and delivery["next_attempt_at"] is None
    for attempt in delivery["log"]:
        assert attempt["status"] == 500
        assert attempt["latency_ms"] is not None and attempt["latency_ms"] >= 0
        assert attempt["response"] == "E" * 1024  # the first KiB only
        assert attempt["error"] is None
    # A later success clears the flag.
    receiver.respond = lambda hit: 200
    hooks.redeliver(hook.id, delivery["id"])
    with running(hooks):
        wait_until(lambda: rows(hooks.state)[0]["status"] == "delivered")
    assert hooks.get(hook.id).failing_since is None


def test_every_attempt_is_logged_and_redeliver_sends_again(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    hook, secret = hooks.create({"name": "log", "url": receiver.url})
    assert secret
    receiver.respond = lambda hit: Reply(200, body="ünïcode ✓".encode() * 200)
    hooks.enqueue(doc_event(1))
    with running(hooks):
        assert receiver.wait_for(lambda hits: len(hits) == 1, WAIT_TIMEOUT_S)
        wait_until(lambda: rows(hooks.state)[0]["status"] == "delivered")
        (delivery,), _ = hooks.deliveries(hook.id)
        hooks.redeliver(hook.id, delivery["id"])
        assert receiver.wait_for(lambda hits: len(hits) == 2, WAIT_TIMEOUT_S)
        wait_until(lambda: hooks.deliveries(hook.id)[0][0]["attempts"] == 2)
    first, second = receiver.snapshot()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    verify(secret, second)
    (delivery,), _ = hooks.deliveries(hook.id)
    assert delivery["status"] == "delivered" and len(delivery["log"]) == 2
    for attempt in delivery["log"]:
        assert attempt["status"] == 200 and attempt["error"] is None and len(attempt["response"]) <= 1024
    with pytest.raises(Exception, match="no delivery"):
        hooks.redeliver(hook.id, 999_999)


def test_a_disabled_or_deleted_subscription_receives_nothing_more(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    hooks = Webhooks(site, state_for(site))
    paused, _ = hooks.create({"name": "paused", "url": receiver.url + "?paused"})
    removed, _ = hooks.create({"name": "removed", "url": receiver.url + "?removed"})
    hooks.enqueue(doc_event(1))
    assert len(rows(hooks.state)) == 2
    hooks.update(paused.id, {"enabled": False})
    hooks.delete(removed.id)
    assert hooks.enqueue(doc_event(2)) == []
    with running(hooks):
        time.sleep(0.4)  # nothing reaches the paused or the deleted subscription ...
        prove_running(hooks, receiver)  # ... while the loop kept running
    assert uncontrolled(receiver) == []
    assert {r["status"] for r in rows(hooks.state) if r["webhook_id"] in (paused.id, removed.id)} == {"cancelled"}


def test_targets_are_checked_again_before_every_delivery(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site")
    state = state_for(site)
    hook, _ = Webhooks(site, state).create({"name": "local", "url": receiver.url})
    strict = dataclasses.replace(site, network=NetworkSection(allow_private_addresses=False))
    hooks = Webhooks(strict, state)  # the same subscription, now under stricter rules
    hooks.enqueue(doc_event(1))
    deliverer = Deliverer(hooks)
    try:
        assert step(hooks, deliverer) == 1
    finally:
        deliverer.stop()
    assert receiver.count() == 0
    (delivery,), _ = hooks.deliveries(hook.id)
    assert delivery["status"] == "failed"
    assert delivery["log"][0]["error"].startswith("blocked")
    assert hooks.get(hook.id).failing_since is not None


def test_a_lease_of_a_dead_process_runs_out_and_the_row_is_sent(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site", delivery="timeout = 2")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))  # whole seconds: the rows keep float seconds
    hooks = Webhooks(site, state_for(site), clock=clock)
    hooks.create({"name": "lease", "url": receiver.url})
    hooks.enqueue(doc_event(1))
    hooks.enqueue(doc_event(1, "post.published"))  # same document: must wait for the first
    (claimed,) = hooks.claim(10)  # a process claims the first row ... and dies
    assert claimed["event_name"] == "post.updated"
    assert hooks.claim(10) == []  # leased; the second waits behind it
    clock.advance(seconds=13)  # lease: 10 s + 2 x timeout
    assert hooks.claim(10) == []
    clock.advance(seconds=1.1)
    deliverer = Deliverer(hooks)
    try:
        again = hooks.claim(10)
        assert [r["id"] for r in again] == [claimed["id"]]
        hooks.send(again[0], deliverer.client)
        assert step(hooks, deliverer) == 1
    finally:
        deliverer.stop()
    assert [json.loads(h.body)["event"] for h in receiver.snapshot()] == ["post.updated", "post.published"]


# -- subscriptions declared in cms.toml ----------------------------------------------------------

CONFIG_HOOK = """
[[webhooks]]
name = "Deploy"
url = "{url}"
events = ["post.published"]
content_types = ["posts"]
"""


def test_config_webhooks_keep_their_generated_secret_and_state_across_restarts(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    site = make_site(tmp_path / "site", extra=CONFIG_HOOK.format(url=receiver.url))
    first = Webhooks(site, state_for(site))
    (hook,) = first.list()
    assert hook.source == "config" and hook.id.startswith("cfg_")
    assert hook.secret.startswith("whsec_") and hook.content_types == ("posts",)
    with pytest.raises(Conflict):
        first.update(hook.id, {"name": "renamed"})
    with pytest.raises(Conflict):
        first.delete(hook.id)
    with first.state.transaction() as db:  # a failing receiver flagged it
        db.execute("UPDATE webhooks SET failing_since = '2026-01-01T00:00:00Z' WHERE id = ?", (hook.id,))
    again = Webhooks(Site.load(site.root), state_for(site))  # a restart, or any `cms` command
    (same,) = again.list()
    assert (same.id, same.secret, same.created_at) == (hook.id, hook.secret, hook.created_at)
    assert same.failing_since == "2026-01-01T00:00:00Z"  # an unchanged declaration keeps its state
    with again.state.transaction() as db:  # a 410 disabled it
        db.execute("UPDATE webhooks SET enabled = 0, disabled_reason = '410' WHERE id = ?", (hook.id,))
    (enabled,) = Webhooks(Site.load(site.root), state_for(site)).list()
    assert (enabled.enabled, enabled.disabled_reason, enabled.secret) == (True, None, hook.secret)  # as declared
    # A changed declaration is applied; a removed one disappears.
    (site.root / "cms.toml").write_text(
        (site.root / "cms.toml").read_text().replace('["post.published"]', '["post.*"]'), encoding="utf-8"
    )
    changed = Webhooks(Site.load(site.root), state_for(site))
    (updated,) = changed.list()
    assert updated.events == ("post.*",) and updated.secret == hook.secret and updated.failing_since is None
    (site.root / "cms.toml").write_text((site.root / "cms.toml").read_text().split("[[webhooks]]")[0], encoding="utf-8")
    assert Webhooks(Site.load(site.root), state_for(site)).list() == []


def test_a_config_webhook_is_never_missing_while_another_process_opens_the_site(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State]
) -> None:
    """Every `cms` command syncs cms.toml into the state: a running server enqueuing at that
    moment must still find the declared webhook (no delete-then-insert window)."""
    site = make_site(tmp_path / "site", extra=CONFIG_HOOK.format(url=receiver.url))
    server = Webhooks(site, state_for(site))
    stop = threading.Event()
    errors: list[BaseException] = []

    def other_processes() -> None:
        while not stop.is_set():
            st = State(site.state_dir)
            try:
                Webhooks(Site.load(site.root), st)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                st.close()

    thread = threading.Thread(target=other_processes, daemon=True)
    thread.start()
    missed = 0
    try:
        for i in range(60):
            event = doc_event(i, "post.published")
            missed += len(server.enqueue(event)) == 0
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert missed == 0


def test_bad_config_webhooks_are_config_errors(tmp_path: Path, state_for: Callable[[Site], State]) -> None:
    for extra in (
        '[[webhooks]]\nname = "x"\nurl = "ftp://example.com/"\n',
        '[[webhooks]]\nname = "x"\nurl = "http://127.0.0.1:9/"\nevents = ["nope.nope"]\n',
        '[[webhooks]]\nname = "x"\nurl = "http://127.0.0.1:9/"\nsurprise = 1\n',
        '[[webhooks]]\nname = "x"\nurl = "http://127.0.0.1:9/"\nsecret = "short"\n',
    ):
        site = make_site(tmp_path / f"site{abs(hash(extra))}", extra=extra)
        with pytest.raises(ConfigError):
            Webhooks(site, state_for(site))


# -- T21: per-document order --------------------------------------------------------------------


def test_events_of_one_document_arrive_in_commit_order(
    tmp_path: Path, receiver: Receiver, state_for: Callable[[Site], State], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.fsync", lambda fd: None)  # the files' durability is not what this measures
    docs, versions = (200, 5) if N >= 1000 else (50, 5)
    site = make_site(tmp_path / "site", posts=docs)
    index = Index.load(site, background_search=False)
    bus = Bus()
    hooks = Webhooks(site, state_for(site))
    bus.subscribe(hooks.subscriber)
    store = Store(site, index, bus)
    hook, _ = hooks.create({"name": "order", "url": receiver.url, "events": ["post.updated"]})
    rng = random.Random(7)
    rng_lock = threading.Lock()

    def respond(hit: Hit) -> Reply:
        with rng_lock:
            delay = rng.uniform(0, 0.02)
        return Reply(200, delay=delay)

    receiver.respond = respond
    ids = sorted(d.id for d in index.docs.values())
    errors: list[BaseException] = []

    def writer(mine: list[str]) -> None:
        try:
            for version in range(versions):
                for doc_id in mine:
                    store.update(index.get(doc_id), {"title": f"{doc_id} v{version}"})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with running(hooks):
        threads = [threading.Thread(target=writer, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        total = docs * versions
        assert receiver.wait_for(lambda hits: len(hits) >= total, 90), f"{receiver.count()} of {total}"
        wait_until(lambda: hooks.pending_count() == 0)
    hits = receiver.snapshot()
    assert len(hits) == total
    assert len({h.headers["webhook-id"] for h in hits}) == total  # no duplicates without a crash
    arrived: dict[str, list[int]] = defaultdict(list)
    for hit in hits:
        post = json.loads(hit.body)["post"]
        arrived[post["id"]].append(int(post["title"].rsplit(" v", 1)[1]))
    outbox_order: dict[str, list[int]] = defaultdict(list)
    for row in rows(hooks.state, hook.id):
        post = json.loads(row["body"])["post"]
        outbox_order[post["id"]].append(int(post["title"].rsplit(" v", 1)[1]))
    inversions = sum(1 for seq in arrived.values() for a, b in zip(seq, seq[1:], strict=False) if a > b)
    assert inversions == 0
    assert all(seq == list(range(versions)) for seq in arrived.values())
    assert outbox_order == arrived  # arrival order is the outbox (commit) order
