"""A real `python -m cms serve` on 127.0.0.1 over a temporary copy of the demo site.

The server runs in its own process with its stderr in a file (a pipe nobody reads would fill up
and block it). It is always stopped: SIGINT first, as a person's Ctrl-C, then SIGKILL if it has not
exited within 10 s.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.api import serve_command
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0  # a hang guard: a busy shared machine may take a while to start Python
STOP_TIMEOUT_S = 10.0


def copy_demo(root: Path) -> Path:
    """The demo site (content/ and cms.toml) under `root`, with rate limits raised for a test's bursts."""
    shutil.copytree(REPO / "content", root / "content")
    toml = (REPO / "cms.toml").read_text()
    limits = "rate_limit_per_minute = 100000\nrate_limit_per_day = 1000000\n"
    toml = toml.replace("[api]\n", "[api]\n" + limits, 1) if "\n[api]\n" in toml else toml + "\n[api]\n" + limits
    (root / "cms.toml").write_text(toml)
    return root


def create_key(site: Path, scopes: str) -> str:
    """A key made by the CLI, as an operator would: `cms keys create`."""
    out = subprocess.run(
        [sys.executable, "-m", "cms", "keys", "create", "--site", str(site), "--name", "e2e", "--scopes", scopes],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    match = re.search(r"^key:\s+(cms_\S+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


@dataclass
class Server:
    site: Path
    base: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def content(self) -> Path:
        return self.site / "content"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"X-API-Key": self.token}, timeout=10)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> tuple[int | None, float]:
        """SIGINT, then wait up to 10 s: (exit code or None if it had to be killed, seconds taken)."""
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            code: int | None = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            code = None
        return code, time.monotonic() - started


def launch(site: Path, log: Path, *args: str, timeout: float = START_TIMEOUT_S) -> Server:
    """Start `python -m cms serve --site SITE --port <free> --host 127.0.0.1 ARGS` and wait for /health.

    The token is left empty: create one with `create_key` before launching when the test needs it."""
    port = free_port()
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            serve_command(site, port, *args),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    running = Server(site, f"http://127.0.0.1:{port}", "", process, log)
    try:
        _wait_healthy(running, timeout)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_healthy(server: Server, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"cms serve exited with {server.process.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(f"{server.base}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"cms serve did not answer /api/v1/health within {timeout} s:\n{server.stderr()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One running server for the module; the last test may stop it itself to check the exit."""
    root = tmp_path_factory.mktemp("e2e")
    site = copy_demo(root / "site")
    token = create_key(site, "admin")
    running = launch(site, root / "server.log")
    running.token = token
    try:
        yield running
    finally:
        code, _ = running.stop()
        assert code is not None, f"cms serve ignored SIGINT for {STOP_TIMEOUT_S} s and was killed"
