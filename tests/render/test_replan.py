"""Rebuilds of a live index (the preview's, and `bench.build`'s incremental figure) bring the last
plan up to date instead of planning the site again when no edit moved anything. Every test checks
the output against an independent oracle, a clean build of the same files in a fresh process state
(a new index and no cache, so no plan to reuse), and checks which way the plan went: a reuse that is never taken
would pass the oracle too."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bench.corpus import generate
from cms.config import Site
from cms.content.index import Index
from cms.render.build import BuildCache, BuildResult, build
from cms.render.output import tree_digest
from tests.render import BODY_EDIT_OUTPUTS, DEMO_POST, NOW, SCHEDULED, build_site, copy_demo

POST = DEMO_POST
DRAFT = "grinder-buying-guide"


class Live:
    """A site with one index kept up to date the way the watcher does it, built into one folder."""

    def __init__(self, site: Site, out: Path, oracle_out: Path) -> None:
        self.site, self.out, self.oracle_out = site, out, oracle_out
        self.index = Index.load(site, fill_search=False)
        self.cache = BuildCache()  # kept across the rebuilds, as the preview keeps its own
        first = self.build()
        assert first.ok and not first.plan_reused, first.errors

    def edit(self, rel: str, change: Callable[[str], str]) -> None:
        path = self.site.content_dir / rel
        text = path.read_text(encoding="utf-8")
        changed = change(text)
        assert changed != text, f"the edit of {rel} changed nothing"
        path.write_text(changed, encoding="utf-8")
        self.index.refresh([rel])

    def build(self, **options: object) -> BuildResult:
        options.setdefault("now", NOW)
        return build(self.site, self.index, out=self.out, cache=self.cache, **options)  # type: ignore[arg-type]

    def assert_like_a_clean_build(self, **options: object) -> None:
        _, fresh = build_site(self.site, self.oracle_out, clean=True, **options)
        assert fresh.ok, fresh.errors
        assert tree_digest(self.out) == tree_digest(self.oracle_out)


@pytest.fixture
def live(tmp_path: Path) -> Live:
    return Live(copy_demo(tmp_path / "site"), tmp_path / "out", tmp_path / "oracle")


def retitle(new: str) -> Callable[[str], str]:
    return lambda text: re.sub(r"(?m)^title: .*$", f'title: "{new}"', text, count=1)


def test_a_body_edit_reuses_the_plan_and_rewrites_only_the_post_and_its_feeds(live: Live) -> None:
    live.edit(f"posts/{POST}.md", lambda t: t.replace("Water is the ingredient", "Water is the one ingredient"))
    result = live.build()
    assert result.plan_reused
    assert set(result.written) == BODY_EDIT_OUTPUTS
    live.assert_like_a_clean_build()


def test_a_post_title_edit_reuses_the_plan_and_updates_every_page_showing_the_post(live: Live) -> None:
    live.edit(f"posts/{POST}.md", retitle("Water, revisited"))
    result = live.build()
    assert result.plan_reused
    written = set(result.written)
    # its page, the lists, neighbours and related posts showing it, its feeds and the search index
    assert {f"posts/{POST}/index.html", "index.html", "tags/water/index.html", "search.json"} <= written
    assert sum(rel.startswith("posts/") for rel in written) >= 3
    assert "sitemap.xml" not in written  # same URL, same date
    live.assert_like_a_clean_build()
    again = live.build()
    assert again.plan_reused and again.written == []


def test_a_draft_edit_reuses_the_plan_and_writes_nothing(live: Live) -> None:
    live.edit(f"posts/{DRAFT}.md", lambda t: t + "\nOne more line.\n")
    result = live.build()
    assert result.plan_reused and result.written == []
    live.assert_like_a_clean_build()


@pytest.mark.parametrize(
    ("rel", "change"),
    [
        pytest.param(f"posts/{POST}.md", lambda t: t.replace("tags: [water,", "tags: [espresso, water,"), id="tags"),
        pytest.param(f"posts/{POST}.md", lambda t: t.replace("date: 2025-12-11", "date: 2024-12-11"), id="date"),
        pytest.param(f"posts/{POST}.md", lambda t: t.replace("\ntitle:", "\ndraft: true\ntitle:", 1), id="unpublish"),
        pytest.param(f"posts/{POST}.md", lambda t: t.replace("\ntitle:", "\nslug: water-guide\ntitle:", 1), id="slug"),
        pytest.param(f"posts/{DRAFT}.md", lambda t: t.replace("draft: true", "draft: false"), id="publish"),
        pytest.param("pages/about.md", retitle("About the roastery"), id="page-title-in-menu"),
        pytest.param("authors/mara-okafor.md", lambda t: t + "\nShe also teaches cupping.\n", id="author-term"),
    ],
)
def test_an_edit_that_moves_something_plans_the_site_again(live: Live, rel: str, change: Callable[[str], str]) -> None:
    live.edit(rel, change)
    result = live.build()
    assert result.ok, result.errors
    assert not result.plan_reused
    live.assert_like_a_clean_build()


def test_a_new_and_a_deleted_post_plan_the_site_again(live: Live) -> None:
    (live.site.content_dir / "posts" / "fresh-crop.md").write_text(
        "---\ntitle: Fresh crop\ndate: 2026-11-23T09:00:00Z\ntags: [kenya]\n---\nNew beans.\n", encoding="utf-8"
    )
    live.index.refresh(["posts/fresh-crop.md"])
    assert not live.build().plan_reused
    live.assert_like_a_clean_build()
    (live.site.content_dir / "posts" / f"{POST}.md").unlink()
    live.index.refresh([f"posts/{POST}.md"])
    result = live.build()
    assert not result.plan_reused and f"posts/{POST}/index.html" in result.removed
    live.assert_like_a_clean_build()


def test_a_scheduled_post_appears_when_its_time_comes_without_any_edit(live: Live) -> None:
    assert live.build(now=NOW + timedelta(minutes=5)).plan_reused  # nothing happens in between
    moment = live.index.get(SCHEDULED, "posts").published_at
    assert moment is not None and moment > NOW
    later = moment + timedelta(seconds=1)
    result = live.build(now=later)
    assert not result.plan_reused
    assert f"posts/{SCHEDULED}/index.html" in result.written
    live.assert_like_a_clean_build(now=later)


def test_other_build_options_plan_the_site_again(live: Live) -> None:
    result = live.build(drafts=True)
    assert not result.plan_reused and f"posts/{DRAFT}/index.html" in result.written
    live.assert_like_a_clean_build(drafts=True)
    assert not live.build(base_url="https://elsewhere.example").plan_reused


def test_random_edits_of_a_generated_site_always_give_what_a_clean_build_gives(tmp_path: Path) -> None:
    """Thirty edits of every kind, each rebuilt on the live index and compared with a clean build."""
    generate(tmp_path / "site", 60, seed=7)
    live = Live(Site.load(tmp_path / "site"), tmp_path / "out", tmp_path / "oracle")
    rng = random.Random(7)
    posts = sorted(p.name for p in (live.site.content_dir / "posts").glob("*.md"))
    edits: list[tuple[str, Callable[[str], str]]] = [
        ("body", lambda t: t + f"\nAnother paragraph {rng.random()}.\n"),
        ("title", lambda t: re.sub(r"(?m)^title: .*$", f"title: Retitled {rng.randrange(10**6)}", t, count=1)),
        ("summary", lambda t: re.sub(r"(?m)^summary: .*$", f"summary: New summary {rng.random()}", t, count=1)),
        ("tags", lambda t: re.sub(r"(?m)^tags:\n", f"tags:\n  - fresh-{rng.randrange(5)}\n", t, count=1)),
        ("date", lambda t: re.sub(r"(?m)^date: \d{4}", f"date: {rng.choice(range(2021, 2026))}", t, count=1)),
        ("draft", lambda t: t.replace("\ntitle:", "\ndraft: true\ntitle:", 1) if "draft: true" not in t else t),
    ]
    kinds = {True: 0, False: 0}
    for _ in range(30):
        name, change = rng.choice(edits)
        rel = f"posts/{rng.choice(posts)}"
        path = live.site.content_dir / rel
        text = path.read_text(encoding="utf-8")
        changed = change(text)
        if changed == text:
            continue  # (a summary-less post, an existing draft, the same year)
        live.edit(rel, lambda _, changed=changed: changed)
        result = live.build()
        assert result.ok, (name, result.errors)
        kinds[result.plan_reused] += 1
        live.assert_like_a_clean_build()
    assert kinds[True] >= 5 and kinds[False] >= 5, kinds  # both ways were exercised


def test_a_build_without_the_cache_plans_the_site_anew(live: Live) -> None:
    """Only the cache the caller hands in carries a plan: another build of the same index, without
    it, plans everything again (and gives the same bytes)."""
    live.edit(f"posts/{POST}.md", lambda t: t.replace("Water is the ingredient", "Water is the one ingredient"))
    result = build(live.site, live.index, out=live.out, now=NOW)
    assert result.ok and not result.plan_reused
    assert set(result.written) == BODY_EDIT_OUTPUTS
    live.assert_like_a_clean_build()
    other = Index.load(live.site, fill_search=False)  # the caller's cache with another index: planned anew
    assert not build(live.site, other, out=live.out, now=NOW, cache=live.cache).plan_reused
