"""`cms serve` stopped by SIGTERM at any moment leaves nothing behind, and frees its port at once.

A real server (started as the other end-to-end tests start it) on a generated site big enough that
both kinds of workers run: the index's parse workers (forked directly while the process has one
thread) and the preview's render workers (from the fork server: by then the server has threads),
while a person edits files by hand. Each round wipes `.cms/` (so the index is parsed and the preview
rendered in full again) and sends SIGTERM at a random moment: starting, loading, rendering or idle.
What must hold every round: the server exits (before a generous deadline: the 5 s of the promise is
a wall-clock figure, measured in the report, not asserted); no process of its tree is left (every
process seen under it, and any process carrying the round's marker in its environment, since an
orphan's parent is no longer the server); no worker ever held the listening socket; the port can be
bound at once; and the resource tracker does not warn of leaked semaphores.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from bench.api import serve_command
from bench.corpus import generate
from cms.content import index as index_module
from cms.media.pool import POOL_WORKERS
from cms.render import build as build_module
from tests.support import free_port, wait_until

ROUNDS = 50
POSTS = 520  # just over both thresholds (checked below), so a round stays cheap
LATEST_SIGTERM_S = 2.5  # rounds are stopped from 0 s (the interpreter starting) to this, past the first render
EXIT_DEADLINE_S = 20.0  # generous: only a hang takes this long
MARKER = "CMS_SHUTDOWN_TEST_ROUND"
LEAK_WARNING = "resource_tracker"


@dataclass
class Round:
    """What one round saw; `problems` must stay empty."""

    problems: list[str] = field(default_factory=list)
    parse_workers: bool = False  # forked children of the server (the index's parse)
    render_workers: bool = False  # more fork-server workers than the media pool keeps (the preview's render)
    stop_seconds: float = 0.0


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shutdown") / "site"
    generate(root, POSTS, seed=5)
    documents = sum(1 for _ in (root / "content").rglob("*.md"))
    assert documents >= index_module.PARALLEL_THRESHOLD, "too small for the index's parse workers"
    assert POSTS * 0.9 >= build_module.PARALLEL_THRESHOLD, "too small for the preview's render workers"
    return root


def _edit_storm(site: Path, stop: threading.Event, seed: int) -> None:
    """Hand edits, as a person's editor saves them, until `stop`."""
    rng = random.Random(seed)
    posts = sorted((site / "content" / "posts").glob("*.md"))[:40]
    n = 0
    while not stop.wait(0.01):
        path = rng.choice(posts)
        path.write_text(path.read_text(encoding="utf-8") + f"\nHand edit {seed}-{n}.\n", encoding="utf-8")
        n += 1


def _marked(marker: str) -> list[psutil.Process]:
    """Live processes whose environment carries this round's marker (zombies are dead: not counted)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:  # (is_running: same pid, same process)
                left.append(proc)
        except psutil.Error:
            continue
    return left


def _describe(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:160]}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "\n".join(lines)


def _port_bindable(port: int) -> bool:
    """Whether a new server could listen on the port now (SO_REUSEADDR as uvicorn sets it; a
    listener anywhere on the port still refuses the bind)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def run_round(site: Path, log: Path, sigterm_after: float | None, seed: int) -> Round:
    """Start, edit, SIGTERM after `sigterm_after` s (None: once the preview's first build is done)."""
    shutil.rmtree(site / ".cms", ignore_errors=True)
    result = Round()
    port = free_port()
    marker = uuid.uuid4().hex
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            serve_command(site, port),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, MARKER: marker},
        )
    server = psutil.Process(process.pid)
    tree: dict[int, psutil.Process] = {}
    seen: dict[int, tuple[int, str]] = {}  # pid -> (parent pid, command line)
    stop_edits = threading.Event()
    editor = threading.Thread(target=_edit_storm, args=(site, stop_edits, seed), daemon=True)
    editor.start()
    try:
        started = time.monotonic()
        while process.poll() is None:
            if sigterm_after is None:
                if "preview rebuilt" in log.read_text(errors="replace"):
                    break
            elif time.monotonic() - started >= sigterm_after:
                break
            _sample(server, tree, seen, result)
            time.sleep(0.03)
        if process.poll() is not None:
            result.problems.append(f"the server exited before SIGTERM ({process.returncode})")
            return result
        _sample(server, tree, seen, result)
        for proc in _alive(list(tree.values())):  # no worker may hold the server's listening socket
            try:
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")):
                    result.problems.append(f"worker {proc.pid} holds the listening socket")
            except psutil.Error:
                pass
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = process.wait(EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            result.problems.append(f"no exit within {EXIT_DEADLINE_S} s of SIGTERM")
            return result
        result.stop_seconds = time.monotonic() - signalled
        if not _port_bindable(port):
            result.problems.append(f"port {port} still taken right after the exit")
        if code not in (0, -signal.SIGTERM):  # (-15: SIGTERM came before the interpreter set its handler)
            result.problems.append(f"exit status {code}")
        left: list[psutil.Process] = []

        def nothing_left() -> bool:
            left[:] = _alive(list(tree.values())) + [p for p in _marked(marker) if p.pid not in tree]
            return not left

        try:
            # (The fork server and the resource tracker end a moment after the server, by design.)
            wait_until(nothing_left, timeout=10, interval=0.05)
        except AssertionError:
            result.problems.append("processes left:\n" + _describe(left))
            for proc in left:
                proc.kill()
        if LEAK_WARNING in log.read_text(errors="replace"):
            result.problems.append("the resource tracker warned at shutdown")
        return result
    finally:
        stop_edits.set()
        editor.join(5)
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _sample(
    server: psutil.Process, tree: dict[int, psutil.Process], seen: dict[int, tuple[int, str]], result: Round
) -> None:
    """Remember every process under the server; note which kinds of workers were running."""
    try:
        children = server.children(recursive=True)
        own = seen.get(server.pid) or seen.setdefault(server.pid, (0, " ".join(server.cmdline())))
    except psutil.Error:
        return
    forkserver_children = 0
    for child in children:
        tree.setdefault(child.pid, child)
        if child.pid not in seen:  # (read once per process: sampling must not load the machine)
            try:
                seen[child.pid] = (child.ppid(), " ".join(child.cmdline()))
            except psutil.Error:
                continue
        parent, command = seen[child.pid]
        if parent == server.pid and command == own[1]:
            result.parse_workers = True  # a fork of the server itself: the index's parse workers
        if "multiprocessing.forkserver" in seen.get(parent, (0, ""))[1]:
            forkserver_children += 1
    if forkserver_children > POOL_WORKERS:
        result.render_workers = True


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_at_any_moment_leaves_no_process_and_frees_the_port(big_site: Path, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    rounds: list[Round] = []
    started = time.monotonic()
    for n in range(ROUNDS):
        # The first round waits for the preview's first build: both kinds of workers have run in it.
        after = None if n == 0 else rng.uniform(0.0, LATEST_SIGTERM_S)
        log = tmp_path / f"server-{n}.log"
        outcome = run_round(big_site, log, after, seed=n)
        tail = log.read_text(errors="replace")[-3000:]
        assert not outcome.problems, f"round {n} (SIGTERM after {after} s): {outcome.problems}\n{tail}"
        rounds.append(outcome)
    assert rounds[0].parse_workers, "the index was never parsed in forked workers: the site is too small"
    if (os.cpu_count() or 1) > 1:  # (one CPU: the preview renders in one process)
        assert rounds[0].render_workers, "the preview never rendered in workers: the site is too small"
    slowest = max(r.stop_seconds for r in rounds)
    print(f"\n{ROUNDS} rounds in {time.monotonic() - started:.1f} s; slowest exit after SIGTERM {slowest:.2f} s")


def test_no_leaked_semaphore_warning_at_shutdown(tmp_path: Path) -> None:
    """The pools' semaphores are released by a clean exit: the resource tracker has nothing to say."""
    site = tmp_path / "site"
    generate(site, POSTS, seed=9)
    log = tmp_path / "server.log"
    outcome = run_round(site, log, None, seed=1)  # SIGTERM once the preview was rendered in workers
    assert not outcome.problems, f"{outcome.problems}\n{log.read_text()[-3000:]}"
    assert "preview rebuilt" in log.read_text()
    assert LEAK_WARNING not in log.read_text()
