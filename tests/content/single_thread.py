"""Tests of forked workers need a process with one thread: other tests leave threads behind (the
media conversion pool's, servers'), and a process with threads never forks (cms.content.forked)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def single_threaded(test: Callable[..., None]) -> Callable[..., None]:
    """Run the test here when this process has one thread, else alone in a fresh interpreter."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        if threading.active_count() == 1:
            test(*args, **kwargs)
            return
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", node, "-q", "-p", "no:cacheprovider"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{node} in a fresh process:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"

    return run
