"""The Coalescer: a burst of saves of one file becomes one event (changes merged), documents are
kept apart, and stopping flushes what is held. Its monotonic clock is moved by hand, so a quiet
window passes when the test says so, never because the machine was busy between two saves."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import cms.events.bus as bus_module
from bench.webhooks import make_site
from cms.content.index import Index
from cms.events.bus import Bus, Coalescer, Event
from cms.watch import Watcher
from tests.support import SecondsClock, wait_until

WINDOW = 0.2


def updated(doc: str, changes: list[str] | None, n: int = 0, name: str = "post.updated") -> Event:
    data: dict[str, object] = {"post": {"id": doc, "type": "posts", "title": f"{doc} v{n}"}}
    if changes is not None:
        data["changes"] = changes
    return Event(name, data, id=f"evt_{doc}_{name}_{n}", source="watch", key=doc)


@pytest.fixture
def got() -> list[Event]:
    return []


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> SecondsClock:
    """The coalescer's `time.monotonic`; its thread still flushes every few ms of real time."""
    clock = SecondsClock(1_000.0)
    monkeypatch.setattr(bus_module, "time", types.SimpleNamespace(monotonic=clock))
    return clock


@pytest.fixture
def coalescer(got: list[Event]) -> Iterator[Coalescer]:
    bus = Bus()
    bus.subscribe(got.append)
    c = Coalescer(bus, window=WINDOW)
    yield c
    c.stop()


def test_a_burst_of_saves_is_one_event_with_merged_changes(
    coalescer: Coalescer, got: list[Event], clock: SecondsClock
) -> None:
    changes = [["title"], ["tags"], ["title", "content"], ["summary"], ["title"]]
    for n, fields in enumerate(changes):
        coalescer.publish([updated("a", fields, n)])
        clock.advance(WINDOW / 2)  # each save inside the quiet window the one before opened
    coalescer.flush()
    assert got == []  # still held: the first save is 2.5 windows old, but each later one restarted the wait
    clock.advance(WINDOW / 2)
    wait_until(lambda: got)  # quiet for a whole window now: the coalescer's thread publishes
    coalescer.flush()
    (event,) = got
    assert event.name == "post.updated"
    assert event.data["changes"] == ["content", "summary", "tags", "title"]
    assert event.data["post"]["title"] == "a v4"  # the latest version
    assert event.id == "evt_a_post.updated_4"


def test_two_files_are_two_events(coalescer: Coalescer, got: list[Event], clock: SecondsClock) -> None:
    for n in range(3):
        coalescer.publish([updated("a", ["title"], n), updated("b", ["content"], n)])
    clock.advance(WINDOW)
    wait_until(lambda: len(got) >= 2)
    coalescer.flush()
    assert sorted((e.key, e.data["post"]["title"]) for e in got) == [("a", "a v2"), ("b", "b v2")]


def test_distinct_names_of_one_document_are_kept_in_order(
    coalescer: Coalescer, got: list[Event], clock: SecondsClock
) -> None:
    coalescer.publish([updated("a", ["status"], 0), updated("a", None, 0, "post.published")])
    coalescer.publish([updated("a", ["title"], 1)])
    clock.advance(WINDOW)
    wait_until(lambda: len(got) >= 2)
    coalescer.flush()
    assert [e.name for e in got] == ["post.published", "post.updated"]
    assert got[1].data["changes"] == ["status", "title"]


def test_a_save_without_changes_keeps_the_earlier_ones(
    coalescer: Coalescer, got: list[Event], clock: SecondsClock
) -> None:
    coalescer.publish([updated("a", ["title"], 0)])
    coalescer.publish([updated("a", None, 1)])  # e.g. a save the reader saw no field change in
    clock.advance(WINDOW)
    wait_until(lambda: got)
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


def test_real_saves_through_the_watcher_are_coalesced(tmp_path: Path, got: list[Event], clock: SecondsClock) -> None:
    site = make_site(tmp_path / "site", posts=2)
    index = Index.load(site, background_search=False)
    bus = Bus()
    bus.subscribe(got.append)
    coalescer = Coalescer(bus, window=0.3)
    handed: list[Event] = []  # what the watcher handed the coalescer, to know when the last save is in

    def publish(events: list[Event]) -> None:
        handed.extend(events)
        coalescer.publish(events)

    watcher = Watcher(site, index, types.SimpleNamespace(publish=publish))  # type: ignore[arg-type]
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
            wait_until(lambda t=text: index.get(index.by_path["posts/post-0.md"]).title in t)
            clock.advance(0.05)  # however long the watcher took, the saves stay inside the window
        wait_until(lambda: any(e.data["post"]["title"] == "Saved 5" for e in handed))
        coalescer.flush()
        assert got == []  # held
        clock.advance(0.3)
        wait_until(lambda: got)
        coalescer.flush()
    finally:
        watcher.stop()
        coalescer.stop()
    (event,) = got
    assert event.name == "post.updated" and event.source == "watch"
    assert event.data["post"]["title"] == "Saved 5"
    assert {"title", "tags", "content"} <= set(event.data["changes"])
