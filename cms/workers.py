"""How this project starts worker processes: the one rule, the two ways, and how workers end.

The rule: fork directly only from a process with a single thread; a process with threads (the
server: watcher, coalescer, deliverer, scheduler, preview) gets its workers from the fork server.
`fork()` copies only the calling thread: a lock another thread held at that moment (logging, an
import, malloc) stays held forever in the child, which then hangs in a futex wait and never exits.
A forked child also holds a copy of every descriptor of its parent, the server's listening socket
included, so a stuck worker keeps the port busy after the server is gone.

The fork server (multiprocessing's "forkserver") is a fresh interpreter, started by exec with only
the descriptors passed to it: whenever it is started, it has none of our threads and no copy of the
listening socket, and neither have the workers it forks. `cms build` in a plain CLI process has one
thread, so it keeps forking directly: its workers share the build plan copy-on-write (closures over
the index that cannot be pickled), which is what makes the big build fast.

Every worker dies with its parent, even when the parent is killed with SIGKILL and runs no cleanup:
Linux's parent-death signal (PR_SET_PDEATHSIG) kills it when the process that forked it ends, and a
pool worker also watches the process that owns its pool (for a fork-server worker the parent is the
fork server, which itself exits when its owner is gone). A process on its way out calls `stop_all()`
first, so work in flight in its pools ends at once instead of being waited for.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_preload: set[str] = set()


def can_fork() -> bool:
    """Whether forking workers directly is safe here: Linux, and no other thread in this process.

    With a single thread no lock can be held by someone else at the moment of the fork."""
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


def die_with_parent(parent: int | None = None) -> None:
    """In a freshly forked child: be killed when its parent ends (Linux; elsewhere nothing).

    `parent` is the pid that forked this child when the caller knows it (else the parent as seen
    now). The signal is tied to the thread that forked, so only call this in children forked by a
    process's only thread (the rule above) or by the fork server."""
    if sys.platform != "linux":
        return
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the pool watch below still holds
        return
    if os.getppid() != parent:  # the parent ended before the signal was armed: it will never come
        os._exit(1)


def start_forkserver(preload: Iterable[str] = ()) -> None:
    """Start the fork server now, with these modules imported in it once for every later worker.

    A server calls this before its first thread and before binding its socket: not needed for
    safety (the fork server is exec'd clean whenever it starts), but the first worker then does
    not wait for an interpreter to start and import the renderer."""
    if sys.platform != "linux":
        return
    _preload.update(preload)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(sorted(_preload))
    from multiprocessing import forkserver

    forkserver.ensure_running()


def pool(
    workers: int,
    *,
    inherit: bool = False,
    preload: Iterable[str] = (),
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process.

    `inherit=True` forks the workers from this process, so they see its objects (the caller checks
    `can_fork()` first; it is an error otherwise); else they come from the fork server and receive
    everything pickled. `preload` names modules the fork server imports once, if it is not yet
    running. Use it in a `with` block or shut it down: its workers are this process's children."""
    context: multiprocessing.context.BaseContext
    if inherit:
        if not can_fork():
            raise RuntimeError("forking workers from a process with threads can deadlock them")
        context = multiprocessing.get_context("fork")
    elif sys.platform == "linux":
        _preload.update(preload)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(sorted(_preload))  # (only matters until the fork server starts)
    else:  # pragma: no cover - macOS and Windows: spawn is their safe method
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_pool_worker_start, initargs=(initializer, initargs)
    )


def stop_all(timeout: float = 2.0) -> None:
    """Kill every worker process this process started through multiprocessing, and reap them.

    For a process on its way out: a render or conversion in flight fails at once (its pool reports
    it broken) instead of keeping the process, and its port, alive until it finishes."""
    children = multiprocessing.active_children()
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout)


def stop_forkserver() -> None:
    """End the fork server and reap it, as the last step of a process on its way out (its pools shut down).

    It would exit by itself once this process is gone (it watches a pipe from it), but only after
    importing its preload modules, which on a busy machine takes seconds: it is killed instead (it
    holds nothing to clean up, and workers of its still running die with it)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    pid, stop = getattr(server, "_forkserver_pid", None), getattr(server, "_stop", None)  # (private; guarded)
    if pid is None or stop is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    stop()  # closes our end of its pipe and reaps it


def _pool_worker_start(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """First thing in every pool worker: die with the owner of the pool, then the caller's initializer."""
    die_with_parent()  # (the parent that forked: the owner, or the fork server)
    parent = multiprocessing.parent_process()  # the pool's owner, whichever process forked this one
    if parent is not None:
        # A worker waiting for its next task never sees its owner die (its own copy of the task
        # queue's write end keeps the queue open), and a fork-server worker's parent is the fork
        # server: watch the owner itself.
        def watch() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(0)

        threading.Thread(target=watch, name="cms-worker-owner", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)
