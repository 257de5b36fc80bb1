"""Overload and slow clients against a real `cms serve` (reliability rows T22 and T23).

    python -m bench.overload [--posts 1000]

T22: `wrk -c256` against a server started with `--limit-concurrency 128`-like settings (the CLI's
default is 256; this script starts uvicorn's limit at 128 through the serve API): only 2xx, 503 or
429 answers, the server's RSS stays under 500 MB, and p99 at 32 connections is back under 25 ms
within 5 s after the overload stops.
T23: 200 connections send their request headers one byte a second for 30 s while a probe GETs
/api/v1/health ten times a second: probe p99 <= 100 ms, server RSS growth <= 50 MB, and every slow
connection is closed by the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from bench.api import corpus, create_key, free_port, wait_healthy, wrk

SERVER = r"""
import sys
from cms.config import Site
from cms.serve import serve
serve(Site.load(sys.argv[1]), port=int(sys.argv[2]), preview=False, log_level="warning", limit_concurrency=128)
"""


def start(site: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(site), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_healthy(proc, port)
    return proc


def statuses_under_overload(url: str, token: str, seconds: int) -> dict[int, int]:
    """Status counts with 256 concurrent clients (httpx, bounded), to see exactly which codes come back."""
    counts: dict[int, int] = {}

    async def worker(client: httpx.AsyncClient, stop: float) -> None:
        while time.monotonic() < stop:
            try:
                r = await client.get(url, headers={"X-API-Key": token})
                counts[r.status_code] = counts.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                counts[-1] = counts.get(-1, 0) + 1

    async def main() -> None:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            stop = time.monotonic() + seconds
            await asyncio.gather(*(worker(client, stop) for _ in range(256)))

    asyncio.run(main())
    return counts


async def slow_clients(port: int, count: int, seconds: float) -> int:
    """Open `count` connections that dribble a request line one byte a second; how many the server closed."""
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    closed = 0

    async def one() -> None:
        nonlocal closed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        stop = time.monotonic() + seconds
        try:
            for byte in request:
                if time.monotonic() > stop:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)
                if reader.at_eof():
                    closed += 1
                    return
        except (ConnectionError, OSError):
            closed += 1
            return
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return closed


async def probe(port: int, seconds: float) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(timeout=5) as client:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            started = time.perf_counter()
            await client.get(f"http://127.0.0.1:{port}/api/v1/health")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    site = corpus(args.posts)
    token = create_key(site, "read", "overload")
    port = free_port()
    proc = start(site, port)
    server = psutil.Process(proc.pid)
    url = f"http://127.0.0.1:{port}/api/v1/posts?sort=-published_at&page=3"
    try:
        rss_before = server.memory_info().rss / 2**20
        print("T22 overload: 256 clients against limit-concurrency 128")
        counts = statuses_under_overload(url, token, args.seconds)
        rss_peak = server.memory_info().rss / 2**20
        other_5xx = sum(n for code, n in counts.items() if code >= 500 and code != 503)
        print(f"  status counts: {dict(sorted(counts.items()))}; 5xx other than 503: {other_5xx}")
        print(f"  RSS {rss_before:.0f} MB before, {rss_peak:.0f} MB after overload (limit 500 MB)")
        if shutil.which("wrk"):
            time.sleep(5)
            after = wrk(url, token, 10, 32)
            print(f"  5 s after: wrk -c32 p99 {after['p99']:.2f}ms (target <= 25 ms)")
        print("T23 slow clients: 200 connections at 1 byte/s for 30 s, health probe at 10/s")
        rss_before = server.memory_info().rss / 2**20

        async def both() -> tuple[int, list[float]]:
            slow = asyncio.create_task(slow_clients(port, 200, 30))
            lat = await probe(port, 30)
            return await slow, lat

        closed, latencies = asyncio.run(both())
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        rss_after = server.memory_info().rss / 2**20
        print(
            f"  probe: {len(latencies)} requests, median {statistics.median(latencies):.1f} ms, "
            f"p99 {p99:.1f} ms (target <= 100 ms)"
        )
        print(
            f"  RSS growth {rss_after - rss_before:.1f} MB (target <= 50 MB); slow connections closed by the "
            f"server before the end: {closed} of 200"
        )
    finally:
        proc.terminate()
        proc.wait(15)


if __name__ == "__main__":
    main()
