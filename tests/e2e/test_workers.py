"""T17: two uvicorn worker processes share one rate limit through the site's state store."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, create_key, launch


@pytest.mark.timeout(120)
def test_two_workers_share_a_60_per_minute_limit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REPO / "content", site / "content")
    (site / "cms.toml").write_text((REPO / "cms.toml").read_text() + "\n[api]\nrate_limit_per_minute = 60\n")
    token = create_key(site, "read")
    server = launch(site, tmp_path / "server.log", "--workers", "2", "--no-preview", "--no-watch", timeout=60)
    try:
        base = server.base
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
        server.stop()
