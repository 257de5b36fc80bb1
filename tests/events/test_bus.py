"""The event bus: subscribers in order, failures contained, and the events a document change amounts to."""

from __future__ import annotations

import ast
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cms.content.model import Document, make_document
from cms.events.bus import DOCUMENT_ACTIONS, EVENTS, Bus, Event, document_events, kind_of, summary

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PAST = (NOW - timedelta(days=1)).isoformat()
FUTURE = (NOW + timedelta(days=1)).isoformat()


def ev(name: str = "post.updated", **data: Any) -> Event:
    return Event(name, data)


# -- subscribers -----------------------------------------------------------------------------


def test_subscribers_get_every_event_in_order() -> None:
    bus = Bus()
    calls: list[tuple[str, str]] = []
    bus.subscribe(lambda e: calls.append(("first", e.name)))
    bus.subscribe(lambda e: calls.append(("second", e.name)))
    bus.publish([ev("a.created"), ev("a.updated")])
    assert calls == [
        ("first", "a.created"),
        ("second", "a.created"),
        ("first", "a.updated"),
        ("second", "a.updated"),
    ]


def test_unsubscribe() -> None:
    bus = Bus()
    got: list[str] = []
    stop = bus.subscribe(lambda e: got.append(e.name))
    bus.publish([ev("one")])
    stop()
    stop()  # twice is harmless
    bus.publish([ev("two")])
    assert got == ["one"]


def test_publish_without_subscribers_and_empty_batches() -> None:
    bus = Bus()
    bus.publish([ev()])
    got: list[Event] = []
    bus.subscribe(got.append)
    bus.publish([])
    assert got == []


def test_a_raising_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = Bus()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("receiver down")

    bus.subscribe(got.append)  # type: ignore[arg-type]
    bus.subscribe(broken)
    bus.subscribe(lambda e: got.append("after:" + e.name))
    with caplog.at_level(logging.ERROR, logger="cms.events"):
        bus.publish([ev("post.published"), ev("post.updated")])
    assert [g if isinstance(g, str) else g.name for g in got] == [
        "post.published",
        "after:post.published",
        "post.updated",
        "after:post.updated",
    ]
    failures = [r for r in caplog.records if r.name == "cms.events"]
    assert len(failures) == 2
    assert "post.published" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "receiver down" in str(failures[0].exc_info[1])


def test_a_subscriber_added_during_publish_starts_with_the_next_batch() -> None:
    bus = Bus()
    late: list[str] = []

    def adder(event: Event) -> None:
        bus.subscribe(lambda e: late.append(e.name))

    stop = bus.subscribe(adder)
    bus.publish([ev("one"), ev("two")])
    stop()
    assert late == []
    bus.publish([ev("three")])
    assert late == ["three", "three"]


def test_event_record() -> None:
    a, b = ev("post.created", post={"id": "x"}), ev("post.created")
    assert a.id != b.id and a.id.startswith("evt_")
    out = a.as_dict()
    assert out["event"] == "post.created" and out["post"] == {"id": "x"} and out["source"] == "api"
    assert out["timestamp"].endswith("Z")
    assert a.timestamp.tzinfo is not None


# -- document events -------------------------------------------------------------------------


def make(type_name: str = "posts", **meta: Any) -> Document:
    return make_document(
        doc_id="01K0000000AAAAAAAAAAAAAAAA",
        type=type_name,
        slug="hello",
        path=f"{type_name}/hello.md",
        meta={"title": "Hello", "tags": ["a"], "categories": ["news"], **meta},
        body="Body.",
        etag="sha256-x",
        mtime=0.0,
        tz=UTC,
    )


DRAFT = {"draft": True}
LIVE = {"date": PAST}
SCHEDULED = {"date": FUTURE}
EXPIRED = {"date": PAST, "expires": PAST}
TRASH = {"status": "trash"}


@pytest.mark.parametrize(
    ("old", "new", "actions"),
    [
        (None, DRAFT, ["created"]),
        (None, LIVE, ["created", "published"]),
        (None, SCHEDULED, ["created"]),
        (DRAFT, DRAFT, ["updated"]),
        (DRAFT, LIVE, ["updated", "published"]),
        (LIVE, LIVE, ["updated"]),
        (LIVE, DRAFT, ["updated", "unpublished"]),
        (LIVE, SCHEDULED, ["updated", "unpublished"]),
        (LIVE, EXPIRED, ["updated", "unpublished"]),
        (SCHEDULED, LIVE, ["updated", "published"]),
        (EXPIRED, LIVE, ["updated", "published"]),
        (DRAFT, TRASH, ["deleted"]),
        (LIVE, TRASH, ["deleted"]),
        (TRASH, TRASH, ["updated"]),  # an edit in the trash deletes nothing again
        (TRASH, DRAFT, ["restored"]),
        (TRASH, LIVE, ["restored", "published"]),
        (LIVE, None, ["deleted"]),
        (DRAFT, None, ["deleted"]),
    ],
)
def test_document_events_for_each_transition(
    old: dict[str, Any] | None, new: dict[str, Any] | None, actions: list[str]
) -> None:
    events = document_events(
        make(**old) if old is not None else None, make(**new) if new is not None else None, NOW, source="watch"
    )
    assert [e.name for e in events] == [f"post.{a}" for a in actions]
    assert all(e.source == "watch" and e.key == "01K0000000AAAAAAAAAAAAAAAA" for e in events)
    assert all(a in DOCUMENT_ACTIONS for a in actions)
    assert all(e.name in EVENTS for e in events)


def test_document_events_of_nothing() -> None:
    assert document_events(None, None, NOW, source="api") == []


def test_every_event_named_in_the_code_is_declared() -> None:
    """An `Event("name", ...)` written anywhere in cms/ names an event of `EVENTS`."""
    named, undeclared = 0, []
    for path in sorted((Path(__file__).resolve().parents[2] / "cms").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Event"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                named += 1
                if node.args[0].value not in EVENTS:
                    undeclared.append(f"{path.name}:{node.lineno}: {node.args[0].value}")
    assert named, "no Event(...) found in cms/: the scan is broken"
    assert not undeclared, f"events not declared in cms.events.bus.EVENTS: {undeclared}"


@pytest.mark.parametrize(("type_name", "kind"), [("posts", "post"), ("pages", "page"), ("products", "entry")])
def test_event_kind_by_type(type_name: str, kind: str) -> None:
    assert kind_of(type_name) == kind
    events = document_events(None, make(type_name, **LIVE), NOW, source="api")
    assert [e.name for e in events] == [f"{kind}.created", f"{kind}.published"]
    assert set(events[0].data) == {kind}


def test_updated_event_carries_the_changed_fields_and_summary() -> None:
    old, new = make(**LIVE), make(**LIVE, title="Hello again")
    events = document_events(old, new, NOW, source="api", fields=["title"], url=lambda d: f"/posts/{d.slug}/")
    (updated,) = events
    assert updated.data["changes"] == ["title"]
    assert updated.data["post"] == summary(new, NOW, "/posts/hello/")
    assert updated.data["post"]["title"] == "Hello again"
    assert updated.data["post"]["status"] == "published"
    assert updated.data["post"]["category"] == "news"
    published = document_events(make(**DRAFT), new, NOW, source="api", fields=["draft"])
    assert "changes" in published[0].data and "changes" not in published[1].data


def test_deleted_event_describes_the_old_version() -> None:
    (deleted,) = document_events(make(**LIVE, title="Gone"), None, NOW, source="api")
    assert deleted.data["post"]["title"] == "Gone"
    assert deleted.data["post"]["url"] is None
