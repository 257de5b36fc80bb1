"""Fixtures layered site -> index -> store; `make_site` writes a small site into tmp_path."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cms.config import Site
from cms.content import names
from cms.content.index import Index
from cms.content.store import Store
from cms.events.bus import Bus, Event


@pytest.fixture(autouse=True)
def _fresh_id_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts the process's ULID sequence afresh.

    Ids are monotonic within a process (`names.new_id`): after a test that made ids at the real
    time, a test clock set weeks earlier would get ids stamped with that later millisecond, and a
    document's `created_at` (read from its id) would depend on which tests ran before it.
    """
    monkeypatch.setattr(names, "_last_ms", 0)
    monkeypatch.setattr(names, "_last_rand", 0)


REPO = Path(__file__).resolve().parent.parent

MakeSite = Callable[..., Site]


@pytest.fixture
def make_site(tmp_path: Path) -> MakeSite:
    """Write `{relative path: text}` (dedented) under tmp_path/site and return its Site.

    Paths are relative to the site root; `cms.toml` gets a minimal default unless given.
    """

    def make(files: dict[str, str] | None = None, *, config: str | None = None) -> Site:
        root = tmp_path / "site"
        root.mkdir(exist_ok=True)
        (root / "cms.toml").write_text(
            textwrap.dedent(config) if config is not None else '[site]\ntitle = "Test"\ntimezone = "UTC"\n',
            encoding="utf-8",
        )
        (root / "content").mkdir(exist_ok=True)
        for rel, text in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return Site.load(root)

    return make


@pytest.fixture
def demo_site(tmp_path: Path) -> Site:
    """A copy of the bundled demo site (content/ and cms.toml) in tmp_path."""
    root = tmp_path / "demo"
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "cms.toml", root / "cms.toml")
    if (REPO / "uploads").is_dir():
        shutil.copytree(REPO / "uploads", root / "uploads")
    return Site.load(root)


@pytest.fixture
def demo_index(demo_site: Site) -> Index:
    return Index.load(demo_site, background_search=False)


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def demo_store(demo_site: Site, demo_index: Index, events: list[Event]) -> Store:
    bus = Bus()
    bus.subscribe(events.append)
    return Store(demo_site, demo_index, bus)
