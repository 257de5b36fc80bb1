"""The Coalescer: a burst of saves of one file becomes one event (changes merged), documents are
kept apart, and stopping flushes what is held. Windows are short (0.2 s) to keep the tests fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.webhooks import make_site
from cms.content.index import Index
from cms.events.bus import Bus, Coalescer, Event
from cms.watch import Watcher

WINDOW = 0.2


def updated(doc: str, changes: list[str] | None, n: int = 0, name: str = "post.updated") -> Event:
    data: dict[str, object] = {"post": {"id": doc, "type": "posts", "title": f"{doc} v{n}"}}
    if changes is not None:
        data["changes"] = changes
    return Event(name, data, id=f"evt_{doc}_{name}_{n}", source="watch", key=doc)


@pytest.fixture
def got() -> list[Event]:
    return []


@pytest.fixture
def coalescer(got: list[Event]) -> Iterator[Coalescer]:
    bus = Bus()
    bus.subscribe(got.append)
    c = Coalescer(bus, window=WINDOW)
    yield c
    c.stop()


def wait_until(condition: Callable[[], object], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def test_a_burst_of_saves_is_one_event_with_merged_changes(coalescer: Coalescer, got: list[Event]) -> None:
    changes = [["title"], ["tags"], ["title", "content"], ["summary"], ["title"]]
    started = time.monotonic()
    for n, fields in enumerate(changes):
        coalescer.publish([updated("a", fields, n)])
        time.sleep(WINDOW / 5)  # each save well inside the quiet window
    assert got == []  # still held while saves keep coming
    assert wait_until(lambda: got, 2)
    time.sleep(WINDOW * 2)
    (event,) = got
    assert event.name == "post.updated"
    assert event.data["changes"] == ["content", "summary", "tags", "title"]
    assert event.data["post"]["title"] == "a v4"  # the latest version
    assert event.id == "evt_a_post.updated_4"
    assert time.monotonic() - started >= WINDOW  # waited for quiet


def test_two_files_are_two_events(coalescer: Coalescer, got: list[Event]) -> None:
    for n in range(3):
        coalescer.publish([updated("a", ["title"], n), updated("b", ["content"], n)])
    assert wait_until(lambda: len(got) >= 2, 2)
    time.sleep(WINDOW * 2)
    assert sorted((e.key, e.data["post"]["title"]) for e in got) == [("a", "a v2"), ("b", "b v2")]


def test_distinct_names_of_one_document_are_kept_in_order(coalescer: Coalescer, got: list[Event]) -> None:
    coalescer.publish([updated("a", ["status"], 0), updated("a", None, 0, "post.published")])
    coalescer.publish([updated("a", ["title"], 1)])
    assert wait_until(lambda: len(got) >= 2, 2)
    time.sleep(WINDOW * 2)
    assert [e.name for e in got] == ["post.published", "post.updated"]
    assert got[1].data["changes"] == ["status", "title"]


def test_a_save_without_changes_keeps_the_earlier_ones(coalescer: Coalescer, got: list[Event]) -> None:
    coalescer.publish([updated("a", ["title"], 0)])
    coalescer.publish([updated("a", None, 1)])  # e.g. a save the reader saw no field change in
    assert wait_until(lambda: got, 2)
    assert got[0].data["changes"] == ["title"]


def test_stop_flushes_what_is_held(got: list[Event]) -> None:
    bus = Bus()
    bus.subscribe(got.append)
    coalescer = Coalescer(bus, window=60.0)  # would hold for a minute
    coalescer.publish([updated("a", ["title"], 0), updated("b", ["title"], 0)])
    coalescer.publish([updated("a", ["tags"], 1)])
    assert got == []
    coalescer.stop()
    assert sorted((e.key, e.data["changes"]) for e in got) == [("a", ["tags", "title"]), ("b", ["title"])]


def test_real_saves_through_the_watcher_are_coalesced(tmp_path: Path, got: list[Event]) -> None:
    site = make_site(tmp_path / "site", posts=2)
    index = Index.load(site, background_search=False)
    bus = Bus()
    bus.subscribe(got.append)
    coalescer = Coalescer(bus, window=0.3)
    watcher = Watcher(site, index, coalescer)  # type: ignore[arg-type]
    watcher.start()
    path = site.content_dir / "posts" / "post-0.md"
    try:
        texts = [
            "---\ntitle: Saved 1\ndate: 2025-01-01T00:00:00Z\ntags: [bench]\n---\nBody of post 0.\n",
            "---\ntitle: Saved 2\ndate: 2025-01-01T00:00:00Z\ntags: [bench]\n---\nBody of post 0.\n",
            "---\ntitle: Saved 2\ndate: 2025-01-01T00:00:00Z\ntags: [bench, more]\n---\nBody of post 0.\n",
            "---\ntitle: Saved 2\ndate: 2025-01-01T00:00:00Z\ntags: [bench, more]\n---\nNew body.\n",
            "---\ntitle: Saved 5\ndate: 2025-01-01T00:00:00Z\ntags: [bench, more]\n---\nNew body.\n",
        ]
        for text in texts:
            path.write_text(text, encoding="utf-8")
            assert wait_until(lambda t=text: index.get(index.by_path["posts/post-0.md"]).title in t, 2)
            time.sleep(0.05)
        assert wait_until(lambda: got, 3)
        time.sleep(0.6)
    finally:
        watcher.stop()
        coalescer.stop()
    (event,) = got
    assert event.name == "post.updated" and event.source == "watch"
    assert event.data["post"]["title"] == "Saved 5"
    assert {"title", "tags", "content"} <= set(event.data["changes"])
