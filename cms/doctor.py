"""`cms doctor`: the versions this installation runs, the optional features it has, and what to run for
what is missing.

The versions are compared with the committed lock (`requirements/*.lock`, present in a clone of the
repository): a machine that drifted from it is the first suspect when a test passes elsewhere and fails
here, so each difference is reported with the command that puts the locked version back.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

from cms import __version__
from cms.media.convert import encodable_formats

OK = "ok"
MISSING = "missing"
DIFFERS = "differs"

# The repository's lock files, beside the package in a clone (an installed wheel has none).
LOCK_FOLDER = Path(__file__).resolve().parent.parent / "requirements"
INSTALL_COMMAND = "pip install -r requirements/{lock} && pip install --no-deps -e ."

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(;[^\\]*)?")
_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: what was looked at, its state, and the command that mends it."""

    name: str
    status: str  # OK, MISSING or DIFFERS
    detail: str
    fix: str = ""


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """name -> version for this environment from a pip-compile style lock (markers evaluated as pip does)."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match and (not match.group(3) or Marker(match.group(3)[1:].strip()).evaluate()):
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _declared() -> list[str]:
    """The distributions cms declares (runtime, and the test extras when they are installed)."""
    try:
        requirements = importlib.metadata.requires("cms") or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return []
    names = []
    for requirement in requirements:
        match = _REQUIREMENT_NAME.match(requirement)
        if match and ("extra ==" not in requirement or _installed(match.group(1))):
            names.append(canonical(match.group(1)))
    return names


def lock_name() -> str:
    """The lock this installation should match: the test lock when the test extras are installed."""
    return "test.lock" if _installed("pytest") else "run.lock"


def dependencies(lock_folder: Path | None = None) -> list[Finding]:
    """Each declared dependency's installed version, against the lock when there is one."""
    lock = lock_name()
    lock_path = (lock_folder or LOCK_FOLDER) / lock
    pins = read_lock(lock_path) if lock_path.is_file() else {}
    fix = INSTALL_COMMAND.format(lock=lock)
    findings = []
    for name in _declared():
        installed = _installed(name)
        locked = pins.get(name)
        if installed is None:
            findings.append(Finding(name, MISSING, f"not installed (locked: {locked or '-'})", fix))
        elif locked and locked != installed:
            findings.append(Finding(name, DIFFERS, f"{installed} installed, {locked} locked", fix))
        else:
            findings.append(Finding(name, OK, installed))
    return findings


def features() -> list[Finding]:
    """The optional capabilities: image encoders, full-text search, git, and what the tests drive."""
    formats = encodable_formats()
    found = [
        Finding("python", OK, sys.version.split()[0]),
        Finding("cms", OK, __version__),
    ]
    for fmt in ("avif", "webp"):
        if formats.get(fmt):
            found.append(Finding(f"{fmt} encoding", OK, "Pillow encodes it"))
        else:
            found.append(
                Finding(f"{fmt} encoding", MISSING, "this Pillow build cannot encode it", "pip install 'Pillow>=12.2'")
            )
    found.append(_fts5())
    found.append(_program("git", "commits and history", "apt-get install git"))
    if _installed("pytest"):  # what the test suite drives, asked only of a machine that runs it
        found.append(_program("chromium", "browser tests (Playwright drives it)", "apt-get install chromium"))
        found.append(_program("strace", "the fsync-ordering test", "apt-get install strace"))
    return found


def _fts5() -> Finding:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return Finding("sqlite fts5", MISSING, "full-text search needs SQLite with FTS5", "a Python built with FTS5")
    return Finding("sqlite fts5", OK, sqlite3.sqlite_version)


def _program(name: str, purpose: str, fix: str) -> Finding:
    path = shutil.which(name)
    if path:
        return Finding(name, OK, f"{path} ({purpose})")
    return Finding(name, MISSING, f"not on PATH ({purpose})", fix)


def diagnose(lock_folder: Path | None = None) -> list[Finding]:
    """Every finding, features first."""
    return [*features(), *dependencies(lock_folder)]
