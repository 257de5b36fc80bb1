"""The in-memory index: loading, lookups, problems with file and line, refresh and its changes."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cms.config import Site
from cms.content import forked
from cms.content.index import PARALLEL_THRESHOLD, Change, Index, Parsed
from cms.content.loader import Loader
from cms.content.model import Status
from cms.content.names import is_id, path_id
from cms.content.parse import Location
from cms.errors import NotFound
from tests.content.single_thread import single_threaded
from tests.support import DEMO_DOCUMENTS, DEMO_DRAFTS, DEMO_LIVE_POSTS, DEMO_NOW, DEMO_PAGES, DEMO_POSTS, DEMO_PRODUCTS

ID_A = "01K0000000AAAAAAAAAAAAAAAA"
ID_B = "01K0000000BBBBBBBBBBBBBBBB"


def post(title: str, *lines: str, body: str = "Body text.") -> str:
    fm = "\n".join([f"title: {title}", *lines])
    return f"---\n{fm}\n---\n{body}\n"


def load(site: Site) -> Index:
    return Index.load(site, background_search=False)


# -- the demo site ---------------------------------------------------------------------------


def test_demo_site_counts(demo_index: Index) -> None:
    by_type = Counter(d.type for d in demo_index.docs.values())
    assert by_type == {"posts": DEMO_POSTS, "pages": DEMO_PAGES, "products": DEMO_PRODUCTS}
    statuses = Counter(d.status_at(DEMO_NOW) for d in demo_index.docs.values() if d.type == "posts")
    assert statuses == {Status.PUBLISHED: DEMO_LIVE_POSTS, Status.DRAFT: len(DEMO_DRAFTS), Status.SCHEDULED: 1}
    assert len(demo_index.terms["categories"]) == 6
    assert len(demo_index.all_terms("categories")) == 6
    assert len(demo_index.all_terms("tags")) >= 15
    assert len(demo_index.all_terms("authors")) == 2
    assert demo_index.problems == {}
    assert len(demo_index) == DEMO_DOCUMENTS
    assert set(demo_index.types) >= {"posts", "pages", "products"}
    assert demo_index.types["products"].field("price").type == "number"  # type: ignore[union-attr]


def test_demo_full_text_is_filled(demo_index: Index) -> None:
    assert len(demo_index.search) == DEMO_DOCUMENTS
    assert len(demo_index.search.search("espresso")) > 3
    assert demo_index.search.search("gothenburg") == []  # only in an author's bio: not a document


def test_background_fill_is_awaited_by_search(demo_site: Site) -> None:
    index = Index.load(demo_site)  # full text fills in a thread
    hits = index.search.search("cold brew")
    assert hits and index.docs[hits[0].doc_id].slug == "cold-brew-without-the-fuss"


# -- lookups ---------------------------------------------------------------------------------


def test_get_by_every_reference(demo_index: Index) -> None:
    doc = demo_index.get("pour-over-basics", "posts")
    assert demo_index.get(doc.id) is doc
    assert demo_index.get(doc.hash) is doc
    assert demo_index.get(doc.hash.upper()) is doc
    assert demo_index.get(str(int(doc.hash, 16))) is doc  # the numeric id some clients use
    assert demo_index.get(doc.id, "posts") is doc
    assert demo_index.get("POUR-OVER-BASICS", "posts") is doc
    assert len(doc.hash) == 12 and int(doc.hash, 16) < 2**53


@pytest.mark.parametrize(
    ("ref", "type_name"),
    [
        ("pour-over-basics", None),  # a slug needs its type
        ("pour-over-basics", "pages"),
        ("01K5DR7YJ0PYYC9CRZZPK9PM2K", "products"),  # the id of a post, asked as a product
        ("01K5DR7YJ0PYYC9CRZZPK9PM2X", None),
        ("000000000000", None),
        ("0", None),
        ("9" * 20, None),
        ("", None),
        ("no-such-post", "posts"),
    ],
)
def test_get_not_found(demo_index: Index, ref: str, type_name: str | None) -> None:
    with pytest.raises(NotFound):
        demo_index.get(ref, type_name)


def test_file_without_id_gets_a_stable_derived_id(demo_site: Site) -> None:
    first = load(demo_site).get("kenya-and-colombia-side-by-side", "posts")
    second = load(demo_site).get("kenya-and-colombia-side-by-side", "posts")
    assert first.id == second.id == path_id("posts", "kenya-and-colombia-side-by-side")
    assert is_id(first.id)
    assert first.id_in_file is False
    assert load(demo_site).get("welcome-to-cinder-and-crema", "posts").id != first.id


def test_taxonomy_lookups(demo_index: Index) -> None:
    assert demo_index.descendants("categories", "brewing") == {"brewing", "espresso"}
    assert demo_index.descendants("categories", "espresso") == {"espresso"}
    assert demo_index.descendants("categories", "unknown") == {"unknown"}
    members = demo_index.term_members("categories")
    assert {d.slug for d in members["espresso"]} == {"dialing-in-espresso-at-home", "milk-steaming-and-latte-art"}
    tags = demo_index.all_terms("tags")
    assert tags["latte-art"].path == "tags/latte-art.md"  # a term with a file
    assert tags["cold-brew"].path is None  # a term only named by documents
    authors = demo_index.all_terms("authors")
    assert authors["mara-okafor"].name == "Mara Okafor"
    assert {d.slug for d in demo_index.term_members("authors")["mara-okafor"]} >= {"home-roasting-first-steps"}
    assert demo_index.terms["categories"]["espresso"].parent == "brewing"


def test_descendants_survive_a_cycle(make_site: Any) -> None:
    site = make_site(
        {
            "content/categories/a.md": "---\nname: A\nparent: b\n---\n",
            "content/categories/b.md": "---\nname: B\nparent: a\n---\n",
            "content/categories/c.md": "---\nname: C\nparent: b\n---\n",
        }
    )
    index = load(site)
    assert index.descendants("categories", "a") == {"a", "b", "c"}


def test_ordered_is_sorted_cached_and_invalidated(make_site: Any) -> None:
    site = make_site({f"content/posts/{s}.md": post(t) for s, t in [("a", "Bravo"), ("b", "Alpha"), ("c", "Charlie")]})
    index = load(site)
    first = index.ordered("posts", "title")
    assert [d.slug for d in first] == ["b", "a", "c"]
    assert index.ordered("posts", "title") is first  # cached
    all_types = index.ordered(None, "title")
    (site.content_dir / "posts/c.md").write_text(post("Aardvark"), encoding="utf-8")
    index.refresh(["posts/c.md"])
    assert [d.slug for d in index.ordered("posts", "title")] == ["c", "b", "a"]
    assert index.ordered(None, "title") is not all_types


def test_term_members_are_invalidated_by_a_refresh(make_site: Any) -> None:
    site = make_site({"content/posts/a.md": post("A", "tags: [x]")})
    index = load(site)
    assert [d.slug for d in index.term_members("tags")["x"]] == ["a"]
    (site.content_dir / "posts/b.md").write_text(post("B", "tags: [x]"), encoding="utf-8")
    index.refresh(["posts/b.md"])
    assert sorted(d.slug for d in index.term_members("tags")["x"]) == ["a", "b"]


# -- problems --------------------------------------------------------------------------------


def test_duplicate_id_is_a_problem_and_the_first_file_is_served(make_site: Any) -> None:
    site = make_site(
        {
            "content/posts/a-first.md": post("First", f"id: {ID_A}"),
            "content/posts/b-second.md": post("Second", "date: 2026-01-01", f"id: {ID_A}"),
        }
    )
    index = load(site)
    assert index.get(ID_A).path == "posts/a-first.md"
    problem = index.problems["posts/b-second.md"]
    assert problem.line == 4  # the line of `id:`
    assert "duplicate id" in problem.message and "posts/a-first.md" in problem.message
    assert str(problem) == f"posts/b-second.md:4: {problem.message}"
    assert len(index) == 1


def test_duplicate_slug_is_a_problem_and_the_first_file_is_served(make_site: Any) -> None:
    site = make_site(
        {
            "content/posts/alpha.md": post("Alpha", f"id: {ID_A}"),
            "content/posts/zed.md": post("Zed", f"id: {ID_B}", "date: 2026-01-01", "slug: alpha"),
        }
    )
    index = load(site)
    assert index.get("alpha", "posts").id == ID_A
    problem = index.problems["posts/zed.md"]
    assert "duplicate slug" in problem.message and "posts/alpha.md" in problem.message
    assert problem.line == 5  # the line of `slug:`
    with pytest.raises(NotFound):
        index.get(ID_B)


def test_same_slug_in_another_type_is_fine(make_site: Any) -> None:
    site = make_site({"content/posts/same.md": post("P"), "content/pages/same.md": post("Q")})
    index = load(site)
    assert index.problems == {}
    assert index.get("same", "posts").title == "P"
    assert index.get("same", "pages").title == "Q"


PRODUCT_TYPE = """\
name: products
fields:
  - name: price
    type: number
    required: true
  - name: in_stock
    type: boolean
"""


@pytest.mark.parametrize(
    ("lines", "key", "line", "needle"),
    [
        (["sku: A", "price: abc"], "price", 4, "must be a number"),
        (["price: 3", "in_stock: yes please"], "in_stock", 4, "true or false"),
        (["sku: A"], "price", 1, "is required"),  # missing: no line to point at
        (["price: 3", "id: not-a-ulid"], "id", 4, "ULID"),
    ],
)
def test_schema_violations_are_reported_and_the_document_stays(
    make_site: Any, lines: list[str], key: str, line: int, needle: str
) -> None:
    site = make_site(
        {
            "content/products/_type.yaml": PRODUCT_TYPE,
            "content/products/thing.md": post("Thing", *lines),
            "content/products/fine.md": post("Fine", "price: 2"),
        }
    )
    index = load(site)
    assert index.get("thing", "products").title == "Thing"
    problem = index.problems["products/thing.md"]
    assert problem.line == line
    assert key in problem.message and needle in problem.message
    assert "products/fine.md" not in index.problems


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("---\ntitle: Broken\ntags: [a, b\nnext: 1\n---\nBody\n", 4),
        ("---\ntitle: Ok\n  bad: indent\n---\nBody\n", 3),
        ("---\ntitle: Never closed\nBody\n", 1),
        ("---\n- a\n- b\n---\nBody\n", 2),
        ("---\ntitle: x\nfoo: &a [1]\nbar: *a\n---\n", 4),
    ],
)
def test_broken_yaml_is_a_problem_with_its_line(make_site: Any, text: str, line: int) -> None:
    site = make_site({"content/posts/broken.md": text, "content/posts/good.md": post("Good")})
    index = load(site)
    problem = index.problems["posts/broken.md"]
    assert problem.line == line
    assert str(problem).startswith(f"posts/broken.md:{line}: ")
    assert index.get("good", "posts").title == "Good"
    assert len(index) == 1


def test_bad_bytes_are_problems(make_site: Any) -> None:
    site = make_site({"content/posts/good.md": post("Good")})
    (site.content_dir / "posts/nul.md").write_bytes(b"---\ntitle: x\n---\nA\x00B\n")
    (site.content_dir / "posts/latin1.md").write_bytes(b"---\ntitle: caf\xe9\n---\n")
    index = load(site)
    assert index.problems["posts/nul.md"].line == 4
    assert index.problems["posts/latin1.md"].line == 2
    assert len(index) == 1


def test_bad_content_type_is_a_problem(make_site: Any) -> None:
    site = make_site(
        {
            "content/things/_type.yaml": "fields:\n  - name: x\n    type: wibble\n",
            "content/things/a.md": post("A", "x: 1"),
        }
    )
    index = load(site)
    assert "wibble" in index.problems["things/_type.yaml"].message
    assert "things" not in index.types
    assert index.get("a", "things").title == "A"  # a folder without a schema still loads


def test_symlink_outside_content_is_reported_and_not_loaded(make_site: Any, tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text(post("Secret"), encoding="utf-8")
    site = make_site({"content/posts/fine.md": post("Fine")})
    link = site.content_dir / "posts/leak.md"
    os.symlink(outside, link)
    index = load(site)
    assert "outside" in index.problems["posts/leak.md"].message
    assert [d.slug for d in index.docs.values()] == ["fine"]
    assert index.refresh(["posts/leak.md"]) == []
    assert "posts/leak.md" in index.problems  # still reported after a refresh
    with pytest.raises(NotFound):
        index.get("leak", "posts")


def test_symlink_inside_content_is_loaded(make_site: Any) -> None:
    site = make_site({"content/shared/real.md": post("Real")})
    (site.content_dir / "posts").mkdir()
    os.symlink(site.content_dir / "shared/real.md", site.content_dir / "posts/alias.md")
    index = load(site)
    assert index.get("alias", "posts").title == "Real"


def test_ignored_files(make_site: Any) -> None:
    site = make_site(
        {
            "content/posts/a.md": post("A"),
            "content/posts/_draft-notes.md": post("Hidden"),
            "content/posts/.hidden.md": post("Hidden"),
            "content/posts/backup.md~": post("Hidden"),
            "content/posts/readme.txt": "text",
            "content/_partials/x.md": post("Hidden"),
        }
    )
    index = load(site)
    assert [d.slug for d in index.docs.values()] == ["a"]
    assert index.problems == {}


def test_translations_and_bundles(make_site: Any) -> None:
    site = make_site(
        {
            "content/posts/hello.md": post("Hello"),
            "content/posts/hello.de.md": post("Hallo"),
            "content/posts/trip/index.md": post("Trip"),
            "content/top.md": post("Top"),
        }
    )
    index = load(site)
    assert index.problems == {}
    langs = {(d.slug, d.lang) for d in index.docs.values()}
    assert langs == {("hello", None), ("hello", "de"), ("trip", None), ("top", None)}
    assert index.get("top", "pages").title == "Top"


# -- refresh ---------------------------------------------------------------------------------


@pytest.fixture
def small(make_site: Any) -> tuple[Site, Index]:
    site = make_site(
        {
            "content/posts/keep.md": post("Keep", f"id: {ID_A}", body="Stable words."),
            "content/posts/middle.md": post("Middle", f"id: {ID_B}", "tags: [t]", body="Middle words."),
        }
    )
    return site, load(site)


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, c.doc.slug) for c in changes]


def test_refresh_created(small: tuple[Site, Index]) -> None:
    site, index = small
    (site.content_dir / "posts/new.md").write_text(post("New", body="Fresh zebra."), encoding="utf-8")
    changes = index.refresh(["posts/new.md"])
    assert kinds(changes) == [("created", "new")]
    assert changes[0].old is None and changes[0].fields == []
    assert index.get("new", "posts").title == "New"
    assert [index.docs[h.doc_id].slug for h in index.search.search("zebra")] == ["new"]


def test_refresh_updated_names_the_changed_fields(small: tuple[Site, Index]) -> None:
    site, index = small
    path = site.content_dir / "posts/middle.md"
    path.write_text(post("Middle two", f"id: {ID_B}", "tags: [t]", "extra: 1", body="Other giraffe."), encoding="utf-8")
    changes = index.refresh(["posts/middle.md"])
    assert kinds(changes) == [("updated", "middle")]
    assert changes[0].fields == ["extra", "title", "content"]
    assert changes[0].old.title == "Middle"  # type: ignore[union-attr]
    assert index.get(ID_B).title == "Middle two"
    assert [h.doc_id for h in index.search.search("giraffe")] == [ID_B]
    assert index.search.search("middle words") == []


def test_refresh_unchanged_is_no_change(small: tuple[Site, Index]) -> None:
    _, index = small
    assert index.refresh(["posts/keep.md", "posts/middle.md", "posts/absent.md", "notes.txt"]) == []


def test_refresh_deleted(small: tuple[Site, Index]) -> None:
    site, index = small
    (site.content_dir / "posts/middle.md").unlink()
    changes = index.refresh(["posts/middle.md"])
    assert kinds(changes) == [("deleted", "middle")]
    assert changes[0].new is None
    with pytest.raises(NotFound):
        index.get(ID_B)
    assert index.search.search("middle") == []
    assert "t" not in index.term_members("tags")


def test_a_deleted_document_leaves_nothing_in_the_term_cache(small: tuple[Site, Index]) -> None:
    site, index = small
    index.term_members("tags")  # fills the (id, taxonomy) -> term slugs cache with each document
    assert any(doc_id == ID_B for doc_id, _ in index._doc_terms)
    (site.content_dir / "posts/middle.md").unlink()
    index.refresh(["posts/middle.md"])
    # (it held the deleted document, body and all, until the cache passed 4x the documents)
    assert not any(doc_id == ID_B for doc_id, _ in index._doc_terms)


@pytest.mark.parametrize("new_name", ["aaa-first", "zzz-last"])  # before and after the old name
def test_refresh_rename_is_one_update_with_the_same_id(small: tuple[Site, Index], new_name: str) -> None:
    site, index = small
    os.rename(site.content_dir / "posts/middle.md", site.content_dir / f"posts/{new_name}.md")
    changes = index.refresh(["posts/middle.md", f"posts/{new_name}.md"])
    assert kinds(changes) == [("updated", new_name)]
    assert changes[0].old.slug == "middle"  # type: ignore[union-attr]
    assert changes[0].old.id == changes[0].new.id == ID_B  # type: ignore[union-attr]
    assert index.get(ID_B).path == f"posts/{new_name}.md"
    assert index.get(new_name, "posts").id == ID_B
    with pytest.raises(NotFound):
        index.get("middle", "posts")
    assert len(index) == 2
    assert [h.doc_id for h in index.search.search("middle words")] == [ID_B]


def test_refresh_keeps_the_last_good_version_of_a_broken_file(small: tuple[Site, Index]) -> None:
    site, index = small
    path = site.content_dir / "posts/middle.md"
    good = path.read_text()
    path.write_text("---\ntitle: [oops\n---\n", encoding="utf-8")
    assert index.refresh(["posts/middle.md"]) == []
    assert index.get(ID_B).title == "Middle"
    assert index.problems["posts/middle.md"].line == 2
    path.write_text(good.replace("Middle", "Mended"), encoding="utf-8")
    assert kinds(index.refresh(["posts/middle.md"])) == [("updated", "middle")]
    assert "posts/middle.md" not in index.problems


def test_refresh_of_a_duplicate_keeps_the_original(small: tuple[Site, Index]) -> None:
    site, index = small
    (site.content_dir / "posts/copy.md").write_text(post("Copy", f"id: {ID_A}"), encoding="utf-8")
    assert index.refresh(["posts/copy.md"]) == []
    assert index.get(ID_A).path == "posts/keep.md"
    assert "duplicate id" in index.problems["posts/copy.md"].message
    (site.content_dir / "posts/copy.md").unlink()
    assert index.refresh(["posts/copy.md"]) == []
    assert "posts/copy.md" not in index.problems


def test_refresh_terms_and_types(small: tuple[Site, Index]) -> None:
    site, index = small
    (site.content_dir / "categories").mkdir()
    (site.content_dir / "categories/new.md").write_text("---\nname: New\n---\n", encoding="utf-8")
    (site.content_dir / "events").mkdir()
    (site.content_dir / "events/_type.yaml").write_text("label: Events\n", encoding="utf-8")
    assert index.refresh(["categories/new.md", "events/_type.yaml"]) == []
    assert index.terms["categories"]["new"].name == "New"
    assert index.types["events"].label == "Events"
    (site.content_dir / "categories/new.md").unlink()
    (site.content_dir / "events/_type.yaml").unlink()
    index.refresh(["categories/new.md", "events/_type.yaml"])
    assert "new" not in index.terms["categories"]
    assert "events" not in index.types


def test_a_term_file_refreshed_in_place_is_never_missing_from_the_index(
    small: tuple[Site, Index], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request reads index.terms without the lock while the watcher refreshes the file a write
    just replaced: the term must be there all along (it was popped, then read again: a KeyError)."""
    site, index = small
    (site.content_dir / "categories").mkdir()
    path = site.content_dir / "categories/new.md"
    path.write_text("---\nname: New\n---\n", encoding="utf-8")
    index.refresh(["categories/new.md"])
    present_while_reading: list[bool] = []
    load = index._load_term

    def reading(rel: str, loc: Location) -> None:
        present_while_reading.append("new" in index.terms["categories"])
        load(rel, loc)

    monkeypatch.setattr(index, "_load_term", reading)
    path.write_text("---\nname: Newer\n---\n", encoding="utf-8")
    index.refresh(["categories/new.md"])
    assert present_while_reading == [True] and index.terms["categories"]["new"].name == "Newer"
    path.write_text("---\nname: Moved\nslug: moved\n---\n", encoding="utf-8")
    index.refresh(["categories/new.md"])
    assert "new" not in index.terms["categories"] and index.terms["categories"]["moved"].name == "Moved"


def test_change_fields_for_body_only_edit(small: tuple[Site, Index]) -> None:
    site, index = small
    path = site.content_dir / "posts/keep.md"
    path.write_text(path.read_text().replace("Stable words.", "New words."), encoding="utf-8")
    (change,) = index.refresh(["posts/keep.md"])
    assert change.fields == ["content"]
    assert change.doc is change.new


# -- parallel load and the snapshot ------------------------------------------------------------

RATED_POSTS = """\
fields:
  - name: rating
    type: integer
    min: 1
    max: 5
"""


def _varied_site(make_site: Any) -> Site:
    """Enough files for several batches, and every kind of outcome: documents, broken YAML, bad
    bytes, a schema violation, a bad id, a duplicate id and a duplicate slug (whose problems depend
    on which file is taken first), no frontmatter, terms and pages."""
    files = {
        f"content/posts/a-{n:02}.md": post(f"Post {n}", f"id: 01K00000000000000000000{n:03}", f"date: 2026-01-{n:02}")
        for n in range(1, 15)
    }
    files |= {
        "content/posts/_type.yaml": RATED_POSTS,
        "content/posts/c-broken.md": "---\ntitle: Broken\ntags: [a, b\n---\nBody\n",
        "content/posts/d-dup-id.md": post("Dup id", "date: 2026-02-01", "id: 01K00000000000000000000001"),
        "content/posts/e-dup-slug.md": post("Dup slug", "id: 01K0000000000000000000E001", "slug: a-02"),
        "content/posts/f-bad-rating.md": post("Bad rating", "rating: 9", "tags: [x, y]", "updated: 2026-03-01"),
        "content/posts/g-plain.md": "# No frontmatter\n\nJust text.\n",
        "content/posts/h-bad-id.md": post("Bad id", "id: not-a-ulid"),
        "content/posts/i-summary.md": post("Summary", "summary: Given.", "draft: true", body="## H\n\nText."),
        "content/pages/about.md": post("About"),
        "content/tags/python.md": "---\nname: Python\n---\nAbout Python.\n",
    }
    site = make_site(files)
    (site.content_dir / "posts/j-nul.md").write_bytes(b"---\ntitle: x\n---\nA\x00B\n")
    return site


def _contents(index: Index) -> tuple[Any, ...]:
    """Everything a load decides, in the order it was decided (documents and problems in insertion order)."""
    docs = [[(f.name, getattr(doc, f.name)) for f in dataclasses.fields(doc)] for doc in index.docs.values()]
    problems = [(rel, str(p.path), p.line, p.message) for rel, p in index.problems.items()]
    return docs, problems, dict(index.by_slug), dict(index.by_path), dict(index.by_hash)


def _load(site: Site, **options: Any) -> Index:
    return Index.load(site, fill_search=False, **options)


@single_threaded
def test_forked_workers_load_exactly_what_one_process_loads(make_site: Any) -> None:
    site = _varied_site(make_site)
    serial = _load(site, parse_workers=1)
    parallel = _load(site, parse_workers=2)
    assert serial.load_stats.workers == 0 and serial.load_stats.parsed_here == serial.load_stats.parsed == 23
    assert parallel.load_stats.workers == 2 and parallel.load_stats.parsed_here == 0
    assert _contents(parallel) == _contents(serial)
    # The problems a parallel load must get right because they depend on the order of the files:
    assert "duplicate id" in parallel.problems["posts/d-dup-id.md"].message
    assert parallel.problems["posts/e-dup-slug.md"].line == 4
    assert parallel.problems["posts/c-broken.md"].line == 3
    assert "rating" in parallel.problems["posts/f-bad-rating.md"].message
    assert parallel.get("f-bad-rating", "posts").title == "Bad rating"  # (reported, still served)


@single_threaded
def test_many_files_are_parsed_in_workers_without_being_asked(make_site: Any) -> None:
    files = {f"content/posts/p{n:04}.md": post(f"P {n}") for n in range(PARALLEL_THRESHOLD)}
    index = _load(make_site(files))
    assert len(index) == PARALLEL_THRESHOLD
    assert index.load_stats.workers == min(2, forked.usable_cpus()) or forked.usable_cpus() == 1


@single_threaded
def test_a_worker_that_dies_mid_load_loses_no_document(make_site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _varied_site(make_site)
    parent = os.getpid()
    parse_file = Loader.parse_file

    def dying_worker(self: Loader, rel: str, loc: Location) -> Parsed:
        if rel == "posts/a-05.md" and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        return parse_file(self, rel, loc)

    monkeypatch.setattr(Loader, "parse_file", dying_worker)
    index = Index.load(site, fill_search=False, parse_workers=2)
    monkeypatch.undo()
    assert index.load_stats.workers == 2 and index.load_stats.parsed_here > 0
    assert _contents(index) == _contents(_load(site, parse_workers=1))


def test_no_workers_are_forked_while_another_thread_runs(make_site: Any) -> None:
    site = _varied_site(make_site)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        index = _load(site, parse_workers=2)  # a fork now could copy a lock that thread holds
    finally:
        stop.set()
        thread.join()
    assert index.load_stats.workers == 0 and index.load_stats.parsed_here == 23
    assert _contents(index) == _contents(_load(site, parse_workers=1))


def test_snapshot_restart_parses_only_what_depends_on_other_files(make_site: Any) -> None:
    site = _varied_site(make_site)
    fresh = _load(site, parse_workers=1)
    first = _load(site, use_snapshot=True)
    again = _load(site, use_snapshot=True)
    assert first.load_stats.parsed == 23
    # A file with a problem used to make the whole snapshot unreadable (ParseError does not pickle):
    # now only the duplicates, which depend on other files, are parsed again.
    assert again.load_stats.parsed == 2
    assert _contents(first) == _contents(fresh) == _contents(again)


@single_threaded
def test_snapshot_restart_after_edits_equals_a_fresh_load(make_site: Any) -> None:
    site = _varied_site(make_site)
    _load(site, use_snapshot=True)
    posts = site.content_dir / "posts"
    (posts / "a-03.md").write_text(post("Retitled", "id: 01K00000000000000000000003"), encoding="utf-8")
    (posts / "a-04.md").unlink()
    (posts / "a-06.md").write_text("---\ntitle: [broken now\n---\n", encoding="utf-8")
    (posts / "c-broken.md").write_text(post("Mended"), encoding="utf-8")
    # Sorts first and takes the id of a-02, which the snapshot holds: a-02 must now be the duplicate.
    (posts / "0-new.md").write_text(post("New", "id: 01K00000000000000000000002"), encoding="utf-8")
    again = _load(site, use_snapshot=True, parse_workers=2)
    assert again.load_stats.workers == 2
    assert _contents(again) == _contents(_load(site, parse_workers=1))
    assert "duplicate id" in again.problems["posts/a-02.md"].message
    assert _contents(_load(site, use_snapshot=True)) == _contents(again)
