"""Work counted, not timed: how many calls a piece of cms code makes.

A profile hook counts the calls made in and into `cms/` code (Python functions and the builtins
they call) in this thread and every thread started meanwhile (a test client's portal and thread
pool). The count is the same on a fast or a loaded machine, so a budget on it catches a path that
grows with its input where a time limit would be flaky. The hook raises inside the code once the
budget is spent, so a regression fails fast instead of spinning.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import FrameType

import cms

CMS_DIR = str(Path(cms.__file__).parent)


class OverBudget(Exception):
    """Raised inside the request once it has made more calls than allowed."""


class Steps:
    """Count calls in and into cms/ code; `over` once more than `budget` were made."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.count = 0
        self.over = False

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event in ("call", "c_call") and frame.f_code.co_filename.startswith(CMS_DIR):
            self.count += 1
            if self.count > self.budget and not self.over:
                self.over = True
                raise OverBudget(f"more than {self.budget} calls")

    def __enter__(self) -> Steps:
        threading.setprofile(self._profile)  # the test client's portal thread and the thread pool
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
