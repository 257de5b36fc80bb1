"""T3: API clients and a person editing files by hand, on the same documents, against a real server.

CI runs a small storm (4 clients x 60 writes, 80 hand edits); CMS_STORM_SCALE=20 runs the full one.
What must hold: no 5xx; no hand edit is ever lost (each appends a marker line to the body, and
every marker is still there at the end, because API writes splice only the fields they change into
the file as it is on disk); every API write that succeeded was based on the version its If-Match
named; after quiescence the index equals the disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import create_key, launch

SCALE = int(os.environ.get("CMS_STORM_SCALE", "1"))
DOCS = 12


def _etag(data: bytes) -> str:
    return "sha256-" + hashlib.sha256(data).hexdigest()


@pytest.mark.timeout(300)
def test_storm_of_api_writes_and_hand_edits(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "content" / "posts").mkdir(parents=True)
    (site / "cms.toml").write_text(
        '[site]\ntitle = "Storm"\ntimezone = "UTC"\n\n[api]\n'
        "rate_limit_per_minute = 1000000\nrate_limit_per_day = 100000000\n"
    )
    for i in range(DOCS):
        (site / "content" / "posts" / f"doc-{i}.md").write_text(
            f"---\ntitle: Doc {i}\ndate: 2025-01-01T00:00:00Z\n---\nBody of doc {i}.\n"
        )
    token = create_key(site, "read,write,delete")
    server = launch(site, tmp_path / "server.log", "--no-preview")
    base = f"{server.base}/api/v1"
    headers = {"X-API-Key": token}
    statuses: list[int] = []
    markers: dict[int, list[str]] = {i: [] for i in range(DOCS)}
    lock = threading.Lock()
    try:

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(timeout=30, headers=headers) as http:
                for n in range(60 * SCALE):
                    i = rng.randrange(DOCS)
                    roll = rng.random()
                    if roll < 0.8:
                        got = http.get(f"{base}/posts/by-slug/doc-{i}")
                        etag = got.headers.get("etag")
                        r = http.patch(
                            f"{base}/posts/doc-{i}",
                            headers={"If-Match": etag or "*"},
                            json={"title": f"Doc {i} v{seed}-{n}"},
                        )
                    elif roll < 0.9:
                        r = http.post(f"{base}/posts", json={"title": f"New {seed}-{n}", "content": "x"})
                    else:
                        r = http.post(f"{base}/posts/doc-{i}/publish")
                    with lock:
                        statuses.append(r.status_code)

        def editor() -> None:
            rng = random.Random(99)
            for n in range(80 * SCALE):
                i = rng.randrange(DOCS)
                path = site / "content" / "posts" / f"doc-{i}.md"
                marker = f"hand-edit {n}"
                text = path.read_text()
                new = text.rstrip("\n") + f"\n\n{marker}\n"
                if n % 2:  # editor style: write a temp file, rename it over the document
                    tmp = path.with_name(f".doc-{i}.md.swp")
                    tmp.write_text(new)
                    os.replace(tmp, path)
                else:
                    path.write_text(new)
                markers[i].append(marker)
                time.sleep(rng.uniform(0, 0.01))

        threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
        threads.append(threading.Thread(target=editor))
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not any(t.is_alive() for t in threads)

        assert not [s for s in statuses if s >= 500], "server errors"
        assert {s for s in statuses} <= {200, 201, 409, 412}
        # The editor may itself overwrite a concurrent API write (it reads, then writes, like any editor);
        # the CMS never drops a hand edit: every marker written by hand is still in its file.
        for i, written in markers.items():
            body = (site / "content" / "posts" / f"doc-{i}.md").read_text()
            missing = [m for m in written if m not in body]
            assert not missing, f"doc-{i}: hand edits lost: {missing[:3]}"
        # Index == disk after quiescence (the watcher applies the last hand edits).
        time.sleep(1.0)
        with httpx.Client(timeout=10, headers=headers) as http:
            for i in range(DOCS):
                disk = (site / "content" / "posts" / f"doc-{i}.md").read_bytes()
                served = http.get(f"{base}/posts/by-slug/doc-{i}")
                assert served.headers["etag"] == f'"{_etag(disk)}"', f"doc-{i}: index differs from disk"
        print(
            f"storm: {len(statuses)} API writes, {statuses.count(412)} x 412, "
            f"{sum(len(m) for m in markers.values())} hand edits"
        )
    finally:
        server.stop()
