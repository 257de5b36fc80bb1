"""T17: two uvicorn worker processes share one rate limit through the site's state store."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.support import WAIT_TIMEOUT_S

from .conftest import REPO, create_key, launch

LIMIT = 60
REFUSED_ENOUGH = 10  # refusals seen in one window after its last allowed request: the limit held


@pytest.mark.timeout(180)
def test_two_workers_share_a_60_per_minute_limit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(REPO / "content", site / "content")
    (site / "cms.toml").write_text((REPO / "cms.toml").read_text() + f"\n[api]\nrate_limit_per_minute = {LIMIT}\n")
    token = create_key(site, "read")
    server = launch(site, tmp_path / "server.log", "--workers", "2", "--no-preview", "--no-watch", timeout=60)
    try:
        # The limit counts per fixed minute window of the server's real clock, and a run may straddle
        # a window's end. Each answer names its window (X-RateLimit-Reset, the Unix second it ends), so
        # the answers are judged window by window instead of hoping the run fits into one.
        windows: dict[int, list[tuple[int, int]]] = defaultdict(list)  # reset -> [(status, remaining)]
        # Counted, not timed: one window holds at most LIMIT + REFUSED_ENOUGH requests before the loop
        # ends, so a run straddling one boundary needs at most twice that (the timeout guards a hang).
        most = 3 * (LIMIT + REFUSED_ENOUGH)

        def exhausted() -> bool:
            return any([s for s, _ in answers].count(429) >= REFUSED_ENOUGH for answers in windows.values())

        while not exhausted():
            sent = sum(len(answers) for answers in windows.values())
            assert sent < most, f"no window ran out of its {LIMIT} requests: {dict(windows)}"
            # A new connection each time, so the kernel spreads requests over both workers.
            with httpx.Client(timeout=WAIT_TIMEOUT_S) as client:
                r = client.get(
                    f"{server.base}/api/v1/posts?per_page=1", headers={"X-API-Key": token, "Connection": "close"}
                )
            assert r.status_code in (200, 429), r.status_code
            reset, remaining = int(r.headers["x-ratelimit-reset"]), int(r.headers["x-ratelimit-remaining"])
            assert reset % 60 == 0 and int(r.headers["x-ratelimit-limit"]) == LIMIT
            if r.status_code == 429:
                assert 1 <= int(r.headers["retry-after"]) <= 60
            windows[reset].append((r.status_code, remaining))
        for reset, answers in windows.items():
            statuses = [s for s, _ in answers]
            allowed = statuses.count(200)
            # Both workers count into one counter, exactly: the allowed answers of a window come first,
            # and their Remaining goes 59, 58, ... with no gap (a lost count) and no repeat (a double one).
            assert statuses == [200] * allowed + [429] * (len(statuses) - allowed), (reset, statuses)
            assert [rem for _, rem in answers[:allowed]] == list(range(LIMIT - 1, LIMIT - 1 - allowed, -1)), reset
            assert all(rem == 0 for _, rem in answers[allowed:]), reset
            if len(statuses) > LIMIT:
                assert allowed == LIMIT, (reset, statuses)  # a window with more requests let exactly 60 through
    finally:
        server.stop()
