"""Webhook delivery bench: `python -m bench.webhooks [--n 1000] [--writes 200]`.

Everything runs on 127.0.0.1: a throw-away site in a temp folder (`[network]
allow_private_addresses = true`), a local receiver (`Receiver`, http.server in a thread, also used
by the webhook tests) and the real outbox, signer and `Deliverer`. Two figures, each printed as
`name: value unit`, then a table against the targets:

- **delivery**: N events (one document each, so they may go out in parallel) are put in the
  outbox, then a started `Deliverer` sends them; the time until the receiver has all N (target
  <= 10 s for 1,000);
- **write latency**: the median of `Store.update` calls (a title change, which emits
  `post.updated`) with one subscribed webhook minus the median without any subscription (target
  <= 1 ms). The outbox commit is `synchronous=FULL`, so this is mostly one fsync of SQLite's WAL:
  the same figure with `synchronous=OFF` is printed too, to show what is fsync and what is code.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# -- a local receiver (shared with the tests) ---------------------------------------------------


@dataclass
class Hit:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds to wait before answering


Responder = Callable[[Hit], Reply | int]


class Receiver:
    """An HTTP receiver on 127.0.0.1 (a port of its own) that records every request.

    `respond(hit)` decides the answer (a status or a `Reply`); the default answers 200 at once.
    Keep-alive HTTP/1.1, one thread per connection; `close()` (or `with`) stops it.
    """

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda hit: 200)
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                hit = Hit(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                    time.time(),
                )
                with receiver.changed:
                    receiver.hits.append(hit)
                    receiver.changed.notify_all()
                reply = receiver.respond(hit)
                if isinstance(reply, int):
                    reply = Reply(reply)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True  # the client gave up (a timeout test): nothing to say

            do_POST = do_GET = do_PUT = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up mid-answer is expected in timeout tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.hits)

    def snapshot(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)

    def wait_for(self, condition: Callable[[list[Hit]], bool], timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until `condition(hits)` holds; whether it did."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition(self.hits):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.05))
            return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the bench --------------------------------------------------------------------------------


def make_site(root: Path, posts: int = 0, *, delivery: str = "", network: str = "", extra: str = "") -> Any:
    """A small site under `root`: local receivers allowed, retries fast, `posts` published posts.

    `delivery` and `network` are more lines for those sections; `extra` goes at the end (e.g.
    `[[webhooks]]` tables).
    """
    from cms.config import Site

    root.mkdir(parents=True, exist_ok=True)
    (root / "cms.toml").write_text(
        '[site]\ntitle = "Bench"\ntimezone = "UTC"\nbase_url = "https://bench.example"\n\n'
        f"[network]\n{network or 'allow_private_addresses = true'}\n\n"
        f"[delivery]\ntime_scale = 0.001\njitter = 0.0\n{delivery}\n\n{extra}",
        encoding="utf-8",
    )
    folder = root / "content" / "posts"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(posts):
        (folder / f"post-{i}.md").write_text(
            f"---\ntitle: Post {i}\ndate: 2025-01-01T00:00:00Z\ntags: [bench]\n---\nBody of post {i}.\n",
            encoding="utf-8",
        )
    return Site.load(root)


def bench_delivery(n: int, timeout: float = 120.0) -> dict[str, float]:
    """Seconds to deliver n events from the outbox to a local receiver."""
    from cms.events.bus import Event
    from cms.events.webhooks import Deliverer, Webhooks
    from cms.state import State

    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        site = make_site(Path(tmp) / "site")
        state = State(site.state_dir)
        try:
            hooks = Webhooks(site, state)
            hooks.create({"name": "bench", "url": receiver.url, "events": ["*"]})
            started = time.perf_counter()
            for i in range(n):
                doc = {"id": f"doc{i}", "type": "posts", "title": f"Post {i}"}
                hooks.enqueue(Event("post.updated", {"post": doc}, source="api", key=f"doc{i}"))
            enqueued = time.perf_counter() - started
            deliverer = Deliverer(hooks)
            started = time.perf_counter()
            deliverer.start()
            try:
                done = receiver.wait_for(lambda hits: len(hits) >= n, timeout)
                seconds = time.perf_counter() - started
                pending = hooks.pending_count()
                deadline = time.monotonic() + 10
                while pending and time.monotonic() < deadline:  # the last rows are being marked delivered
                    time.sleep(0.01)
                    pending = hooks.pending_count()
            finally:
                deliverer.stop()
            ids = {hit.headers.get("webhook-id") for hit in receiver.snapshot()}
        finally:
            state.close()
    if not done:
        raise SystemExit(f"only {receiver.count()} of {n} deliveries arrived in {timeout:g} s")
    return {
        "enqueue_ms_per_event": enqueued / n * 1000,
        "delivery_s": seconds,
        "deliveries_per_s": n / seconds,
        "unique_ids": float(len(ids)),
        "received": float(receiver.count()),
        "pending_after": float(pending),
    }


def bench_write_latency(writes: int, *, fsync: bool = True) -> dict[str, float]:
    """Median ms of Store.update with and without a subscribed webhook (nothing is delivered).

    Two sites side by side, their updates interleaved, so a change in the machine's load or the
    disk's fsync time during the run weighs on both figures alike.
    """
    from cms.content.index import Index
    from cms.content.store import Store
    from cms.events.bus import Bus
    from cms.events.webhooks import Webhooks
    from cms.state import State

    labels = ("without", "with")
    times: dict[str, list[float]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as tmp, Receiver() as receiver:
        setups = {}
        states = []
        try:
            for label in labels:
                site = make_site(Path(tmp) / label, posts=20)
                index = Index.load(site, background_search=False)
                state = State(site.state_dir)
                states.append(state)
                if not fsync:
                    state.query("PRAGMA synchronous=OFF")
                bus = Bus()
                hooks = Webhooks(site, state)
                bus.subscribe(hooks.subscriber)
                if label == "with":
                    hooks.create({"name": "bench", "url": receiver.url, "events": ["post.updated"]})
                docs = sorted(index.docs.values(), key=lambda d: d.path)
                setups[label] = (Store(site, index, bus), index, docs, hooks)
            for i in range(writes):
                for label in labels if i % 2 else reversed(labels):
                    store, index, docs, _ = setups[label]
                    doc = index.get(docs[i % len(docs)].id)
                    started = time.perf_counter()
                    store.update(doc, {"title": f"Title {label} {i}"})
                    times[label].append((time.perf_counter() - started) * 1000)
            queued = setups["with"][3].pending_count()
            if queued != writes:
                raise SystemExit(f"expected {writes} outbox rows, found {queued}")
        finally:
            for state in states:
                state.close()
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    return {"without_ms": without, "with_ms": with_, "added_ms": with_ - without}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="deliveries to send (default 1000)")
    parser.add_argument("--writes", type=int, default=200, help="Store.update calls per latency sample")
    args = parser.parse_args(argv)

    delivery = bench_delivery(args.n)
    print(f"delivery: {args.n} events in {delivery['delivery_s']:.2f} s ({delivery['deliveries_per_s']:.0f}/s)")
    print(f"delivery unique webhook-ids: {delivery['unique_ids']:.0f} (received {delivery['received']:.0f})")
    print(f"enqueue: {delivery['enqueue_ms_per_event']:.2f} ms per event (one fsync'd outbox commit each)")
    latency = bench_write_latency(args.writes)
    print(f"write median without webhook: {latency['without_ms']:.2f} ms")
    print(f"write median with webhook: {latency['with_ms']:.2f} ms")
    print(f"write added latency: {latency['added_ms']:.2f} ms")
    no_fsync = bench_write_latency(args.writes, fsync=False)
    print(f"write added latency with synchronous=OFF (code only): {no_fsync['added_ms']:.2f} ms")

    rows = [
        (f"{args.n} deliveries", f"{delivery['delivery_s']:.2f} s", "<= 10 s" if args.n == 1000 else "-"),
        ("added write latency (median)", f"{latency['added_ms']:.2f} ms", "<= 1 ms"),
        ("  of which not fsync", f"{no_fsync['added_ms']:.2f} ms", "-"),
    ]
    print()
    print(f"{'figure':<32}{'value':>12}  target")
    for name, value, target in rows:
        print(f"{name:<32}{value:>12}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
