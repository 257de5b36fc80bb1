"""Batches of work in forked workers: results in order, and whatever a worker does not deliver is
run in the parent (a crash, an unpicklable result, another thread that makes forking unsafe)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import pytest

from cms.content import forked
from tests.content.single_thread import single_threaded

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked only on Linux")


def run(work: Callable[[int], object], batches: list[int], workers: int = 2) -> tuple[list[object], forked.Report]:
    report = forked.Report()
    return list(forked.map_batches(work, batches, workers, report)), report


@single_threaded
def test_results_come_back_in_batch_order_from_the_workers() -> None:
    parent = os.getpid()

    def work(batch: int) -> tuple[int, int]:
        time.sleep(0.002 * (batch % 3))  # uneven batches: workers finish out of order
        return batch * batch, os.getpid()

    results, report = run(work, list(range(40)))
    assert [square for square, _ in results] == [n * n for n in range(40)]  # type: ignore[misc]
    assert report.workers == 2 and report.batches_here == []
    assert parent not in {pid for _, pid in results}  # type: ignore[misc]


@single_threaded
def test_a_worker_that_dies_costs_speed_not_results() -> None:
    parent = os.getpid()

    def work(batch: int) -> int:
        if batch == 7 and os.getpid() != parent:
            os._exit(70)  # as if killed (out of memory, a signal) in the middle of the load
        return batch + 100

    results, report = run(work, list(range(20)))
    assert results == [n + 100 for n in range(20)]
    assert 7 in report.batches_here  # run again here, in its turn


@single_threaded
def test_an_unpicklable_result_is_computed_again_in_the_parent() -> None:
    def work(batch: int) -> object:
        return (lambda: batch) if batch == 3 else batch  # a lambda cannot be pickled

    results, report = run(work, list(range(8)))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5, 6, 7]
    assert callable(results[3]) and results[3]() == 3  # type: ignore[operator]
    assert 3 in report.batches_here


def test_an_error_of_the_work_itself_reaches_the_caller() -> None:
    def work(batch: int) -> int:
        if batch == 2:
            raise ValueError("bad batch")
        return batch

    with pytest.raises(ValueError, match="bad batch"):
        run(work, list(range(6)))


@single_threaded
def test_stopping_early_stops_and_reaps_the_workers() -> None:
    def work(batch: int) -> int:
        time.sleep(0.01)
        return os.getpid()

    results = forked.map_batches(work, list(range(200)), 2)
    pids = {next(results), next(results)}
    results.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # gone, and no zombie left behind
            os.kill(pid, 0)


def test_with_another_thread_running_nothing_is_forked() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not forked.can_fork()
        results, report = run(lambda batch: (batch, os.getpid()), list(range(5)))
    finally:
        stop.set()
        thread.join()
    assert results == [(n, os.getpid()) for n in range(5)]
    assert report.workers == 0 and report.batches_here == [0, 1, 2, 3, 4]


def test_one_worker_or_one_batch_runs_here() -> None:
    assert run(lambda batch: batch, [1, 2, 3], workers=1)[1].workers == 0
    assert run(lambda batch: batch, [1], workers=2)[1].workers == 0


def test_too_many_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        list(forked.map_batches(lambda batch: batch, list(range(forked.max_batches() + 1)), 2))
