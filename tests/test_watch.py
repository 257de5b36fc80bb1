"""The watcher against real watchfiles and real files: bounded waits, and a negative control for each ignore."""

from __future__ import annotations

import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from watchfiles import Change

import cms.folderwatch as folderwatch_module
from cms.config import Site
from cms.content.index import Index
from cms.content.model import etag_of
from cms.content.parse import locate
from cms.content.store import Store
from cms.events.bus import Bus, Event
from cms.watch import Watcher
from tests.conftest import MakeSite
from tests.support import wait_until

ID_A = "01J00000000000000000000AAA"
MARKER = "zz-settle-"  # the slug prefix of the pages `Live.settle()` writes and deletes


def post(title: str, doc_id: str | None = None, body: str = "Body.") -> str:
    head = f"id: {doc_id}\n" if doc_id else ""
    return f"---\n{head}title: {title}\n---\n{body}\n"


FILES = {
    "content/posts/a.md": post("A", ID_A),
    "content/posts/b.md": post("B"),
    "content/pages/about.md": post("About"),
    "content/products/kettle.md": post("Kettle"),
    "content/products/grinder.md": post("Grinder"),
    "content/products/sub/scale.md": post("Scale"),
    "content/products/_type.yaml": "label: Products\n",
    "content/categories/news.md": "---\nname: News\n---\n",
}


@dataclass
class Live:
    site: Site
    index: Index
    bus: Bus
    watcher: Watcher
    events: list[Event]
    markers: int = field(default=0)

    @property
    def content(self) -> Path:
        return self.site.content_dir

    def title(self, rel: str) -> str | None:
        doc = self.index.by_path_or_none(rel)
        return doc.title if doc else None

    def settle(self) -> None:
        """Return once every change made so far has been applied and published: the positive control that
        makes a negative check ("nothing more followed") mean something, with no fixed pause.

        A marker page is written, and deleted once it is indexed; waiting for the deletion proves the
        watcher applied (and published) every batch up to the marker's, because it handles one batch at a
        time, in the order the changes were made. A busy machine only makes this wait longer; a watcher
        that stopped fails it. The marker's own events are left out of `names()`."""
        self.markers += 1
        rel = f"pages/{MARKER}{self.markers}.md"
        (self.content / rel).write_text(post("Marker"))
        wait_until(lambda: self.title(rel) == "Marker", message=f"the watcher never indexed {rel}")
        (self.content / rel).unlink()
        gone = ("page.deleted", f"{MARKER}{self.markers}")
        wait_until(lambda: gone in [(e.name, e.data["page"].get("slug")) for e in self.events if "page" in e.data])
        assert self.index.by_path_or_none(rel) is None

    def names(self) -> list[str]:
        """The names of the events published so far, without those of `settle()`'s markers."""
        return [e.name for e in self.events if not _is_marker(e)]


def _is_marker(event: Event) -> bool:
    return any(str(part.get("slug", "")).startswith(MARKER) for part in event.data.values() if isinstance(part, dict))


@pytest.fixture
def live(make_site: MakeSite) -> Iterator[Live]:
    site = make_site(FILES)
    index = Index.load(site, background_search=False)
    bus = Bus()
    events: list[Event] = []
    bus.subscribe(events.append)
    watcher = Watcher(site, index, bus)
    watcher.start()
    try:
        yield Live(site, index, bus, watcher, events)
    finally:
        watcher.stop()
    assert not watcher.running


def disk_documents(site: Site) -> dict[str, str]:
    """rel -> etag of every document file the index should hold."""
    found = {}
    for path in site.content_dir.rglob("*.md"):
        rel = path.relative_to(site.content_dir).as_posix()
        loc = locate(rel, site.reserved_folders)
        if loc is not None and loc.kind == "document" and not any(p.startswith("_") for p in rel.split("/")[:-1]):
            found[rel] = etag_of(path.read_bytes())
    return found


def index_documents(index: Index) -> dict[str, str]:
    return {doc.path: doc.etag for doc in list(index.docs.values())}


def in_step(live: Live) -> bool:
    return index_documents(live.index) == disk_documents(live.site)


# -- the basic edits -------------------------------------------------------------------------------


def test_apply_is_the_pure_step(make_site: MakeSite) -> None:
    site = make_site(FILES)
    index = Index.load(site, background_search=False)
    bus = Bus()
    events: list[Event] = []
    bus.subscribe(events.append)
    store = Store(site, index)
    watcher = Watcher(site, index, bus, url=store.url)  # never started
    (site.content_dir / "posts" / "a.md").write_text(post("A2", ID_A))
    (site.content_dir / "posts" / "c.md").write_text(post("C"))
    changes = watcher.apply([site.content_dir / "posts" / "a.md", site.content_dir / "posts" / "c.md"])
    assert [(c.kind, c.doc.slug) for c in changes] == [("updated", "a"), ("created", "c")]
    assert [e.name for e in events] == ["post.updated", "post.created", "post.published"]
    assert events[0].data["changes"] == ["title"] and events[0].source == "watch"
    assert events[0].data["post"]["url"] == store.url(index.get(ID_A))
    assert watcher.apply([site.content_dir / "posts" / "a.md"]) == []  # unchanged etag: nothing to say
    assert not watcher.running


def test_create_edit_delete(live: Live) -> None:
    path = live.content / "posts" / "new.md"
    path.write_text(post("New"))
    wait_until(lambda: live.title("posts/new.md") == "New")

    path.write_text(post("Newer"))
    wait_until(lambda: live.title("posts/new.md") == "Newer")
    # The index changes first, the event is published a moment later: wait for it.
    wait_until(lambda: bool(live.events) and live.events[-1].name == "post.updated")
    assert [e.name for e in live.events][:1] == ["post.created"]
    assert live.events[-1].name == "post.updated" and live.events[-1].data["changes"] == ["title"]
    assert all(e.source == "watch" for e in live.events)

    path.unlink()
    wait_until(lambda: live.index.by_path_or_none("posts/new.md") is None)
    wait_until(lambda: live.events[-1].name == "post.deleted")
    assert in_step(live)


def test_every_edit_of_a_series_reaches_the_index(live: Live) -> None:
    # The latency (median <= 200 ms) is measured by bench/index.py (`watcher.median`), not asserted here.
    path = live.content / "posts" / "b.md"
    for n in range(40):
        path.write_text(post(f"B{n}"))
        wait_until(lambda n=n: live.title("posts/b.md") == f"B{n}")


def test_the_watch_asks_watchfiles_for_milliseconds(make_site: MakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save must reach the index in milliseconds, not after watchfiles' default 1.6 s debounce."""
    site = make_site(FILES)
    watcher = Watcher(site, Index.load(site, background_search=False))
    asked: dict[str, Any] = {}

    def fake_watch(*paths: object, **options: Any) -> Iterator[set[tuple[Change, str]]]:
        asked.update(options)
        options["stop_event"].set()  # one round is all this test needs
        return iter(())

    monkeypatch.setattr(folderwatch_module, "watch", fake_watch)
    watcher._run()  # in this thread: returns once the stop event is set
    assert asked["debounce"] <= 200 and asked["step"] <= 50  # watchfiles' defaults: 1,600 and 50 ms
    assert asked["stop_event"] is watcher._stop  # so stop() ends a watch within a step


def test_rename_is_one_update_with_the_same_id(live: Live) -> None:
    os.rename(live.content / "posts" / "a.md", live.content / "posts" / "zeta.md")  # old path sorts first
    wait_until(lambda: live.index.by_path_or_none("posts/zeta.md") is not None)
    wait_until(lambda: bool(live.events))  # the update arrived ...
    live.settle()  # ... and nothing more followed it
    doc = live.index.get(ID_A)
    assert (doc.path, doc.slug) == ("posts/zeta.md", "zeta")
    assert live.index.by_path_or_none("posts/a.md") is None
    assert live.names() == ["post.updated"]
    assert live.events[0].data["post"]["slug"] == "zeta"


def test_move_across_types(live: Live) -> None:
    os.rename(live.content / "posts" / "a.md", live.content / "pages" / "a.md")
    wait_until(lambda: live.index.by_path_or_none("pages/a.md") is not None)
    wait_until(lambda: bool(live.events))  # the update arrived ...
    live.settle()  # ... and nothing more followed it
    doc = live.index.get(ID_A)
    assert (doc.type, doc.path) == ("pages", "pages/a.md")
    assert live.names() == ["page.updated"]
    assert in_step(live)


# -- editors ---------------------------------------------------------------------------------------


def test_editor_save_patterns_leave_no_phantoms(live: Live) -> None:
    posts = live.content / "posts"
    before = set(live.index.docs)
    (posts / ".a.md.swp").write_bytes(b"vim swap\x00")  # vim: swap file, writability probe, then
    (posts / "4913").write_text("")  # write a new file and rename it over the target
    (posts / "4913").unlink()
    (posts / "a.md~").write_text(post("backup", ID_A))
    (posts / ".a.md.tmp").write_text(post("A by vim", ID_A))
    os.replace(posts / ".a.md.tmp", posts / "a.md")
    (posts / ".#a.md").symlink_to("user@host.1234")  # emacs lock file (a dangling symlink)
    (posts / "#a.md#").write_text(post("autosave", ID_A))
    (posts / "a.md___jb_tmp___").write_text(post("jetbrains", ID_A))
    (posts / ".DS_Store").write_bytes(b"\x00\x01")
    wait_until(lambda: live.title("posts/a.md") == "A by vim")
    wait_until(lambda: bool(live.events))  # the update arrived ...
    live.settle()  # ... and nothing more followed it
    assert set(live.index.docs) == before  # no phantom documents
    assert live.names() == ["post.updated"]  # never a delete + create of the target
    assert not live.index.problems
    assert in_step(live)


# -- broken files ----------------------------------------------------------------------------------


def test_broken_yaml_keeps_the_last_good_version(live: Live) -> None:
    path = live.content / "posts" / "b.md"
    path.write_text("---\ntitle: B\ntags: [one, two\n---\nbody\n")
    wait_until(lambda: "posts/b.md" in live.index.problems)
    problem = live.index.problems["posts/b.md"]
    assert problem.line >= 2 and problem.message.startswith("invalid YAML: ")  # (the rest is PyYAML's words)
    assert live.title("posts/b.md") == "B"  # still served
    path.write_text(post("B fixed"))
    wait_until(lambda: live.title("posts/b.md") == "B fixed")
    assert "posts/b.md" not in live.index.problems


def test_an_exception_in_apply_is_logged_and_the_watch_goes_on(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = live.index.refresh
    calls = []

    def flaky(rels: object) -> object:
        calls.append(rels)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(rels)  # type: ignore[arg-type]

    monkeypatch.setattr(live.index, "refresh", flaky)
    with caplog.at_level(logging.ERROR, logger="cms.watch"):
        (live.content / "posts" / "c.md").write_text(post("C"))
        wait_until(lambda: len(calls) == 1)
        (live.content / "posts" / "d.md").write_text(post("D"))
        wait_until(lambda: live.title("posts/d.md") == "D")
    assert live.watcher.running
    failures = [r for r in caplog.records if r.name == "cms.watch" and r.exc_info]
    assert [r.getMessage() for r in failures] == ["applying changed files failed; watching on"]  # not a restart


# -- many files at once ----------------------------------------------------------------------------


def test_a_burst_of_edits_converges(live: Live) -> None:
    rng = random.Random(4)
    posts = live.content / "posts"
    names = [f"burst{i:02}.md" for i in range(50)]
    for n in range(300):
        (posts / rng.choice(names)).write_text(post(f"edit {n}", body="x" * rng.randrange(2000)))
        time.sleep(rng.uniform(0, 0.005))
    wait_until(lambda: in_step(live))
    touched = {p.name for p in posts.glob("burst*.md")}
    assert touched and all(f"posts/{name}" in live.index.by_path for name in touched)  # 0 missed
    assert not live.index.problems


def test_a_checkout_of_100_files_converges(live: Live) -> None:
    posts = live.content / "posts"
    for i in range(100):
        (posts / f"co{i:03}.md").write_text(post(f"old {i}"))
    wait_until(lambda: in_step(live))
    temps = []
    for i in range(100):
        tmp = posts / f".co{i:03}.md.git-tmp"
        tmp.write_text(post(f"new {i}", body=f"checked out {i}"))
        temps.append((tmp, posts / f"co{i:03}.md"))
    for tmp, target in temps:
        os.replace(tmp, target)
    wait_until(lambda: in_step(live))
    assert live.title("posts/co099.md") == "new 99"


# -- folders ---------------------------------------------------------------------------------------


def test_folder_delete_and_new_folders(live: Live, tmp_path: Path) -> None:
    assert live.index.by_path_or_none("products/sub/scale.md") is not None
    shutil.rmtree(live.content / "products")
    wait_until(lambda: not any(p.startswith("products/") for p in live.index.by_path))
    assert "products" not in live.index.type_paths

    (live.content / "recipes").mkdir()  # files written straight after mkdir race the new folder's watch
    for i in range(5):
        (live.content / "recipes" / f"r{i}.md").write_text(post(f"Recipe {i}"))
    outside = tmp_path / "elsewhere" / "guides"
    (outside / "deep").mkdir(parents=True)
    (outside / "g.md").write_text(post("Guide"))
    (outside / "deep" / "h.md").write_text(post("Deep guide"))
    os.rename(outside, live.content / "guides")  # a moved-in folder brings one event for all its files
    wait_until(lambda: live.title("guides/deep/h.md") == "Deep guide")
    wait_until(lambda: live.title("recipes/r4.md") == "Recipe 4")
    assert in_step(live)

    os.rename(live.content / "guides", tmp_path / "elsewhere" / "guides")  # and moved out again
    wait_until(lambda: live.index.by_path_or_none("guides/g.md") is None)
    wait_until(lambda: in_step(live))


def test_type_schema_edit(live: Live) -> None:
    assert live.index.types["products"].label == "Products"
    (live.content / "products" / "_type.yaml").write_text("label: Wares\n")
    wait_until(lambda: live.index.types["products"].label == "Wares")


def test_term_file_edit(live: Live) -> None:
    (live.content / "categories" / "news.md").write_text("---\nname: Latest news\n---\n")
    # .get: Index.refresh drops a term before re-reading it, and readers do not take the index lock
    wait_until(lambda: getattr(live.index.terms["categories"].get("news"), "name", "") == "Latest news")


# -- the store's own writes ------------------------------------------------------------------------


def test_store_writes_are_not_published_again(live: Live) -> None:
    store = Store(live.site, live.index, live.bus)
    doc = store.update(live.index.get("b", "posts"), {"title": "B by API"})
    created = store.create("posts", {"title": "From the API", "content": "Hi."})
    store.rename(live.index.get(created.id), "renamed-by-api")
    live.settle()  # the watcher has seen those writes by now
    own = [e for e in live.events if not _is_marker(e)]
    assert [e.source for e in own] == ["api"] * len(own)
    assert [e.name for e in own] == ["post.updated", "post.created", "post.updated"]
    assert doc.title == "B by API" and in_step(live)
    # and a hand edit of the same file is still published by the watcher
    (live.content / "posts" / "b.md").write_text(post("B by hand"))
    wait_until(lambda: [e.source for e in live.events if not _is_marker(e)][-1:] == ["watch"])


# -- what the watcher must never index -------------------------------------------------------------


def test_files_outside_content_are_never_indexed(live: Live) -> None:
    root = live.site.root
    strays = [
        root / "public" / "x.md",
        root / ".cms" / "x.md",
        root / "x.md",
        live.content / ".hidden" / "x.md",
        live.content / "posts" / "_drafts" / "x.md",
        live.content / "posts" / ".cms-tmp-abc.md",
    ]
    for path in strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(post("Stray"))
    (live.content / "posts" / "marker.md").write_text(post("Marker"))  # written last
    wait_until(lambda: live.title("posts/marker.md") == "Marker")
    live.settle()  # every stray was reported (or never watched) and applied by now
    assert live.watcher.apply(strays) == []
    assert not [d for d in live.index.docs.values() if d.title == "Stray"]
    assert in_step(live)


@pytest.mark.parametrize(
    ("rel", "wanted"),
    [
        ("posts/a.md", True),
        ("posts/new.md", True),  # need not exist: a deleted file is still news
        ("posts/2024/deep.md", True),
        ("products/_type.yaml", True),
        ("categories/news.md", True),
        ("about.md", True),  # a page directly in content/
        ("products", True),  # a folder the index holds documents under
        ("gone", False),  # neither a folder on disk nor one the index knows
        ("posts/.a.md.swp", False),
        ("posts/a.md.swx", False),
        ("posts/4913", False),
        ("posts/a.md~", False),
        ("posts/.#a.md", False),
        ("posts/#a.md#", False),
        ("posts/.DS_Store", False),
        ("posts/a.md___jb_tmp___", False),
        ("posts/a.md___jb_old___", False),
        ("posts/.cms-tmp-x1y2.md", False),
        ("posts/_drafts/a.md", False),
        (".git/HEAD", False),
        ("posts/image.png", False),
        ("posts/_index.md", False),
        ("../public/x.md", False),
        ("../.cms/x.md", False),
    ],
)
def test_the_filter(make_site: MakeSite, rel: str, wanted: bool) -> None:
    site = make_site(FILES)
    index = Index.load(site, fill_search=False)
    watch_filter = Watcher(site, index).filter
    full = str(site.content_dir / rel)
    assert (watch_filter.relevant(full) is not None) is wanted
    assert watch_filter(Change.deleted, full) is wanted


def test_stop_returns_within_the_timeout(live: Live) -> None:
    thread = live.watcher._thread
    assert thread is not None and live.watcher.running
    live.watcher.stop(timeout=30.0)  # the bound only guards against a hang; watchfiles checks the event every step
    assert not live.watcher.running and not thread.is_alive()  # it ended, rather than the join giving up
    assert "cms-watch" not in {t.name for t in threading.enumerate()}
