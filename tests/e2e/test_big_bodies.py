"""T11: 200 MB bodies are refused with 413 without being buffered (server RSS growth <= 30 MB).

Raw sockets, so the test sees exactly when the server answers: before the client has finished
sending (the body is refused while it streams in) and without the server's memory following the
body. Chunked (no Content-Length) and declared-length uploads, multipart and base64 JSON.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from .conftest import copy_demo, create_key, launch

TOTAL = 200 * 1024 * 1024
CHUNK = 256 * 1024


class RssSampler:
    """Peak RSS of a process, sampled every 10 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def growth_mb(self) -> float:
        self._stop.set()
        self._thread.join(2)
        return (self.peak - self.base) / 2**20


PREFIX = {
    "multipart/form-data; boundary=xyz": b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"'
    b"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff",
    "application/json": b'{"filename": "a.jpg", "data": "',
}


def _send_big(port: int, path: str, token: str, content_type: str, *, chunked: bool) -> tuple[int, int]:
    """Stream a 200 MB body (a valid start, then filler); (status the server answered, bytes sent by then)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"X-API-Key: {token}", f"Content-Type: {content_type}"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    payload = b"A" * CHUNK
    prefix = PREFIX[content_type]
    sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n" if chunked else prefix)
    sent = len(prefix)
    try:
        while sent < TOTAL:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the server answered (or closed) before the body was complete
                break
            data = f"{len(payload):x}\r\n".encode() + payload + b"\r\n" if chunked else payload
            sock.sendall(data)
            sent += len(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    deadline = time.monotonic() + 10
    while b"\r\n" not in answer and time.monotonic() < deadline:
        try:
            part = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not part:
            break
        answer += part
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("big")
    site = copy_demo(root / "site")
    token = create_key(site, "admin")
    running = launch(site, root / "server.log", "--no-preview", "--no-watch")
    running.token = token
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/media", "multipart/form-data; boundary=xyz"),
        ("/api/v1/media", "application/json"),
        ("/api/v1/posts", "application/json"),
    ],
    ids=["media-multipart", "media-base64-json", "posts-json"],
)
def test_a_200_mb_body_is_refused_early_without_buffering(
    server,
    path: str,
    content_type: str,  # type: ignore[no-untyped-def]
    chunked: bool,
) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    sampler = RssSampler(server.process.pid)
    status, sent = _send_big(port, path, server.token, content_type, chunked=chunked)
    growth = sampler.growth_mb()
    assert status == 413, f"answered {status} after {sent} bytes"
    assert sent < TOTAL, "the server let the whole body in before answering"
    assert growth <= 30, f"server RSS grew by {growth:.1f} MB"
    site_uploads = Path(server.site) / "uploads"
    assert not [p for p in site_uploads.rglob("*") if p.is_file()] if site_uploads.exists() else True


def _multipart(parts: list[bytes]) -> bytes:
    return b"".join(b"--xyz\r\n" + p + b"\r\n" for p in parts) + b"--xyz--\r\n"


@pytest.mark.timeout(60)
def test_too_many_parts_and_too_many_part_headers_are_400(server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    headers = {"X-API-Key": server.token, "Content-Type": "multipart/form-data; boundary=xyz"}
    field = b'Content-Disposition: form-data; name="alt"\r\n\r\nx'
    many = _multipart([field] * 1001)
    nine = _multipart([b"".join(f"X-Extra-{i}: v\r\n".encode() for i in range(8)) + field])
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for body in (many, nine):
            r = client.post("/api/v1/media", content=body, headers=headers)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "BAD_REQUEST"
