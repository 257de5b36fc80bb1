"""The one check command, run by CI with the tests: ruff (lint + format) and mypy --strict on cms/.

The import layers are checked by tests/test_layers.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "cms", "tests", "bench")
    assert result.returncode == 0, result.stdout[-4000:]


def test_code_is_formatted() -> None:
    result = _run("ruff", "format", "--check", "cms", "tests", "bench")
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.timeout(600)
def test_mypy_strict_finds_nothing() -> None:
    result = _run("mypy", "cms")
    assert result.returncode == 0, result.stdout[-4000:]
