"""API throughput and latency on a generated corpus, against a real `cms serve` on 127.0.0.1.

    python -m bench.api --posts 10000 [--duration 10] [--connections 32] [--against DIR] [--rounds 3]

`--against DIR`: a checkout of another revision (`git worktree add /tmp/before HEAD~3`), served
beside this one on the same corpus; each figure is measured on both, one after the other, and
printed as the ratio this/that (the before-and-after of a change, in one run).

Starts the server in a subprocess (one uvicorn worker, watcher on, rate limits off so the load
generator measures the server, not the limiter), then loads it from another process: `wrk` when it
is installed (Debian package `wrk`), otherwise a bounded asyncio client in a subprocess. Prints
requests/s and latency percentiles for: a hello endpoint (/api/v1/health), a list with filter +
sort + page, a get by slug, and a full-text search; then the ratio of each to hello.
Targets (issue: REST API): list/get throughput >= 50% of hello's; p99 <= 25 ms at 32 connections.
Also measures, in-process, what authentication + rate limiting add to a list request (target
<= 0.3 ms median), and the cost of a list computed from scratch: wrk repeats one URL, which the
server answers from its ready answers (cms/api/answers.py) until the index changes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import generate

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / ".corpus"


def corpus(posts: int) -> Path:
    folder = CORPUS / f"api-{posts}"
    if not (folder / "cms.toml").exists():
        generate(folder, posts, seed=1)
    config = (folder / "cms.toml").read_text()
    if "[api]" not in config:
        (folder / "cms.toml").write_text(
            config + "\n[api]\nrate_limit_per_minute = 100000000\nrate_limit_per_day = 1000000000\n"
        )
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(site: Path, scopes: str = "admin", name: str = "bench") -> str:
    """A key made by the CLI, as an operator would: `cms keys create`."""
    out = subprocess.run(
        [sys.executable, "-m", "cms", "keys", "create", "--name", name, "--scopes", scopes, "--site", str(site)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    """Wait until the server answers /api/v1/health; kill it and exit if it never does."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start within {timeout:g} s")


def serve_command(site: Path, port: int, *args: str) -> list[str]:
    """`python -m cms serve` on 127.0.0.1 for a site folder (the benches' and the end-to-end tests')."""
    return [
        sys.executable,
        "-m",
        "cms",
        "serve",
        "--site",
        str(site),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *args,
    ]


def start_server(site: Path, port: int, code: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`cms serve` (API only) on a corpus, with an admin key; returns once it answers. `code`: the
    checkout whose `cms` package runs (first on the path), instead of this one."""
    token = create_key(site)
    env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        serve_command(site, port, "--no-preview", "--log-level", "warning"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    wait_healthy(proc, port)
    return proc, token


def wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "timeout",
            str(seconds + 30),
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"X-API-Key: {token}",
            url,
        ],
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


PY_CLIENT = r"""
import asyncio, json, sys, time, httpx
url, token, seconds, conns = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
lat, bad = [], 0
async def worker(client, stop):
    global bad
    while time.monotonic() < stop:
        t = time.perf_counter()
        r = await client.get(url, headers={"X-API-Key": token})
        lat.append((time.perf_counter() - t) * 1000)
        if r.status_code >= 300: bad += 1
async def main():
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        stop = time.monotonic() + seconds
        await asyncio.gather(*(worker(client, stop) for _ in range(conns)))
asyncio.run(main())
lat.sort()
print(json.dumps({"rps": len(lat) / seconds, "p50": lat[len(lat)//2], "p99": lat[int(len(lat)*0.99)], "non2xx": bad}))
"""


def py_client(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PY_CLIENT, url, token, str(seconds), str(connections)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


# Median microseconds of each request called as ASGI in one process, ready answers off (each list
# computed): the code's own cost without the network or the load generator. Run by `python -c`
# under the checkout to measure, so it imports nothing from this one.
ASGI_MEDIANS = r"""
import asyncio, json, shutil, statistics, sys, tempfile, time
from pathlib import Path
from cms.api.answers import ReadyAnswers
from cms.api.app import create_app
from cms.config import Site
site, rounds, paths = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
tmp = Path(tempfile.mkdtemp())
shutil.copytree(site / "content", tmp / "content")
shutil.copy(site / "cms.toml", tmp / "cms.toml")
app = create_app(Site.load(tmp))
app.state.services.index.search.wait_ready()
app.state.services.answers = ReadyAnswers(max_bytes=0)
token = app.state.services.keys.create("bench", ["read"]).token.encode()
async def get(path, query):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1"), (b"x-api-key", token)],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    status = 0
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
    await app(scope, receive, send)
    if status != 200:
        raise SystemExit(f"{path}?{query} answered {status}")
async def measure():
    out = {}
    for path, query in paths:
        for _ in range(50):
            await get(path, query)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            await get(path, query)
            times.append((time.perf_counter() - t) * 1e6)
        out[f"{path}?{query}"] = statistics.median(times)
    return out
print(json.dumps(asyncio.run(measure())))
shutil.rmtree(tmp)
"""


def asgi_medians(site: Path, code: Path | None, paths: list[tuple[str, str]], rounds: int = 1500) -> dict[str, float]:
    """Median µs per request of `code`'s checkout (None: this one), in a process of its own."""
    env = None if code is None else {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", ASGI_MEDIANS, str(site), str(rounds), json.dumps(paths)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def in_process(site: Path, rounds: int = 2000) -> tuple[float, float, float]:
    """Median ms of an in-process list request: without a key, with one (auth + rate limiting), and
    with one but no ready answer kept (the list computed each time). The app is called as ASGI
    directly: a test client's thread hand-off would cost more than the request itself."""
    import asyncio

    from cms.api.answers import ReadyAnswers
    from cms.api.app import create_app
    from cms.config import Site

    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(site / "content", tmp / "content")
    (tmp / "cms.toml").write_text(
        (site / "cms.toml").read_text().split("[api]")[0]
        + '\n[api]\npublic_types = ["posts"]\nrate_limit_per_minute = 1000000\n'
        "rate_limit_per_day = 100000000\n"
    )
    app = create_app(Site.load(tmp))
    app.state.services.index.search.wait_ready()  # not the background full-text fill
    token = app.state.services.keys.create("bench", ["read"]).token

    async def get(headers: list[tuple[bytes, bytes]]) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/posts",
            "raw_path": b"/api/v1/posts",
            "root_path": "",
            "query_string": b"sort=-published_at&page=2&per_page=20",
            "headers": [(b"host", b"127.0.0.1"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        status = 0

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]

        await app(scope, receive, send)
        return status

    async def median(headers: list[tuple[bytes, bytes]]) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            if await get(headers) != 200:
                raise SystemExit("the in-process list request failed")
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    async def measure() -> tuple[float, float, float]:
        keyed = [(b"x-api-key", token.encode())]
        await median([])  # warm up
        anonymous = await median([])
        with_key = await median(keyed)
        # The same request computed every time (parse, query, serialize), as after each index
        # change: a store that keeps nothing.
        app.state.services.answers = ReadyAnswers(max_bytes=0)
        computed = await median(keyed)
        return anonymous, with_key, computed

    try:
        return asyncio.run(measure())
    finally:
        shutil.rmtree(tmp)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median requests/s (a 2-core machine's noise is +-15% from run to run)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def compare_in_process(site: Path, against: Path, targets: dict[str, str], rounds: int) -> None:
    """The same requests called as ASGI in one process per checkout, in turns: the code's own cost,
    steadier than a load over loopback on a shared machine."""
    paths = []
    for url in targets.values():
        path, _, query = url.split(":", 2)[2].partition("/")[2].partition("?")
        paths.append(("/" + path, query))
    mine: dict[str, list[float]] = {}
    others: dict[str, list[float]] = {}
    for _ in range(max(1, rounds)):
        for key, value in asgi_medians(site, None, paths).items():
            mine.setdefault(key, []).append(value)
        for key, value in asgi_medians(site, against, paths).items():
            others.setdefault(key, []).append(value)
    print(f"\nin-process, ready answers off: median µs per request, this vs {against.name} (lower is better)")
    for (name, _), key in zip(targets.items(), mine, strict=True):
        a, b = statistics.median(mine[key]), statistics.median(others[key])
        print(f"{name:<24} {a:>8.1f} µs  {b:>8.1f} µs   this/that time {a / b:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--against", type=Path, help="a checkout of another revision, measured beside this one")
    parser.add_argument("--rounds", type=int, default=1, help="runs per figure; the median run is kept")
    args = parser.parse_args()
    site = corpus(args.posts)
    port = free_port()
    proc, token = start_server(site, port)
    other = None
    if args.against is not None:
        other_port = free_port()
        other = (other_port, *start_server(site, other_port, args.against.resolve()))
    load = wrk if shutil.which("wrk") else py_client
    print(
        f"server: {args.posts} posts, 1 worker; load: {'wrk' if load is wrk else 'python asyncio client'}, "
        f"{args.connections} connections, {args.duration} s each"
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    slug = sorted((site / "content" / "posts").glob("*.md"))[
        len(list((site / "content" / "posts").glob("*.md"))) // 2
    ].stem
    targets = {
        "hello (health)": f"{base}/health",
        # (a category of the generated corpus with ~550 posts: page 3 of it, 20 full posts, ~170 KB)
        "list filter+sort+page": f"{base}/posts?category=backend&sort=-published_at&page=3",
        "list, no bodies": f"{base}/posts?category=backend&sort=-published_at&page=3&fields=-content",
        "get by slug": f"{base}/posts/by-slug/{slug}",
        "full-text search": f"{base}/posts?search=system+design&per_page=10",
    }
    results, theirs = {}, {}
    try:
        # Each server filled its full-text index and answered every target once before any figure:
        # the second server's start must not steal the first one's measurement.
        for url in targets.values():
            load(url, token, 2, args.connections)
            if other is not None:
                load(url.replace(f":{port}/", f":{other[0]}/"), other[2], 2, args.connections)
        for name, url in targets.items():
            mine, others = [], []
            for _ in range(max(1, args.rounds)):  # in turns, so that a noisy moment hits both
                mine.append(load(url, token, args.duration, args.connections))
                if other is not None:
                    other_url = url.replace(f":{port}/", f":{other[0]}/")
                    others.append(load(other_url, other[2], args.duration, args.connections))
            results[name] = r = median_run(mine)
            print(
                f"{name:<24} {r['rps']:>9.0f} req/s  p50 {r['p50']:>6.2f} ms  p99 {r['p99']:>6.2f} ms  "
                f"non-2xx {int(r['non2xx'])}"
            )
            if others:
                theirs[name] = t = median_run(others)
                print(
                    f"{'  ' + args.against.name:<24} {t['rps']:>9.0f} req/s  p50 {t['p50']:>6.2f} ms  "
                    f"p99 {t['p99']:>6.2f} ms  non-2xx {int(t['non2xx'])}   this/that {r['rps'] / t['rps']:.3f}x"
                )
    finally:
        for server in [proc, *([other[1]] if other else [])]:
            server.terminate()
            server.wait(10)
    if theirs:
        print(f"\nthis revision / {args.against} (requests/s; >= 0.95 keeps the figures within 5%)")
        for name, r in results.items():
            print(f"{name:<24} {r['rps'] / theirs[name]['rps']:>6.3f}x")
    hello = results["hello (health)"]["rps"]
    print("\nratio to hello (target >= 0.50 for list and get); p99 target <= 25 ms")
    for name, r in results.items():
        print(f"{name:<24} {r['rps'] / hello:>5.2f}x   p99 {r['p99']:.2f} ms {'ok' if r['p99'] <= 25 else 'OVER'}")
    if args.against is not None:
        compare_in_process(site, args.against.resolve(), targets, args.rounds)
    anonymous, keyed, computed = in_process(site)
    print(
        f"\nauth + rate limit, in-process list request: {anonymous:.3f} ms without a key (public type), "
        f"{keyed:.3f} ms with a key: +{keyed - anonymous:.3f} ms (target <= 0.3 ms)\n"
        f"the same list computed each time (no ready answer, as right after an index change): {computed:.3f} ms"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
