"""Run a function over batches of work in forked worker processes, results back in batch order.

A cold load parses 10,000 files, almost all of it Python-level work (libyaml's parser calls back into
Python for every node), so it scales only with processes. Forked workers inherit everything the
function refers to (the index's content types, the site), so nothing but results crosses a process
boundary, and nothing needs to be importable or picklable on the way in.

Each worker claims batch numbers from a shared pipe (so a slow or busy core takes fewer), and sends
each batch's pickled result back on its own pipe, framed with the batch number and length. The
parent yields results in batch order as they arrive. Anything a worker does not deliver, because a
fork failed, a worker crashed or was killed, or its result could not be read, runs in the parent
when its turn comes: a failure costs speed, never a result.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import struct
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from cms.workers import can_fork as can_fork  # (the rule: fork only from a single-threaded process)
from cms.workers import die_with_parent

try:
    import fcntl
except ImportError:  # (not on Windows, where nothing forks anyway)
    fcntl = None  # type: ignore[assignment]

Batch = TypeVar("Batch")

_TOKEN = struct.Struct("<I")  # a batch number, on the task pipe
_HEADER = struct.Struct("<IQ")  # a batch number and the length of its pickled result, on a result pipe
_READ_CHUNK = 1 << 20
_PIPE_BYTES = 1 << 20  # result pipes this large: fewer wake-ups of the parent (Linux caps it, harmlessly)
_MAX_TASK_BYTES = 60_000  # every batch number fits the task pipe's buffer (64 KiB), so writing it never blocks


@dataclass(slots=True)
class Report:
    """How a `map_batches` call ran: forked workers started, and the batches the parent ran itself."""

    workers: int = 0
    batches_here: list[int] = field(default_factory=list)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def max_batches() -> int:
    """The most batches one call can take (their numbers must fit the task pipe at once)."""
    return _MAX_TASK_BYTES // _TOKEN.size


def map_batches(
    work: Callable[[Batch], Any], batches: Sequence[Batch], workers: int, report: Report | None = None
) -> Generator[Any, None, None]:
    """`work(batch)` for every batch, yielded in batch order; run in up to `workers` forked processes.

    Results of workers are pickled, so `work` must return something picklable; results of batches
    the parent runs itself are not. Closing the iterator early stops the workers."""
    if len(batches) > max_batches():
        raise ValueError(f"at most {max_batches()} batches, got {len(batches)}")
    report = report if report is not None else Report()
    results: dict[int, bytes] = {}  # batch number -> pickled result, until its turn
    pending: dict[int, bytearray] = {}  # result pipe -> bytes received and not yet framed
    children: dict[int, int] = {}  # result pipe -> worker pid
    selector: selectors.BaseSelector | None = None
    try:
        if workers > 1 and len(batches) > 1 and can_fork():
            _start_workers(work, batches, min(workers, len(batches)), children)
        report.workers = len(children)
        selector = selectors.DefaultSelector()  # (after the forks: the workers need no copy of it)
        for fd in children:
            pending[fd] = bytearray()
            selector.register(fd, selectors.EVENT_READ)
        for number in range(len(batches)):
            while number not in results and pending:  # its worker may still deliver it
                for key, _ in selector.select():
                    _receive(key.fd, pending, results, selector)
            result = _unpickled(results.pop(number, None))
            if result is _MISSING:  # never delivered, or unreadable: run it here, in its turn
                report.batches_here.append(number)
                result = work(batches[number])
            yield result
    finally:
        if selector is not None:
            selector.close()
        for fd in pending:
            os.close(fd)
        _stop(children.values())


def _start_workers(work: Callable[[Any], Any], batches: Sequence[Any], workers: int, children: dict[int, int]) -> None:
    """Fork the workers, each with its own result pipe; the batch numbers wait in a shared task pipe.

    Out of processes or file descriptors (limits, memory), it stops there: the workers already
    started and the parent do all the batches."""
    try:
        tasks_in, tasks_out = os.pipe()
    except OSError:
        return
    try:
        try:
            os.write(tasks_out, b"".join(_TOKEN.pack(i) for i in range(len(batches))))
        finally:
            os.close(tasks_out)  # (before forking: a worker reading past the last number sees the end)
        parent = os.getpid()
        for _ in range(workers):
            try:
                result_in, result_out = os.pipe()
            except OSError:
                break
            try:
                pid = os.fork()
            except OSError:
                os.close(result_in)
                os.close(result_out)
                break
            if pid == 0:
                _worker(work, batches, tasks_in, result_out, [result_in, *children], parent)
            os.close(result_out)
            children[result_in] = pid
            _widen(result_in)
    finally:
        os.close(tasks_in)


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):
        pass  # only an optimization


def _worker(
    work: Callable[[Any], Any], batches: Sequence[Any], tasks: int, out: int, foreign: list[int], parent: int
) -> NoReturn:
    """In a forked child: claim batch numbers until none are left, send each result; never returns."""
    status = 1
    try:
        die_with_parent(parent)  # a parent killed mid-load (SIGTERM, SIGKILL) takes its workers along
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a worker quietly; the parent cleans up
        for fd in foreign:  # the parent's ends of the pipes: not ours to hold open
            os.close(fd)
        # Short-lived, and the parent's objects are shared copy-on-write: a collection would walk (and
        # so copy) all of their pages for nothing.
        gc.disable()
        while len(token := os.read(tasks, _TOKEN.size)) == _TOKEN.size:  # (reads this small are atomic)
            (number,) = _TOKEN.unpack(token)
            payload = pickle.dumps(work(batches[number]), protocol=pickle.HIGHEST_PROTOCOL)
            _write_all(out, _HEADER.pack(number, len(payload)))
            _write_all(out, payload)
        status = 0
    except BaseException:  # noqa: S110 - whatever this worker did not send, the parent runs itself
        pass
    finally:
        os._exit(status)  # never unwind into the parent's code or run its exit handlers


_MISSING: Any = object()


def _unpickled(payload: bytes | None) -> Any:
    if payload is None:
        return _MISSING
    try:
        return pickle.loads(payload)  # noqa: S301 - bytes from our own forked child
    except Exception:  # (a frame is complete by its length, but its worker may have been corrupted)
        return _MISSING


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(
    fd: int, pending: dict[int, bytearray], results: dict[int, bytes], selector: selectors.BaseSelector
) -> None:
    """Read what a worker sent; complete frames become results; at its end, forget the pipe."""
    chunk = os.read(fd, _READ_CHUNK)
    if not chunk:  # the worker is done, or died: what it did not deliver runs in the parent
        selector.unregister(fd)
        os.close(fd)
        del pending[fd]
        return
    buffer = pending[fd]
    buffer += chunk
    start = 0
    while len(buffer) - start >= _HEADER.size:
        number, length = _HEADER.unpack_from(buffer, start)
        end = start + _HEADER.size + length
        if len(buffer) < end:
            break
        results[number] = bytes(buffer[start + _HEADER.size : end])
        start = end
    if start:
        del buffer[:start]


def _stop(pids: Iterable[int]) -> None:
    """Reap the workers; any still running (the caller stopped early, or failed) is killed first."""
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass
