"""Incremental builds: exactly the outputs whose content changed are rewritten (checked against an
independent oracle, a clean build of the same input), nothing else is touched, removals clean up,
builds are byte-for-byte deterministic (also with the process pool), and changes become events."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import cms.render.build as build_module
import cms.render.feeds as feeds_module
import cms.render.manifest as manifest_module
import cms.render.parallel as parallel_module
import cms.workers as workers_module
from bench.corpus import generate
from cms.config import Site
from cms.events.bus import Event
from cms.render.build import BuildResult
from cms.render.output import tree_digest
from tests.render import BASE_URL, BODY_EDIT_OUTPUTS, DEMO_POST, build_site, copy_demo, html_files, parse_html, snapshot

POST = DEMO_POST
OLD_TITLE = "Water for coffee: hardness, alkalinity and what to do about it"
NEW_TITLE = "Water for coffee, revisited"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return copy_demo(tmp_path / "site")


@pytest.fixture
def out(site: Site) -> Path:
    """The demo site built once (the state every test starts from)."""
    path = site.root / "public"
    _, result = build_site(site, path)
    assert result.ok, result.errors
    time.sleep(0.01)  # so a rewrite would show in mtimes even on coarse clocks
    return path


def edit(site: Site, rel: str, change: Callable[[str], str]) -> None:
    path = site.content_dir / rel
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def oracle(site: Site, tmp_path: Path) -> Path:
    """A clean build of the site as it is now, into a fresh folder: what the output must equal."""
    fresh = tmp_path / "oracle"
    _, result = build_site(site, fresh, clean=True)
    assert result.ok, result.errors
    return fresh


def differing(before: dict[str, tuple[bytes, int]], folder: Path) -> set[str]:
    """Files of `folder` that are new or whose bytes differ from `before`."""
    now = snapshot(folder)
    return {rel for rel, (data, _) in now.items() if before.get(rel, (None, 0))[0] != data}


def assert_untouched(before: dict[str, tuple[bytes, int]], out: Path, except_: set[str]) -> None:
    after = snapshot(out)
    for rel, (data, mtime) in before.items():
        if rel not in except_ and rel in after:
            assert after[rel] == (data, mtime), f"{rel} was rewritten"


def build_completed(result: BuildResult) -> Event:
    events = [e for e in result.events if e.name == "build.completed"]
    assert len(events) == 1 and result.events[-1] is events[0]
    return events[0]


# -- nothing changed -----------------------------------------------------------------------------


def test_a_second_build_with_no_change_writes_nothing(site: Site, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(out)
    rendered = count_renders(monkeypatch)
    _, result = build_site(site, out)
    assert rendered == []
    assert result.ok
    assert result.written == [] and result.removed == []
    assert sorted(result.unchanged) == sorted(before)
    assert snapshot(out) == before
    assert [e.name for e in result.events] == ["build.completed"]
    assert result.changed_urls == []


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every template rendering (a rewrite with identical bytes is invisible in `written`)."""
    rendered: list[str] = []
    real = parallel_module.render_template
    monkeypatch.setattr(
        parallel_module, "render_template", lambda env, name, ctx: rendered.append(name) or real(env, name, ctx)
    )
    return rendered


def test_no_change_renders_nothing_even_after_clean(site: Site, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_site(site, out, clean=True)
    rendered = count_renders(monkeypatch)
    _, result = build_site(site, out)
    assert rendered == [] and result.written == []


def test_an_interrupted_build_is_redone_not_trusted(
    site: Site, out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build killed half-way leaves some outputs new and some old; if the edit is then undone, the
    next build must not keep the half-written new ones because their old signature matches again."""
    post = site.content_dir / "posts" / f"{POST}.md"
    original = post.read_text(encoding="utf-8")
    post.write_text(original.replace(OLD_TITLE, NEW_TITLE), encoding="utf-8")
    real_write = build_module.Output.write
    writes: list[str] = []

    def crash_after_three(self: build_module.Output, rel: str, data: bytes) -> str:
        if len(writes) == 3:
            raise KeyboardInterrupt
        writes.append(rel)
        return real_write(self, rel, data)

    monkeypatch.setattr(build_module.Output, "write", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_site(site, out)
    monkeypatch.undo()
    assert any(
        NEW_TITLE in (out / (w.lstrip("/") or "")).joinpath("index.html").read_text(encoding="utf-8")
        for w in writes
        if w.endswith("/")
    )
    post.write_text(original, encoding="utf-8")  # the edit is undone before the next build
    _, result = build_site(site, out)
    assert result.ok
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))


def test_the_first_build_reports_only_build_completed(tmp_path: Path) -> None:
    site = copy_demo(tmp_path / "site")
    _, result = build_site(site, tmp_path / "out")
    assert [e.name for e in result.events] == ["build.completed"]
    info = build_completed(result).data["build"]
    assert info["written"] == len(result.written) > 80
    assert (info["unchanged"], info["removed"], info["errors"]) == (0, 0, 0)
    assert isinstance(info["seconds"], float) and 0 <= info["seconds"] < 60
    assert info["changed_urls"] == result.changed_urls
    assert f"{BASE_URL}/" in result.changed_urls and f"{BASE_URL}/posts/{POST}/" in result.changed_urls


# -- one post edited -----------------------------------------------------------------------------


def pages_showing(out: Path, url: str, title: str) -> set[str]:
    """HTML files with a link to `url` whose text is `title` (cards, neighbours, related posts)."""
    found = set()
    for path in [out] if out.is_file() else html_files(out):
        page = parse_html(path.read_text(encoding="utf-8"))
        if any(e.attrs.get("href") == url and title in e.text for e in page.find("a")):
            found.add(path.name if path == out else path.relative_to(out).as_posix())
    return found


def test_a_post_edit_rewrites_exactly_the_outputs_that_show_it(site: Site, out: Path, tmp_path: Path) -> None:
    before = snapshot(out)
    url = f"/posts/{POST}/"
    showing = pages_showing(out, url, OLD_TITLE)
    # the post is shown on the home page, its archives, its neighbours and the posts that relate to it
    assert {"index.html", "categories/brewing/index.html", "authors/jonas-lindqvist/index.html"} <= showing
    assert {"tags/water/index.html", "tags/tasting/index.html", "tags/pour-over/index.html"} <= showing
    assert sum(rel.startswith("posts/") for rel in showing) >= 3  # newer, older, related
    expected = showing | {
        f"posts/{POST}/index.html",
        "feed.xml",
        "atom.xml",
        "categories/brewing/feed.xml",
        "categories/brewing/atom.xml",
        "sitemap.xml",  # lastmod follows `updated`
        "search.json",
    }

    edit(
        site,
        f"posts/{POST}.md",
        lambda t: t.replace(f'title: "{OLD_TITLE}"', f'title: "{NEW_TITLE}"\nupdated: 2026-11-20T10:00:00Z'),
    )
    _, result = build_site(site, out)
    assert result.ok, result.errors
    assert set(result.written) == expected
    assert result.removed == []
    assert_untouched(before, out, except_=expected)

    # The oracle: a clean build of the edited site equals the incremental result, and the files
    # whose bytes it changed are exactly the ones written.
    fresh = oracle(site, tmp_path)
    assert tree_digest(out) == tree_digest(fresh)
    assert differing(before, fresh) == expected

    # and the change set became events
    assert [e.name for e in result.events] == ["post.updated", "build.completed"]
    updated = result.events[0]
    assert updated.data["post"]["slug"] == POST and updated.data["post"]["title"] == NEW_TITLE
    assert updated.source == "build"
    info = build_completed(result).data["build"]
    assert (info["written"], info["removed"], info["errors"]) == (len(expected), 0, 0)
    assert info["unchanged"] == len(before) - len(expected)
    assert (
        info["changed_urls"]
        == result.changed_urls
        == sorted(BASE_URL + "/" + rel.removesuffix("index.html") for rel in expected)
    )

    # and a build after that writes nothing again
    _, again = build_site(site, out)
    assert again.written == [] and [e.name for e in again.events] == ["build.completed"]


def test_a_body_only_edit_leaves_lists_alone(site: Site, out: Path) -> None:
    """Lists show titles and excerpts, not bodies: a body edit with a summary in place touches only
    the post's page and the outputs that carry its body (feeds) or its text index."""
    before = snapshot(out)
    edit(site, f"posts/{POST}.md", lambda t: t.replace("Water is the ingredient", "Water is the one ingredient"))
    _, result = build_site(site, out)
    assert set(result.written) == BODY_EDIT_OUTPUTS
    assert_untouched(before, out, except_=set(result.written))


def test_a_body_only_edit_does_not_render_the_sitemap_or_the_search_index(
    site: Site, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They are signed by what they show (urls, dates, titles, excerpts), not by document versions:
    at 10,000 posts, rendering the sitemap was most of a one-post rebuild."""
    edit(site, f"posts/{POST}.md", lambda t: t.replace("Water is the ingredient", "Water is the one ingredient"))
    rendered = count_renders(monkeypatch)
    data_outputs: list[str] = []
    real = feeds_module.search_index
    monkeypatch.setattr(feeds_module, "search_index", lambda entries: data_outputs.append("x") or real(entries))
    build_site(site, out)
    assert "sitemap.xml" not in rendered and data_outputs == []
    edit(site, f"posts/{POST}.md", lambda t: t.replace("\ntitle:", "\nupdated: 2026-11-20T10:00:00Z\ntitle:", 1))
    _, result = build_site(site, out)
    assert "sitemap.xml" in result.written  # lastmod follows `updated`
    assert "2026-11-20" in (out / "sitemap.xml").read_text(encoding="utf-8")


# -- documents appear and disappear ----------------------------------------------------------------


def test_a_new_post_is_published(site: Site, out: Path, tmp_path: Path) -> None:
    (site.content_dir / "posts" / "fresh-crop.md").write_text(
        "---\ntitle: Fresh crop\ndate: 2026-11-23T09:00:00Z\ncategories: [news]\ntags: [kenya]\n---\nNew beans.\n",
        encoding="utf-8",
    )
    _, result = build_site(site, out)
    assert result.ok
    assert "posts/fresh-crop/index.html" in result.written
    assert [e.name for e in result.events] == ["post.published", "build.completed"]
    assert result.events[0].data["post"]["url"] == f"{BASE_URL}/posts/fresh-crop/"
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))


def test_deleting_a_post_removes_its_outputs_and_alias_pages(site: Site, out: Path, tmp_path: Path) -> None:
    slug = "compostable-packaging"
    assert (out / "blog" / "new-bags" / "index.html").is_file()
    (site.content_dir / "posts" / f"{slug}.md").unlink()
    _, result = build_site(site, out)
    assert result.ok
    assert {f"posts/{slug}/index.html", "blog/new-bags/index.html", "news/packaging-2026/index.html"} <= set(
        result.removed
    )
    assert not (out / "posts" / slug).exists()
    assert not (out / "blog" / "new-bags").exists() and not (out / "news").exists()  # empty folders go too
    assert "packaging" not in (out / "_redirects").read_text(encoding="utf-8")
    assert f"/posts/{slug}/" not in (out / "sitemap.xml").read_text(encoding="utf-8")
    assert [e.name for e in result.events] == ["post.deleted", "build.completed"]
    assert result.events[0].data["post"]["status"] == "deleted"
    assert f"{BASE_URL}/posts/{slug}/" in result.changed_urls
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))


def test_unpublishing_a_post_removes_it(site: Site, out: Path, tmp_path: Path) -> None:
    edit(site, f"posts/{POST}.md", lambda t: t.replace("author: jonas", "draft: true\nauthor: jonas"))
    _, result = build_site(site, out)
    assert result.ok
    assert f"posts/{POST}/index.html" in result.removed
    assert not (out / "posts" / POST).exists()
    # (other posts' bodies still link to it: that is the author's to fix, and `cms check`'s to tell)
    assert f"<link>{BASE_URL}/posts/{POST}/</link>" not in (out / "feed.xml").read_text(encoding="utf-8")
    assert f"<loc>{BASE_URL}/posts/{POST}/</loc>" not in (out / "sitemap.xml").read_text(encoding="utf-8")
    assert f'"u":"/posts/{POST}/"' not in (out / "search.json").read_text(encoding="utf-8")
    for rel in ("index.html", "categories/brewing/index.html", "authors/jonas-lindqvist/index.html"):
        assert not pages_showing(out / rel, f"/posts/{POST}/", OLD_TITLE), rel
    assert [e.name for e in result.events] == ["post.unpublished", "build.completed"]  # a draft now, not gone
    assert result.events[0].data["post"]["status"] == "draft"
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))
    # and the drafts build shows it again
    _, drafts = build_site(site, tmp_path / "drafts", drafts=True)
    assert (tmp_path / "drafts" / "posts" / POST / "index.html").is_file()


# -- theme and configuration -----------------------------------------------------------------------


def test_a_template_change_rebuilds_what_uses_it(site: Site, out: Path, tmp_path: Path) -> None:
    before = snapshot(out)
    builtin = Path(build_module.__file__).resolve().parents[2] / "themes" / "default" / "templates" / "page.html"
    override = site.root / "themes" / "default" / "templates" / "page.html"
    override.parent.mkdir(parents=True)
    override.write_text(
        builtin.read_text(encoding="utf-8").replace('<article class="page">', '<article class="page edited">'),
        encoding="utf-8",
    )
    _, result = build_site(site, out)
    assert result.ok
    pages = {"about/index.html", "colophon/index.html", "contact/index.html"}
    assert set(result.written) == pages
    assert all('class="page edited"' in (out / rel).read_text(encoding="utf-8") for rel in pages)
    assert_untouched(before, out, except_=pages)
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))

    # removing the override goes back to the built-in template
    override.unlink()
    _, result = build_site(site, out)
    assert set(result.written) == pages
    assert all('class="page edited"' not in (out / rel).read_text(encoding="utf-8") for rel in pages)


def test_a_static_file_change_rewrites_only_that_file(site: Site, out: Path) -> None:
    before = snapshot(out)
    css = site.root / "themes" / "default" / "static" / "style.css"
    css.parent.mkdir(parents=True)
    css.write_text("body { color: red }\n", encoding="utf-8")
    _, result = build_site(site, out)
    assert result.written == ["static/style.css"]
    assert (out / "static" / "style.css").read_text(encoding="utf-8") == "body { color: red }\n"
    assert_untouched(before, out, except_={"static/style.css"})


def test_a_config_change_rebuilds_every_page(site: Site, out: Path, tmp_path: Path) -> None:
    before = snapshot(out)
    toml = site.root / "cms.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('title = "Cinder & Crema"', 'title = "Cinder and Crema"'),
        encoding="utf-8",
    )
    site = Site.load(site.root)
    _, result = build_site(site, out)
    assert result.ok
    written = set(result.written)
    every_page = {p for p in before if p.endswith(".html")}
    assert every_page <= written
    feeds = {p for p in before if p.endswith(("feed.xml", "atom.xml"))}
    assert feeds <= written
    assert not any(p.startswith("static/") for p in written)
    assert {"search.json", "robots.txt", "_redirects"}.isdisjoint(written)
    for rel in every_page:
        title = parse_html((out / rel).read_text(encoding="utf-8")).title or ""
        assert "Cinder and Crema" in title, rel
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))


# -- --clean ---------------------------------------------------------------------------------------


def test_clean_rebuilds_everything_and_removes_strays(
    site: Site, out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = out / "posts" / POST / "index.html"
    page.write_text("tampered", encoding="utf-8")
    (out / "stray.txt").write_text("not from the build", encoding="utf-8")
    (out / "old" / "section").mkdir(parents=True)
    (out / "old" / "section" / "index.html").write_text("left over", encoding="utf-8")

    # an incremental build trusts its manifest: the tampered file is not even looked at
    _, result = build_site(site, out)
    assert result.written == [] and page.read_text(encoding="utf-8") == "tampered"

    rendered = count_renders(monkeypatch)
    _, result = build_site(site, out, clean=True)
    assert result.ok
    assert result.written == [f"posts/{POST}/index.html"]  # the only file whose bytes were wrong
    assert set(result.removed) == {"stray.txt", "old/section/index.html"}
    assert not (out / "old").exists()
    planned = len(result.written) + len(result.unchanged)
    templated = [rel for rel in result.written + result.unchanged if not rel.startswith("static/")]
    assert len(rendered) == len(templated) - 3  # every output rendered again (robots, _redirects, search.json are data)
    assert planned == len(snapshot(out))
    assert tree_digest(out) == tree_digest(oracle(site, tmp_path))


# -- determinism -----------------------------------------------------------------------------------


def test_two_builds_of_the_same_input_are_byte_identical(site: Site, tmp_path: Path) -> None:
    build_site(site, tmp_path / "a")
    build_site(site, tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    build_site(site, tmp_path / "c", drafts=True)
    build_site(site, tmp_path / "d", drafts=True)
    assert tree_digest(tmp_path / "c") == tree_digest(tmp_path / "d")


def test_the_process_pool_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(tmp_path / "bench", 500, seed=3)
    site = Site.load(tmp_path / "bench")
    pools: list[int] = []

    class Spy(workers_module.ProcessPoolExecutor):  # type: ignore[misc]
        def __init__(self, workers: int, **options: object) -> None:
            pools.append(workers)
            super().__init__(workers, **options)

    monkeypatch.setattr(workers_module, "ProcessPoolExecutor", Spy)  # (every pool of the project starts there)
    assert 500 * 0.95 >= build_module.PARALLEL_THRESHOLD  # enough published posts to use the pool
    _, parallel = build_site(site, tmp_path / "parallel", workers=2)
    assert pools == [2] and parallel.ok
    _, serial = build_site(site, tmp_path / "serial", workers=1)
    assert pools == [2] and serial.ok
    assert len(parallel.written) > 700
    assert tree_digest(tmp_path / "parallel") == tree_digest(tmp_path / "serial")
    # the parent keeps the books of what the workers wrote: a clean rebuild finds every file current
    _, again = build_site(site, tmp_path / "parallel", workers=2, clean=True)
    assert pools == [2, 2] and again.ok
    assert again.written == [] and again.removed == [] and len(again.unchanged) == len(parallel.written)
    assert tree_digest(tmp_path / "parallel") == tree_digest(tmp_path / "serial")
    # highlighted code made it through the workers
    sample = next((tmp_path / "parallel" / "posts").glob("*/index.html")).read_text(encoding="utf-8")
    assert re.search(r'<pre><code class="language-\w+">', sample) or "<pre>" in sample
    shutil.rmtree(tmp_path / "bench")


# -- syncing: large builds are trusted for the boot they were written in ----------------------------


def _manifest(site: Site, out: Path) -> dict[str, object]:
    return json.loads(manifest_module.manifest_path(site, out).read_text(encoding="utf-8"))


def _syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(manifest_module.os, "sync", lambda: calls.append(1))
    return calls


def test_a_large_build_is_not_synced_but_recorded_for_this_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = _syncs(monkeypatch)
    site = copy_demo(tmp_path / "site")
    out = tmp_path / "public"
    _, result = build_site(site, out)
    assert len(result.written) > 64 and syncs == []
    unsynced = _manifest(site, out)["unsynced"]
    assert isinstance(unsynced, dict) and unsynced["boot"] == manifest_module._boot_id()


def test_after_a_restart_unsynced_outputs_are_checked_again(
    site: Site, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash of the machine changes the boot id: the outputs of a build that was never synced are
    rendered and compared again; the ones whose bytes are right stay untouched."""
    before = snapshot(out)
    path = manifest_module.manifest_path(site, out)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["unsynced"] = {"boot": "another-boot", "at": time.time()}
    path.write_text(json.dumps(data), encoding="utf-8")
    rendered = count_renders(monkeypatch)
    _, result = build_site(site, out)
    assert len(rendered) > 64 and result.written == []  # everything checked again, nothing was wrong
    assert_untouched(before, out, except_=set())
    assert _manifest(site, out)["unsynced"] is None  # checked just now: nothing pending any more
    rendered.clear()
    build_site(site, out)
    assert rendered == []  # and trusted again


def test_a_small_build_later_syncs_what_a_large_one_left(
    site: Site, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = manifest_module.manifest_path(site, out)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["unsynced"] = {"boot": manifest_module._boot_id(), "at": time.time() - 120}
    path.write_text(json.dumps(data), encoding="utf-8")
    syncs = _syncs(monkeypatch)
    edit(site, f"posts/{POST}.md", lambda t: t.replace("Water is the ingredient", "Water is the one ingredient"))
    _, result = build_site(site, out)
    assert set(result.written) == BODY_EDIT_OUTPUTS and syncs == [1]
    assert _manifest(site, out)["unsynced"] is None


@pytest.mark.parametrize(
    "record",
    ["yesterday", 42, [], {}, {"boot": 7, "at": 1.0}, {"boot": "x"}, {"boot": None, "at": "soon"}],
    ids=repr,
)
def test_an_unreadable_sync_record_means_checking_everything_again(
    site: Site, out: Path, monkeypatch: pytest.MonkeyPatch, record: object
) -> None:
    path = manifest_module.manifest_path(site, out)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["unsynced"] = record
    path.write_text(json.dumps(data), encoding="utf-8")
    rendered = count_renders(monkeypatch)
    _, result = build_site(site, out)
    assert result.ok and result.written == [] and len(rendered) > 64
    assert _manifest(site, out)["unsynced"] is None
