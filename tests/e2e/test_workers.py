"""T17: two uvicorn worker processes share one rate limit through the site's state store."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_two_workers_share_a_60_per_minute_limit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REPO / "content", site / "content")
    (site / "cms.toml").write_text((REPO / "cms.toml").read_text() + "\n[api]\nrate_limit_per_minute = 60\n")
    out = subprocess.run(
        [sys.executable, "-m", "cms", "keys", "create", "--name", "t17", "--scopes", "read", "--site", str(site)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    token = re.search(r"key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cms",
            "serve",
            "--site",
            str(site),
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-preview",
            "--no-watch",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the two-worker server did not start")
        # Stay inside one minute window: if fewer than 20 s are left in this one, wait for the next.
        if time.time() % 60 > 40:
            time.sleep(60 - time.time() % 60 + 0.2)
        statuses: list[int] = []
        remaining: list[int] = []
        for _ in range(150):
            # A new connection each time, so the kernel spreads requests over both workers.
            with httpx.Client(timeout=5) as client:
                r = client.get(f"{base}/api/v1/posts?per_page=1", headers={"X-API-Key": token, "Connection": "close"})
            statuses.append(r.status_code)
            if r.status_code == 200:
                remaining.append(int(r.headers["x-ratelimit-remaining"]))
            else:
                assert r.status_code == 429
                assert 1 <= int(r.headers["retry-after"]) <= 60
        assert statuses.count(200) == 60, statuses
        assert remaining == sorted(remaining, reverse=True)  # never increases inside the window
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
