"""Soak: minutes of mixed load on one real `cms serve`, then an account of everything it was asked to do.

    python -m bench.soak [--minutes 10] [--posts 1000] [--reads 200] [--writes 5] [--edits 1] [--build-every 60]

Everything runs on 127.0.0.1: a generated site in a temp folder, the server in its own process, a
webhook receiver (bench.webhooks.Receiver) that fails a third of the deliveries and sometimes hangs
past the delivery timeout, and in this process: readers (lists, gets, searches) at `--reads`/s, API
writers (creates and title patches) at `--writes`/s, hand edits of post files at `--edits`/s, and a
`cms build` of the same site every `--build-every` seconds. Every loop is bounded by the deadline.

At the end (load stopped, the outbox drained) it checks, and exits 1 if any fails:
- 0 answers >= 500, and every `cms build` exited 0;
- 0 lost writes: every acknowledged API write is on disk and answered by the API with its last title,
  every acknowledged delete is gone from both, every hand edit is answered with the title written
  (the writer deletes its oldest post past 100, so the site keeps its size and memory growth means a leak);
- server RSS (with its children) grew < 10% from the end of the first minute to the end;
- open file descriptors flat (at most 8 more than at the end of the first minute);
- every webhook event delivered (a 2xx seen by the receiver) or failed with its reason in the log.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.api import create_key, free_port, serve_command, wait_healthy
from bench.corpus import generate
from bench.webhooks import Hit, Receiver, Reply

RETRY_SCHEDULE = [1, 2, 4]  # seconds: a delivery failing 4 times in a row ends failed within the soak
DELIVERY_TIMEOUT_S = 2.0
HANG_S = 3.0  # longer than the delivery timeout: the sender gives up, the attempt is a failure
RSS_GROWTH_MAX = 0.10
FD_GROWTH_MAX = 8
SETTLE_S = 120.0  # after the load: index caught up, outbox drained
OWN_POSTS = 100  # the writer's posts kept at once; past it, each new one replaces the oldest
READERS = 4  # threads sharing the read rate (one blocking client would cap it at its latency)


@dataclass
class Tally:
    """What the load saw; shared by the load threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by kind
    latencies: list[float] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # id -> last acknowledged title (API writes)
    edited: dict[Path, str] = field(default_factory=dict)  # file -> last title written by hand
    deleted: set[str] = field(default_factory=set)  # ids deleted for good (acknowledged 204)
    builds: list[int] = field(default_factory=list)  # exit codes
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds in, rss bytes, open fds)
    server_errors: list[str] = field(default_factory=list)

    def answer(self, method: str, url: str, response: httpx.Response, seconds: float) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            self.latencies.append(seconds)
            if response.status_code >= 500 and len(self.server_errors) < 20:
                self.server_errors.append(f"{method} {url} -> {response.status_code} {response.text[:200]}")


def make_site(root: Path, posts: int, receiver_url: str) -> Path:
    generate(root, posts, seed=7)
    config = (root / "cms.toml").read_text(encoding="utf-8")
    config += (
        "\n[api]\nrate_limit_per_minute = 100000000\nrate_limit_per_day = 1000000000\n"
        '\n[network]\nallowed_hosts = ["127.0.0.1"]\npublic_targets = false\n'
        f"\n[delivery]\nretry_schedule = {RETRY_SCHEDULE}\ntimeout = {DELIVERY_TIMEOUT_S}\n"
        f'\n[[webhooks]]\nname = "soak"\nurl = "{receiver_url}"\nevents = ["*"]\n'
    )
    (root / "cms.toml").write_text(config, encoding="utf-8")
    return root


def paced(rate: float, deadline: float, stop: threading.Event) -> itertools.count[int]:
    """Yield ticks at `rate` per second until the deadline (a late tick is not made up twice)."""
    interval = 1.0 / rate
    next_at = time.monotonic()
    for tick in itertools.count():
        if stop.is_set() or time.monotonic() >= deadline:
            return
        yield tick
        next_at = max(next_at + interval, time.monotonic() - interval)
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def _request(client: httpx.Client, tally: Tally, method: str, url: str, **kwargs: object) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        with tally.lock:
            tally.errors[type(exc).__name__] += 1
        return None
    tally.answer(method, url, response, time.monotonic() - started)
    return response


def reader(base: str, token: str, rate: float, deadline: float, stop: threading.Event, tally: Tally, n: int) -> None:
    rng = random.Random(100 + n)
    paths = [
        "/api/v1/posts?per_page=20&sort=-published_at",
        "/api/v1/posts?tag={tag}&per_page=10",
        "/api/v1/posts?search={word}",
        "/api/v1/posts/{slug}",
        "/api/v1/categories",
        "/api/v1/health",
    ]
    words = ["coffee", "espresso", "water", "grind", "kettle", "roast", "bean", "filter"]
    with httpx.Client(base_url=base, headers={"X-API-Key": token}, timeout=30) as client:
        listed = client.get("/api/v1/posts", params={"per_page": 100, "fields": "slug,tags"}).json()["data"]
        slugs = [d["slug"] for d in listed] or ["missing"]
        tags = sorted({t for d in listed for t in (d.get("tags") or [])}) or ["bench"]
        for _ in paced(rate, deadline, stop):
            path = rng.choice(paths).format(tag=rng.choice(tags), word=rng.choice(words), slug=rng.choice(slugs))
            _request(client, tally, "GET", path)


def writer(base: str, token: str, rate: float, deadline: float, stop: threading.Event, tally: Tally) -> None:
    """Creates, title patches and permanent deletes of its own posts, so the site keeps its size:
    memory that grows then is a leak, not more content."""
    rng = random.Random(2)
    mine: list[str] = []
    with httpx.Client(base_url=base, headers={"X-API-Key": token}, timeout=30) as client:
        for tick in paced(rate, deadline, stop):
            if len(mine) > OWN_POSTS:
                doc_id = mine.pop(0)
                response = _request(client, tally, "DELETE", f"/api/v1/posts/{doc_id}", params={"permanent": "true"})
                if response is not None and response.status_code == 204:
                    with tally.lock:
                        tally.written.pop(doc_id, None)
                        tally.deleted.add(doc_id)
                continue
            if mine and rng.random() < 0.3:
                doc_id = rng.choice(mine)
                title = f"Soak patched {tick}"
                response = _request(client, tally, "PATCH", f"/api/v1/posts/{doc_id}", json={"title": title})
                if response is not None and response.status_code == 200:
                    with tally.lock:
                        tally.written[doc_id] = title
                continue
            title = f"Soak post {tick}"
            body = {"title": title, "content": f"Written by the soak, tick {tick}.", "status": "published"}
            response = _request(client, tally, "POST", "/api/v1/posts", json=body)
            if response is not None and response.status_code == 201:
                doc_id = response.json()["data"]["id"]
                mine.append(doc_id)
                with tally.lock:
                    tally.written[doc_id] = title


_TITLE_LINE = re.compile(r"^title: .*$", re.MULTILINE)


def hand_editor(posts: list[Path], rate: float, deadline: float, stop: threading.Event, tally: Tally) -> None:
    rng = random.Random(3)
    for tick in paced(rate, deadline, stop):
        path = rng.choice(posts)
        title = f"Soak hand edit {tick}"
        text = path.read_text(encoding="utf-8")
        path.write_text(_TITLE_LINE.sub(f"title: {title}", text, count=1), encoding="utf-8")  # as an editor saves
        with tally.lock:
            tally.edited[path] = title


def builder(site: Path, every: float, deadline: float, stop: threading.Event, tally: Tally) -> None:
    while not stop.wait(every) and time.monotonic() < deadline:
        done = subprocess.run(
            [sys.executable, "-m", "cms", "build", "--site", str(site), "--quiet"],
            capture_output=True,
            timeout=600,
        )
        with tally.lock:
            tally.builds.append(done.returncode)
            if done.returncode:
                tally.server_errors.append(
                    f"cms build exited {done.returncode}: {done.stderr.decode(errors='replace')[-800:]}"
                )


def sampler(pid: int, started: float, deadline: float, stop: threading.Event, tally: Tally) -> None:
    server = psutil.Process(pid)
    while not stop.wait(5.0) and time.monotonic() < deadline:
        try:
            processes = [server, *server.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in processes if p.is_running())
            fds = server.num_fds()
        except psutil.Error:
            return
        with tally.lock:
            tally.samples.append((time.monotonic() - started, rss, fds))


def _reply(rng: random.Random, lock: threading.Lock) -> object:
    def respond(hit: Hit) -> Reply | int:
        with lock:
            roll = rng.random()
        if roll < 0.03:
            return Reply(200, delay=HANG_S)  # hangs past the timeout: a failed attempt
        return 500 if roll < 0.36 else 200

    return respond


def _id_of(path: Path) -> str:
    match = re.search(r"^id: ['\"]?([0-9A-Za-z]+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, path
    return match.group(1)


def check_writes(base: str, token: str, site: Path, tally: Tally) -> tuple[int, list[str]]:
    """(writes checked, problems): every acknowledged write on disk and in the index."""
    problems: list[str] = []
    expected = dict(tally.written)
    expected.update({_id_of(path): title for path, title in tally.edited.items()})
    on_disk: dict[str, str] = {}
    for path in (site / "content" / "posts").glob("*.md"):
        text = path.read_text(encoding="utf-8")
        match = re.search(r"^id: ['\"]?([0-9A-Za-z]+)", text, re.MULTILINE)
        if match:
            on_disk[match.group(1)] = text
    deadline = time.monotonic() + SETTLE_S
    with httpx.Client(base_url=base, headers={"X-API-Key": token}, timeout=30) as client:
        for doc_id, title in expected.items():
            if doc_id not in on_disk or title not in on_disk[doc_id]:
                problems.append(f"{doc_id}: {title!r} is not on disk")
                continue
            while True:  # the watcher may still be applying the last hand edits
                answer = client.get(f"/api/v1/posts/{doc_id}")
                if answer.status_code == 200 and answer.json()["data"]["title"] == title:
                    break
                if time.monotonic() > deadline:
                    problems.append(f"{doc_id}: the API answers {answer.status_code} without {title!r}")
                    break
                time.sleep(0.1)
        for doc_id in tally.deleted:
            if doc_id in on_disk:
                problems.append(f"{doc_id}: deleted (204) but still on disk")
            elif client.get(f"/api/v1/posts/{doc_id}").status_code != 404:
                problems.append(f"{doc_id}: deleted (204) but the API still answers it")
    return len(expected) + len(tally.deleted), problems


def check_deliveries(site: Path, receiver: Receiver) -> tuple[Counter[str], list[str]]:
    """(outbox rows by status, problems) once nothing is pending (bounded wait)."""
    db = site / ".cms" / "state.db"
    deadline = time.monotonic() + SETTLE_S
    while True:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            statuses = Counter(dict(con.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()))
            if not statuses.get("pending") or time.monotonic() > deadline:
                failed_without_reason = con.execute(
                    "SELECT COUNT(*) FROM outbox o WHERE status = 'failed' AND NOT EXISTS "
                    "(SELECT 1 FROM attempts a WHERE a.outbox_id = o.id AND (a.error IS NOT NULL OR a.status_code))"
                ).fetchone()[0]
                delivered = {row[0] for row in con.execute("SELECT event_id FROM outbox WHERE status = 'delivered'")}
                break
        time.sleep(0.5)
    problems = []
    if statuses.get("pending"):
        problems.append(f"{statuses['pending']} deliveries still pending after {SETTLE_S:g} s")
    if failed_without_reason:
        problems.append(f"{failed_without_reason} failed deliveries without a reason in the log")
    seen = {hit.headers.get("webhook-id") for hit in receiver.snapshot()}
    unseen = delivered - seen
    if unseen:
        problems.append(f"{len(unseen)} deliveries marked delivered that the receiver never saw")
    return statuses, problems


def run(minutes: float, posts: int, reads: float, writes: float, edits: float, build_every: float) -> int:
    tally = Tally()
    rng_lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="cms-soak-") as tmp, Receiver(_reply(random.Random(4), rng_lock)) as hook:
        site = make_site(Path(tmp) / "site", posts, hook.url)
        token = create_key(site, "admin", "soak")
        port = free_port()
        log = Path(tmp) / "server.log"
        with open(log, "wb") as stderr:
            server = subprocess.Popen(
                serve_command(site, port, "--no-preview", "--log-level", "warning"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            wait_healthy(server, port)
            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            deadline = started + minutes * 60
            stop = threading.Event()
            corpus_posts = sorted((site / "content" / "posts").glob("*.md"))
            threads = [
                *(
                    threading.Thread(target=reader, args=(base, token, reads / READERS, deadline, stop, tally, n))
                    for n in range(READERS)
                ),
                threading.Thread(target=writer, args=(base, token, writes, deadline, stop, tally)),
                threading.Thread(target=hand_editor, args=(corpus_posts, edits, deadline, stop, tally)),
                threading.Thread(target=builder, args=(site, build_every, deadline, stop, tally)),
                threading.Thread(target=sampler, args=(server.pid, started, deadline, stop, tally)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(minutes * 60 + 900)
            stop.set()
            load_seconds = time.monotonic() - started
            checked, write_problems = check_writes(base, token, site, tally)
            deliveries, delivery_problems = check_deliveries(site, hook)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        stderr_text = log.read_text(errors="replace")
    return report(tally, load_seconds, checked, write_problems, deliveries, delivery_problems, stderr_text)


def report(
    tally: Tally,
    seconds: float,
    checked: int,
    write_problems: list[str],
    deliveries: Counter[str],
    delivery_problems: list[str],
    stderr_text: str,
) -> int:
    requests = sum(tally.statuses.values())
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    latencies = sorted(tally.latencies) or [0.0]
    print(f"load: {seconds:.0f} s, {requests} requests ({requests / max(seconds, 1):.0f}/s)")
    print(f"statuses: {dict(sorted(tally.statuses.items()))}, transport errors: {dict(tally.errors)}")
    print(
        f"latency: median {statistics.median(latencies) * 1000:.1f} ms, p99 "
        f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
    )
    print(f"builds: {len(tally.builds)}, exit codes {Counter(tally.builds)}")
    print(
        f"writes checked: {checked} ({len(tally.written)} API-written posts, {len(tally.deleted)} deleted, "
        f"{len(tally.edited)} files edited by hand)"
    )
    print(f"deliveries: {dict(deliveries)}")
    after_first = [s for s in tally.samples if s[0] >= 60] or tally.samples
    rss_growth = fd_growth = 0.0
    if after_first:
        base_rss, base_fds = after_first[0][1], after_first[0][2]
        last = tally.samples[-1]
        rss_growth = (last[1] - base_rss) / base_rss
        fd_growth = last[2] - base_fds
        print(
            f"rss: {base_rss / 2**20:.0f} MB after the first minute, {last[1] / 2**20:.0f} MB at the end "
            f"({rss_growth:+.1%}); peak {max(s[1] for s in tally.samples) / 2**20:.0f} MB"
        )
        print(
            f"open fds: {base_fds} after the first minute, {last[2]} at the end; max {max(s[2] for s in tally.samples)}"
        )
    tracebacks = stderr_text.count("Traceback")
    checks = [
        ("0 answers >= 500", server_errors == 0, f"{server_errors}: {tally.server_errors[:3]}"),
        ("every build exited 0", all(code == 0 for code in tally.builds), "; ".join(tally.server_errors)),
        ("0 lost writes", not write_problems, "; ".join(write_problems[:5])),
        (f"RSS growth < {RSS_GROWTH_MAX:.0%}", rss_growth < RSS_GROWTH_MAX, f"{rss_growth:+.1%}"),
        (f"open fds flat (<= +{FD_GROWTH_MAX})", fd_growth <= FD_GROWTH_MAX, f"{fd_growth:+.0f}"),
        ("every delivery delivered or failed with a reason", not delivery_problems, "; ".join(delivery_problems)),
        ("no traceback in the server log", tracebacks == 0, f"{tracebacks}"),
    ]
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + ("" if ok else f"  ({detail})"))
    return 0 if all(ok for _, ok, _ in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--reads", type=float, default=200.0, help="reads per second")
    parser.add_argument("--writes", type=float, default=5.0, help="API writes per second")
    parser.add_argument("--edits", type=float, default=1.0, help="hand edits per second")
    parser.add_argument("--build-every", type=float, default=60.0, help="seconds between builds")
    args = parser.parse_args(argv)
    return run(args.minutes, args.posts, args.reads, args.writes, args.edits, args.build_every)


if __name__ == "__main__":
    sys.exit(main())
