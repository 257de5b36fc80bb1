"""Webhooks end to end: a real `cms serve` killed with SIGKILL mid-delivery loses no event (T20),
and the `cms webhooks ...` and `cms build` commands against a site with a local receiver.

Everything binds 127.0.0.1; every wait is bounded. The kill test keeps under ~40 s: a claimed
delivery is leased for 10 s + 2 x `[delivery] timeout` (1 s here), so what was in flight at the
kill goes out again about 12 s later.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook as Verifier

from bench.api import serve_command
from bench.webhooks import Hit, Receiver, Reply, make_site
from cms.cli import main
from cms.config import Site
from cms.content.model import etag_of
from cms.content.parse import parse_document
from cms.events.bus import Event, event_id_for
from cms.events.webhooks import Webhooks
from cms.state import State
from tests.support import WAIT_TIMEOUT_S, free_port

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # 32 bytes, base64
WORKERS = 4  # [delivery] workers: the most deliveries in flight at a kill


def hook_config(url: str, events: str = '["*"]', secret: str | None = SECRET) -> str:
    lines = ["[[webhooks]]", 'name = "receiver"', f'url = "{url}"', f"events = {events}"]
    if secret:
        lines.append(f'secret = "{secret}"')
    return "\n".join(lines) + "\n"


# -- T20: kill -9 ---------------------------------------------------------------------------------


class Serve:
    """`python -m cms serve` in its own process; `kill()` is SIGKILL, as a crash."""

    def __init__(self, site: Path, port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        with open(log, "ab") as stderr:
            self.process = subprocess.Popen(
                serve_command(site, port, "--no-preview"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail("cms serve did not start:\n" + log.read_text(errors="replace"))

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def expected_ids(site: Path) -> set[str]:
    """The id of every event the test's posts amount to, from the files on disk (each written once)."""
    ids = set()
    for path in sorted((site / "content" / "posts").glob("kill-*.md")):
        data = path.read_bytes()
        meta = parse_document(data, f"posts/{path.name}").meta
        etag = etag_of(data)
        ids.add(event_id_for(meta["id"], etag, None, "post.created"))
        if meta.get("draft") is not True and meta.get("status") not in ("draft", "trash"):
            ids.add(event_id_for(meta["id"], etag, None, "post.published"))
    return ids


def test_no_webhook_is_lost_when_the_server_is_killed(tmp_path: Path) -> None:
    stalls: list[Hit] = []

    def stall(hit: Hit) -> Reply:
        stalls.append(hit)
        return Reply(200, delay=0.15)  # a slow receiver: the outbox fills up behind it

    with Receiver(stall) as receiver:
        site = make_site(
            tmp_path / "site",
            posts=1,
            delivery=f"timeout = 1.0\nworkers = {WORKERS}",
            extra="[api]\nrate_limit_per_minute = 100000\nrate_limit_per_day = 1000000\n\n" + hook_config(receiver.url),
        ).root
        keys = subprocess.run(
            [sys.executable, "-m", "cms", "keys", "create", "--site", str(site), "--name", "kill", "--scopes", "write"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        token = re.search(r"^key:\s+(cms_\S+)$", keys, re.MULTILINE).group(1)  # type: ignore[union-attr]
        port = free_port()
        log = tmp_path / "serve.log"
        server = Serve(site, port, log)
        acked = 0
        failed = 0
        killed_at_hits = -1
        killed = restarted = recovered = 0.0
        try:
            with httpx.Client(base_url=server.base, headers={"X-API-Key": token}, timeout=10) as http:
                for i in range(50):
                    body = {"title": f"Kill {i}", "content": "x", "slug": f"kill-{i}"}
                    if i % 2:
                        body["status"] = "published"
                    if acked == 25 and killed_at_hits < 0:
                        receiver.wait_for(lambda hits: len(hits) >= 5, WAIT_TIMEOUT_S)
                        killed_at_hits = receiver.count()
                        server.kill()  # mid-stream: deliveries in flight, more queued
                        killed = time.monotonic()
                        server = Serve(site, port, log)
                        restarted = time.monotonic() - killed
                    try:
                        response = http.post("/api/v1/posts", json=body)
                    except httpx.HTTPError:
                        failed += 1
                        continue
                    assert response.status_code == 201, response.text
                    acked += 1
            assert acked == 50 and failed == 0
            expected = expected_ids(site)
            assert len(expected) == 75 + 0  # 50 created + 25 published
            arrived = receiver.wait_for(lambda hits: expected <= {h.headers["webhook-id"] for h in hits}, 30)
            recovered = time.monotonic() - killed
            time.sleep(0.5)
        finally:
            server.kill()
    hits = receiver.snapshot()
    ids = Counter(h.headers["webhook-id"] for h in hits)
    missing = expected - set(ids)
    assert arrived and not missing, f"{len(missing)} missing of {len(expected)}; log:\n{log.read_text()[-3000:]}"
    assert 0 < killed_at_hits < len(expected)  # the kill really was mid-stream
    duplicates = sum(n - 1 for n in ids.values())
    print(
        f"killed after {killed_at_hits} requests; restarted in {restarted:.1f} s; all in {recovered:.1f} s after the"
        f" kill; {len(hits)} received, {len(ids)} ids, {duplicates} duplicates"
    )
    assert duplicates <= WORKERS, ids.most_common(5)
    assert set(ids) - expected == set()  # nothing unexpected either
    verifier = Verifier(SECRET)
    for hit in hits:
        verifier.verify(hit.body, hit.headers)


# -- the CLI -------------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_the_webhooks_commands(tmp_path: Path) -> None:
    with Receiver() as receiver:
        site = make_site(
            tmp_path / "site",
            posts=2,
            delivery="retry_schedule = [1, 1, 1]",  # 1 ms apart: a failing test exhausts them at once
            extra=hook_config(receiver.url, '["webhook.test"]', secret=None),
        )
        root = str(site.root)
        state = State(site.state_dir)
        try:
            hooks = Webhooks(site, state)
            (declared,) = hooks.list()
            flaky, _ = hooks.create({"name": "flaky", "url": receiver.url + "?flaky", "events": ["post.*"]})
        finally:
            state.close()
        receiver.respond = lambda hit: 500 if "flaky" in hit.path else 200

        listed = cli("webhooks", "list", "--site", root)
        assert listed.exit_code == 0, listed.output
        assert declared.id in listed.output and flaky.id in listed.output
        assert receiver.url in listed.output and "enabled" in listed.output

        secret = cli("webhooks", "secret", declared.id, "--site", root)
        assert secret.exit_code == 0 and secret.output.strip().startswith("whsec_")
        assert cli("webhooks", "secret", declared.id, "--site", root).output == secret.output  # kept

        tested = cli("webhooks", "test", declared.id, "--site", root)
        assert tested.exit_code == 0, tested.output
        assert tested.output.startswith("delivered: HTTP 200")
        (hit,) = receiver.snapshot()
        body = Verifier(secret.output.strip()).verify(hit.body, hit.headers)
        assert body["event"] == "webhook.test" and body["source"] == "cli"

        failing = cli("webhooks", "test", flaky.id, "--site", root)
        assert failing.exit_code == 0 and failing.output.startswith("failed: HTTP 500"), failing.output
        assert len([h for h in receiver.snapshot() if "flaky" in h.path]) == 4  # the first try and 3 retries
        assert "failing since" in cli("webhooks", "list", "--site", root).output

        log = cli("webhooks", "deliveries", declared.id, "--site", root)
        assert log.exit_code == 0
        assert "1 delivery(ies)" in log.output and "webhook.test" in log.output and "HTTP 200" in log.output
        delivery_id = re.search(r"#(\d+)", log.output).group(1)  # type: ignore[union-attr]

        again = cli("webhooks", "redeliver", declared.id, delivery_id, "--site", root)
        assert again.exit_code == 0 and "queued again" in again.output
        assert receiver.count() == 5  # queued, not yet sent
        flushed = cli("webhooks", "flush", "--site", root)
        assert flushed.exit_code == 0, flushed.output
        assert flushed.output.strip() == "1 attempt(s) made; 0 delivery(ies) still pending"
        hits = receiver.snapshot()
        assert len(hits) == 6
        assert [h.headers["webhook-id"] for h in hits if "flaky" not in h.path] == [hit.headers["webhook-id"]] * 2
        assert hits[-1].headers["webhook-timestamp"] >= hit.headers["webhook-timestamp"]

        unknown = cli("webhooks", "test", "wh_nope", "--site", root)
        assert unknown.exit_code == 1 and "no webhook" in unknown.output
        assert cli("webhooks", "redeliver", declared.id, "99999", "--site", root).exit_code == 1


def test_cms_build_delivers_its_change_set(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def record(hit: Hit) -> int:
        seen.append(json.loads(hit.body))
        return 200

    with Receiver(record) as receiver:
        site = make_site(tmp_path / "site", posts=3, extra=hook_config(receiver.url))
        root = str(site.root)
        for _ in range(2):
            built = cli("build", "--site", root, "--quiet")
            assert built.exit_code == 0, built.output
            assert "webhooks: 1 delivery(ies) queued, 0 still pending" in built.output
        assert [e["event"] for e in seen] == ["build.completed", "build.completed"]
        path = site.content_dir / "posts" / "post-1.md"
        path.write_text(path.read_text().replace("Post 1", "Post 1, edited"), encoding="utf-8")
        built = cli("build", "--site", root, "--quiet")
        assert built.exit_code == 0, built.output
    events = seen[2:]
    by_name = {e["event"]: e for e in events}  # two documents' events: in parallel, in any order
    assert sorted(by_name) == ["build.completed", "post.updated"] and len(events) == 2
    assert by_name["post.updated"]["post"]["title"] == "Post 1, edited" and by_name["post.updated"]["source"] == "build"
    assert f"{site.site.base_url}/posts/post-1/" in by_name["build.completed"]["build"]["changed_urls"]


def enqueue_published(site: Site, n: int) -> None:
    """Queue `n` post.published events as another process would (no deliverer running here)."""
    state = State(site.state_dir)
    try:
        hooks = Webhooks(Site.load(site.root), state)
        for i in range(n):
            hooks.enqueue(Event("post.published", {"post": {"id": f"d{i}", "type": "posts"}}, key=f"d{i}"))
    finally:
        state.close()


def test_events_enqueued_by_a_command_are_signed_with_the_subscriptions_secret(tmp_path: Path) -> None:
    """`cms webhooks flush` sends what another process queued (no server running)."""
    with Receiver() as receiver:
        site = make_site(tmp_path / "site", extra=hook_config(receiver.url, '["post.published"]'))
        enqueue_published(site, 5)
        flushed = cli("webhooks", "flush", "--site", str(site.root))
        assert flushed.exit_code == 0 and flushed.output.startswith("5 attempt(s) made"), flushed.output
        hits = receiver.snapshot()
    assert len(hits) == 5
    for hit in hits:
        Verifier(SECRET).verify(hit.body, hit.headers)


def test_a_flush_with_every_worker_busy_still_sends_what_waits(tmp_path: Path) -> None:
    """One worker, ten deliveries: each step finds the worker busy and starts nothing; the flush must
    not take that for "nothing left" when the delivery in flight ends a moment later."""
    with Receiver() as receiver:
        site = make_site(
            tmp_path / "site", delivery="workers = 1", extra=hook_config(receiver.url, '["post.published"]')
        )
        enqueue_published(site, 10)
        flushed = cli("webhooks", "flush", "--site", str(site.root))
        assert flushed.exit_code == 0, flushed.output
        assert flushed.output.startswith("10 attempt(s) made; 0 delivery(ies) still pending"), flushed.output
        assert len(receiver.snapshot()) == 10
