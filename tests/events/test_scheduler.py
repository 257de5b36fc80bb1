"""The scheduler: publish and expiry moments announced once (also across restarts), hand edits made
while no server ran reconciled, and `cms build`'s change set agreeing with it on event ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.webhooks import Receiver, make_site
from cms.config import Site
from cms.content.index import Index
from cms.events.bus import Bus, Event
from cms.events.scheduler import Scheduler
from cms.events.webhooks import Webhooks
from cms.render.build import build
from cms.state import State
from tests.support import Clock, wait_until

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def post(title: str, *, date: datetime | None = None, expires: datetime | None = None, draft: bool = False) -> str:
    lines = [f"title: {title}"]
    if date is not None:
        lines.append(f"date: {date.isoformat().replace('+00:00', 'Z')}")
    if expires is not None:
        lines.append(f"expires: {expires.isoformat().replace('+00:00', 'Z')}")
    if draft:
        lines.append("status: draft")
    return "---\n" + "\n".join(lines) + "\n---\nBody.\n"


def write(site: Site, slug: str, text: str) -> None:
    (site.content_dir / "posts" / f"{slug}.md").write_text(text, encoding="utf-8")


class Recorder:
    """A bus that records what it is given."""

    def __init__(self) -> None:
        self.bus = Bus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    def names(self) -> list[tuple[str, str]]:
        return sorted((e.name, next(iter(e.data.values()))["id"]) for e in self.events)


class CountingClock(Clock):
    """A Clock that counts its readings: the test sees the scheduler's thread look at the time."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        return self.now


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path / "site")


@pytest.fixture
def states(site: Site) -> Iterator[Callable[[], State]]:
    opened: list[State] = []

    def open_state() -> State:
        st = State(site.state_dir)
        opened.append(st)
        return st

    yield open_state
    for st in opened:
        st.close()


def doc_id(index: Index, slug: str) -> str:
    return next(d.id for d in index.docs.values() if d.slug == slug)


# -- live: the scheduler's own thread (on a clock the test moves) ------------------------------------


def test_the_running_scheduler_publishes_a_scheduled_post_once_and_not_before_its_time(
    site: Site, states: Callable[[], State]
) -> None:
    """The thread, not a check() the test calls, announces the moment. The clock is moved by hand, so
    a slow machine only delays the thread's next look, never moves a post across its moment."""
    write(site, "old", post("Old", date=T0 - timedelta(days=3)))
    write(site, "soon", post("Soon", date=T0 + timedelta(minutes=5)))
    write(site, "later", post("Later", date=T0 + timedelta(minutes=10)))
    index = Index.load(site, background_search=False)
    recorder = Recorder()
    clock = CountingClock(T0)
    scheduler = Scheduler(index, recorder.bus, states(), clock=clock)
    scheduler.start()
    try:
        assert recorder.events == []  # the first run only records what is there
        clock.advance(minutes=5, seconds=-1)  # a second before the moment
        looked = clock.readings
        wait_until(lambda: clock.readings >= looked + 2, message="the scheduler's thread never looked at the clock")
        assert recorder.events == []  # it looked, and found nothing due yet
        clock.advance(seconds=1)
        wait_until(lambda: recorder.events, message="the scheduled post was never announced")
        (event,) = recorder.events
        assert (event.name, event.source) == ("post.published", "scheduler")
        data = event.data["post"]
        assert data["slug"] == "soon" and data["status"] == "published"
        # Once: the next moment makes the thread run a whole check again, which would repeat a
        # "soon" it had not recorded; waiting for "later" proves that check ran.
        clock.advance(minutes=5)
        wait_until(lambda: len(recorder.events) >= 2, message="the second scheduled post was never announced")
    finally:
        scheduler.stop()
    assert [(e.name, e.data["post"]["slug"]) for e in recorder.events] == [
        ("post.published", "soon"),
        ("post.published", "later"),
    ]


def test_an_expiry_is_announced_as_unpublished(site: Site, states: Callable[[], State]) -> None:
    write(site, "sale", post("Sale", date=T0 - timedelta(days=1), expires=T0 + timedelta(minutes=5)))
    index = Index.load(site, background_search=False)
    recorder = Recorder()
    clock = Clock(T0)
    scheduler = Scheduler(index, recorder.bus, states(), clock=clock)
    assert scheduler.check(reconcile=True) == []
    assert 0.01 <= scheduler.seconds_to_next() <= 1.0
    clock.advance(minutes=4)
    assert scheduler.check() == []
    clock.advance(minutes=2)
    (event,) = scheduler.check()
    assert event.name == "post.unpublished" and event.data["post"]["status"] == "expired"
    assert scheduler.check() == []  # once


def test_between_changes_and_moments_a_tick_does_not_scan(site: Site, states: Callable[[], State]) -> None:
    """`due()` says when a check could find something: an index change or a passed moment, nothing else."""
    write(site, "live", post("Live", date=T0 - timedelta(days=1)))
    write(site, "later", post("Later", date=T0 + timedelta(minutes=10)))
    index = Index.load(site, background_search=False)
    clock = Clock(T0)
    scheduler = Scheduler(index, Recorder().bus, states(), clock=clock)
    assert scheduler.due()  # never looked
    scheduler.check(reconcile=True)
    assert not scheduler.due()
    clock.advance(minutes=9)
    assert not scheduler.due() and scheduler.seconds_to_next() == 1.0
    clock.advance(seconds=59.5)
    assert not scheduler.due() and 0.4 <= scheduler.seconds_to_next() <= 0.6  # wakes at the moment
    clock.advance(seconds=1)
    assert scheduler.due()
    (event,) = scheduler.check()
    assert event.name == "post.published"
    assert not scheduler.due()
    write(site, "live", post("Live, edited", date=T0 - timedelta(days=1)))
    index.refresh(["posts/live.md"])
    assert scheduler.due()  # the index moved on
    scheduler.check()
    assert not scheduler.due()


# -- restarts: a clock moved by hand -------------------------------------------------------------


def test_a_restart_catches_up_on_each_passed_schedule_exactly_once(site: Site, states: Callable[[], State]) -> None:
    write(site, "live", post("Live", date=T0 - timedelta(days=1)))
    write(site, "later", post("Later", date=T0 + timedelta(hours=1)))
    write(site, "ending", post("Ending", date=T0 - timedelta(days=1), expires=T0 + timedelta(hours=2)))
    write(site, "far", post("Far", date=T0 + timedelta(days=30)))
    clock = Clock(T0)
    recorder = Recorder()
    first = Scheduler(Index.load(site, background_search=False), recorder.bus, states(), clock=clock)
    first.start()
    first.stop()
    assert recorder.events == []  # first-ever run: nothing to announce

    clock.advance(hours=3)  # both schedules pass while no server runs
    index = Index.load(site, background_search=False)
    hooks = Webhooks(site, states())
    with Receiver() as receiver:
        hooks.create({"name": "all", "url": receiver.url, "events": ["*"]})
        recorder.bus.subscribe(hooks.subscriber)
        second = Scheduler(index, recorder.bus, states(), clock=clock)
        second.start()
        second.stop()
        assert recorder.names() == [
            ("post.published", doc_id(index, "later")),
            ("post.unpublished", doc_id(index, "ending")),
        ]
        assert hooks.pending_count() == 2

        third = Scheduler(Index.load(site, background_search=False), recorder.bus, states(), clock=clock)
        third.start()
        third.stop()
        assert len(recorder.events) == 2  # a second restart: nothing new
        # Even a scheduler that had lost its memory would re-emit the same ids: the outbox keeps one.
        for event in recorder.events:
            assert hooks.enqueue(event) == []
        assert receiver.count() == 0


def test_the_first_ever_run_announces_nothing(site: Site, states: Callable[[], State]) -> None:
    write(site, "past", post("Past", date=T0 - timedelta(days=400)))
    write(site, "expired", post("Expired", date=T0 - timedelta(days=10), expires=T0 - timedelta(days=1)))
    write(site, "draft", post("Draft", draft=True))
    recorder = Recorder()
    scheduler = Scheduler(Index.load(site, background_search=False), recorder.bus, states(), clock=Clock(T0))
    scheduler.start()
    scheduler.stop()
    assert recorder.events == []


def test_hand_edits_made_while_down_are_reconciled(site: Site, states: Callable[[], State]) -> None:
    write(site, "edited", post("Edited", date=T0 - timedelta(days=2)))
    write(site, "removed", post("Removed", date=T0 - timedelta(days=2)))
    write(site, "drafted", post("Drafted", date=T0 - timedelta(days=2)))
    write(site, "same", post("Same", date=T0 - timedelta(days=2)))
    clock = Clock(T0)
    recorder = Recorder()
    before = Index.load(site, background_search=False)
    removed_id = doc_id(before, "removed")
    Scheduler(before, recorder.bus, states(), clock=clock).check(reconcile=True)
    assert recorder.events == []

    # "Down": a person edits, adds and removes files.
    write(site, "edited", post("Edited again", date=T0 - timedelta(days=2)))
    write(site, "added", post("Added", date=T0 - timedelta(hours=1)))
    write(site, "added-draft", post("Added draft", draft=True))
    write(site, "drafted", post("Drafted", date=T0 - timedelta(days=2), draft=True))
    (site.content_dir / "posts" / "removed.md").unlink()

    after = Index.load(site, background_search=False)
    scheduler = Scheduler(after, recorder.bus, states(), clock=clock)
    scheduler.start()
    scheduler.stop()
    assert recorder.names() == sorted(
        [
            ("post.updated", doc_id(after, "edited")),
            ("post.created", doc_id(after, "added")),
            ("post.published", doc_id(after, "added")),
            ("post.created", doc_id(after, "added-draft")),
            ("post.updated", doc_id(after, "drafted")),
            ("post.unpublished", doc_id(after, "drafted")),
            ("post.deleted", removed_id),
        ]
    )
    assert all(e.source == "scheduler" for e in recorder.events)
    edited = next(e for e in recorder.events if e.name == "post.updated" and e.data["post"]["slug"] == "edited")
    assert edited.data["post"]["title"] == "Edited again"
    again = Scheduler(Index.load(site, background_search=False), recorder.bus, states(), clock=clock)
    again.start()
    again.stop()
    assert len(recorder.events) == 7  # reconciled once


def test_a_running_scheduler_leaves_edits_to_the_store_and_watcher(site: Site, states: Callable[[], State]) -> None:
    """Without reconcile, a changed file is not announced again (its writer did that)."""
    write(site, "a", post("A", date=T0 - timedelta(days=2)))
    index = Index.load(site, background_search=False)
    recorder = Recorder()
    scheduler = Scheduler(index, recorder.bus, states(), clock=Clock(T0))
    scheduler.check(reconcile=True)
    write(site, "a", post("A changed", date=T0 - timedelta(days=2)))
    index.refresh(["posts/a.md"])
    assert scheduler.check() == []
    assert scheduler.check(reconcile=True) == []  # and the new version is now the known one


# -- cms build agrees with the scheduler --------------------------------------------------------


def test_a_build_after_a_schedule_passes_reuses_the_schedulers_event_id(
    site: Site, states: Callable[[], State]
) -> None:
    write(site, "live", post("Live", date=T0 - timedelta(days=1)))
    write(site, "later", post("Later", date=T0 + timedelta(hours=1)))
    index = Index.load(site, background_search=False)
    clock = Clock(T0)
    recorder = Recorder()
    hooks = Webhooks(site, states())
    with Receiver() as receiver:
        hooks.create({"name": "publish", "url": receiver.url, "events": ["post.published"]})
        recorder.bus.subscribe(hooks.subscriber)
        first = build(site, index, now=clock())
        assert [e.name for e in first.events] == ["build.completed"]
        scheduler = Scheduler(index, recorder.bus, states(), clock=clock)
        scheduler.check(reconcile=True)
        clock.advance(hours=2)
        (announced,) = scheduler.check()
        assert announced.name == "post.published"
        assert hooks.pending_count() == 1

        cron = build(site, index, now=clock())  # a cron build sees the same change
        published = [e for e in cron.events if e.name == "post.published"]
        assert [e.id for e in published] == [announced.id]
        assert published[0].source == "build"
        assert hooks.enqueue(published[0]) == []  # the outbox keeps one row
        assert hooks.pending_count() == 1
        assert receiver.count() == 0


# -- the build's change set ----------------------------------------------------------------------


def test_the_build_change_set(site: Site, states: Callable[[], State]) -> None:
    for slug in ("one", "two", "three", "four"):
        write(site, slug, post(slug.capitalize(), date=T0 - timedelta(days=1)))
    index = Index.load(site, background_search=False)
    first = build(site, index, now=T0)
    assert [e.name for e in first.events] == ["build.completed"]  # first build: nothing to compare
    second = build(site, index, now=T0)
    assert [e.name for e in second.events] == ["build.completed"]  # nothing changed
    assert second.events[0].data["build"]["changed_urls"] == []

    ids = {slug: doc_id(index, slug) for slug in ("one", "two", "three")}
    write(site, "one", post("One, edited", date=T0 - timedelta(days=1)))
    write(site, "two", post("Two, edited", date=T0 - timedelta(days=1)))
    (site.content_dir / "posts" / "three.md").unlink()
    index = Index.load(site, background_search=False)
    third = build(site, index, now=T0)
    assert sorted(
        (e.name, next(iter(e.data.values())).get("id")) for e in third.events if e.name != "build.completed"
    ) == sorted([("post.updated", ids["one"]), ("post.updated", ids["two"]), ("post.deleted", ids["three"])])
    assert third.events[-1].name == "build.completed"
    changed = third.events[-1].data["build"]["changed_urls"]
    base = site.site.base_url
    for slug in ("one", "two", "three"):
        assert f"{base}/posts/{slug}/" in changed, (slug, changed)
    # (other pages change too: lists, feeds, and the neighbour links of the posts next to them)
    assert [e.name for e in build(site, index, now=T0).events] == ["build.completed"]


def test_an_edit_just_before_the_publish_moment_does_not_swallow_the_publish(
    site: Site, states: Callable[[], State]
) -> None:
    """The edit was announced as `updated` while the post was still scheduled; the moment that
    passes after it is the scheduler's to announce, although the file changed since its last look."""
    write(site, "soon", post("Soon", date=T0 + timedelta(seconds=10)))
    write(site, "ends", post("Ends", date=T0 - timedelta(days=1), expires=T0 + timedelta(seconds=10)))
    index = Index.load(site, background_search=False)
    clock = Clock(T0)
    recorder = Recorder()
    scheduler = Scheduler(index, recorder.bus, states(), clock=clock)
    scheduler.check(reconcile=True)
    clock.advance(seconds=9)
    write(site, "soon", post("Soon, typo fixed", date=T0 + timedelta(seconds=10)))
    write(site, "ends", post("Ends, typo fixed", date=T0 - timedelta(days=1), expires=T0 + timedelta(seconds=10)))
    index.refresh(["posts/soon.md", "posts/ends.md"])  # the store or watcher announced these edits
    clock.advance(seconds=2)
    events = scheduler.check()
    assert sorted((e.name, e.data["post"]["title"]) for e in events) == [
        ("post.published", "Soon, typo fixed"),
        ("post.unpublished", "Ends, typo fixed"),
    ]
    assert scheduler.check() == []


def test_an_edit_that_publishes_is_left_to_its_writer(site: Site, states: Callable[[], State]) -> None:
    write(site, "draft", post("Draft", date=T0 - timedelta(days=1), draft=True))
    index = Index.load(site, background_search=False)
    clock = Clock(T0)
    scheduler = Scheduler(index, Recorder().bus, states(), clock=clock)
    scheduler.check(reconcile=True)
    clock.advance(seconds=1)
    write(site, "draft", post("Draft", date=T0 - timedelta(days=1)))  # published by an edit: the writer said so
    index.refresh(["posts/draft.md"])
    clock.advance(seconds=1)
    assert scheduler.check() == []
