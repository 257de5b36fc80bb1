"""The one write path: create, PATCH/PUT, rename, status transitions, events, validation, types and terms."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cms.content.model import Document, Status
from cms.content.names import is_id
from cms.content.store import Store
from cms.errors import BadRequest, Conflict, Invalid, NotFound, PreconditionFailed
from cms.events.bus import Event
from tests.support import Clock

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock(demo_store: Store) -> Clock:
    c = Clock(START)
    demo_store.clock = c
    return c


@pytest.fixture
def store(demo_store: Store, clock: Clock) -> Store:
    return demo_store


def text_of(store: Store, doc: Document) -> str:
    return (store.site.content_dir / doc.path).read_text(encoding="utf-8")


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of a diff."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (outside the lock folder) and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cms" not in p.relative_to(root).parts
    }


# -- create ----------------------------------------------------------------------------------


def test_create_defaults(store: Store, events: list[Event]) -> None:
    doc = store.create("posts", {"title": "Hello World", "content": "First paragraph here.\n\nSecond."})
    assert is_id(doc.id)
    assert doc.slug == "hello-world"
    assert doc.path == "posts/hello-world.md"
    assert doc.stored_status is Status.DRAFT
    assert doc.published_at is None
    assert doc.excerpt == "First paragraph here." and doc.excerpt_derived
    text = text_of(store, doc)
    assert text.startswith(f"---\nid: {doc.id}\ntitle: Hello World\n")
    assert "draft: true\n" in text and "date:" not in text
    assert names(events) == ["post.created"]
    assert events[0].data["post"]["status"] == "draft"
    assert store.index.get("hello-world", "posts") is doc


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Ünïcode Café 中文", "ünïcode-café-中文"),
        ("  Spaces   and -- dashes  ", "spaces-and-dashes"),
        ("../../etc/passwd", "etc-passwd"),
        ("CON", "untitled-con"),
        ("!!!", "untitled"),
    ],
)
def test_create_slug_from_title(store: Store, title: str, slug: str) -> None:
    doc = store.create("posts", {"title": title})
    assert doc.slug == slug
    assert (store.site.content_dir / f"posts/{slug}.md").is_file()


def test_create_suffixes_a_taken_slug(store: Store) -> None:
    first = store.create("posts", {"title": "Pour-over basics"})
    second = store.create("posts", {"title": "Pour-over basics"})
    assert (first.slug, second.slug) == ("pour-over-basics-2", "pour-over-basics-3")
    assert store.index.get("pour-over-basics", "posts").title.startswith("Pour-over basics:")


@pytest.mark.parametrize("slug", ["pour-over-basics", "about"])
def test_create_with_a_taken_explicit_slug_conflicts(store: Store, slug: str) -> None:
    type_name = "pages" if slug == "about" else "posts"
    before = snapshot(store.site.root)
    with pytest.raises(Conflict) as info:
        store.create(type_name, {"title": "Other", "slug": slug})
    assert info.value.details == {"slug": slug}
    assert snapshot(store.site.root) == before


def test_create_with_an_explicit_free_slug(store: Store) -> None:
    doc = store.create("posts", {"title": "Anything", "slug": "chosen"})
    assert doc.path == "posts/chosen.md"
    assert store.create("pages", {"title": "Same slug, other type", "slug": "chosen"}).path == "pages/chosen.md"


def test_create_published_sets_the_date(store: Store, events: list[Event]) -> None:
    doc = store.create("posts", {"title": "Now", "status": "published"})
    assert doc.published_at == START
    assert doc.stored_status is Status.PUBLISHED
    assert "date: 2026-11-24T11:00:00+01:00\n" in text_of(store, doc)  # the site's zone
    assert "draft" not in text_of(store, doc)
    assert names(events) == ["post.created", "post.published"]


def test_create_published_keeps_a_given_date(store: Store, events: list[Event]) -> None:
    doc = store.create("posts", {"title": "Old", "status": "published", "published_at": "2026-01-02T03:04:05Z"})
    assert doc.published_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert names(events) == ["post.created", "post.published"]


def test_create_in_the_future_is_scheduled(store: Store, events: list[Event]) -> None:
    doc = store.create("posts", {"title": "Later", "status": "scheduled", "publishedAt": "2027-05-01T00:00:00Z"})
    assert doc.status_at(START) is Status.SCHEDULED
    assert names(events) == ["post.created"]
    with pytest.raises(Invalid) as info:
        store.create("posts", {"title": "Past", "status": "scheduled", "published_at": "2020-01-01T00:00:00Z"})
    assert "published_at" in info.value.details


def test_create_applies_schema_defaults(store: Store, events: list[Event]) -> None:
    doc = store.create("products", {"title": "Mug", "price": 9.5, "sku": "MUG-1"})
    assert doc.meta["in_stock"] is True
    assert "in_stock: true\n" in text_of(store, doc)
    assert names(events) == ["entry.created"]
    assert "product" not in events[0].data and events[0].data["entry"]["type"] == "products"


def test_create_keeps_an_explicit_value_over_the_default(store: Store) -> None:
    doc = store.create("products", {"title": "Mug", "price": 9.5, "sku": "MUG-1", "in_stock": False})
    assert doc.meta["in_stock"] is False


def test_create_excerpt_and_aliases(store: Store) -> None:
    doc = store.create(
        "posts",
        {"title": "E", "excerpt": "Short and sweet.", "content": "Long body.", "tags": ["Cold Brew", "x"]},
    )
    assert doc.excerpt == "Short and sweet." and not doc.excerpt_derived
    assert "summary: Short and sweet.\n" in text_of(store, doc)
    assert doc.tags == ("cold-brew", "x")
    other = store.create("posts", {"title": "F", "description": "Via an alias."})
    assert other.excerpt == "Via an alias."


def test_create_page_emits_page_events(store: Store, events: list[Event]) -> None:
    doc = store.create("pages", {"title": "Imprint", "status": "published"})
    assert names(events) == ["page.created", "page.published"]
    assert events[0].data["page"]["url"] == "https://cinder-and-crema.example/imprint/"
    assert store.url(doc) == "https://cinder-and-crema.example/imprint/"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "title"),
        ({"title": "  "}, "title"),
        ({"title": "x", "content": 5}, "content"),
        ({"title": "x", "status": "live"}, "status"),
        ({"title": "x", "tags": [1, 2]}, "tags"),
        ({"title": "x", "published_at": "yesterday"}, "published_at"),
        ({"title": "x", "nonsense key": 1}, "nonsense key"),
        ({"title": 5, "slug": "five"}, "title"),
    ],
)
def test_create_invalid_input(store: Store, values: dict[str, Any], field: str) -> None:
    before = snapshot(store.site.root)
    with pytest.raises(Invalid) as info:
        store.create("posts", values)
    assert field in info.value.details
    assert snapshot(store.site.root) == before


def test_create_in_an_unknown_type(store: Store) -> None:
    with pytest.raises(NotFound):
        store.create("recipes", {"title": "x"})


# -- update ----------------------------------------------------------------------------------


def test_patch_changes_only_the_touched_lines(store: Store, clock: Clock, events: list[Event]) -> None:
    doc = store.index.get("compostable-packaging", "posts")
    before = text_of(store, doc)
    clock.advance(minutes=1)
    new = store.update(doc, {"title": "Switching to compostable bags"})
    after = text_of(store, new)
    removed, added = changed_lines(before, after)
    assert removed == [
        "title: Why we are switching to compostable bags (and what is still not solved)",
        "updated: 2026-04-02T16:45:00+02:00",
    ]
    assert added == ["title: Switching to compostable bags", "updated: 2026-11-24T11:01:00+01:00"]
    assert "# Updated in April once the new bags arrived from the printer." in after
    assert new.tags == doc.tags and new.body == doc.body and new.id == doc.id
    assert names(events) == ["post.updated"]
    assert events[0].data["changes"] == ["title", "updated"]


def test_patch_body_only(store: Store, clock: Clock, events: list[Event]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    before = text_of(store, doc)
    clock.advance(minutes=1)
    new = store.update(doc, {"content": "Replaced body."})
    removed, added = changed_lines(before, text_of(store, new))
    assert added[0].startswith("updated: ") and added[1:] == ["Replaced body."]
    assert not any(line.startswith(("title", "tags", "summary")) for line in removed)
    assert new.body == "Replaced body.\n"
    assert events[0].data["changes"] == ["updated", "content"]


def test_patch_merges_data_and_removes_null(store: Store) -> None:
    doc = store.index.get("kenya-kiambu-aa", "products")
    new = store.update(doc, {"data": {"price": 17.5, "origin": None}})
    assert new.meta["price"] == 17.5
    assert "origin" not in new.meta
    assert new.meta["sku"] == "CC-KEN-250"
    assert "in_stock: false  # sold out until the next harvest\n" in text_of(store, new)


def test_patch_with_the_same_values_writes_nothing(store: Store, clock: Clock, events: list[Event]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    before = text_of(store, doc)
    clock.advance(minutes=1)
    new = store.update(doc, {"title": doc.title, "status": "published", "tags": list(doc.tags)})
    assert text_of(store, new) == before
    assert events == []


def test_put_replaces_but_keeps_id_created_and_status(store: Store, clock: Clock) -> None:
    doc = store.index.get("grinder-buying-guide", "posts")
    assert doc.stored_status is Status.DRAFT
    clock.advance(minutes=1)
    new = store.update(doc, {"title": "Grinders", "content": "New body.", "tags": ["grinder"]}, replace=True)
    assert new.id == doc.id
    assert set(new.meta) == {"id", "title", "tags", "draft", "updated"}
    assert new.stored_status is Status.DRAFT  # a PUT that does not name status keeps it
    assert new.categories == () and new.authors == ()
    assert new.body == "New body.\n"


def test_put_can_set_status(store: Store) -> None:
    doc = store.index.get("grinder-buying-guide", "posts")
    new = store.update(doc, {"title": "G", "content": "B", "status": "published"}, replace=True)
    assert new.stored_status is Status.PUBLISHED


def test_put_needs_title_and_content(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    with pytest.raises(Invalid) as info:
        store.update(doc, {"tags": ["x"]}, replace=True)
    assert set(info.value.details) == {"title", "content"}


def test_if_match(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    fresh = store.update(doc, {"title": "One"}, if_match=doc.etag)
    with pytest.raises(PreconditionFailed) as info:
        store.update(fresh, {"title": "Two"}, if_match=doc.etag)
    assert info.value.current_etag == fresh.etag
    assert store.index.get(doc.id).title == "One"
    store.update(fresh, {"title": "Three"}, if_match=f'W/"{fresh.etag}", "other"')
    store.update(fresh, {"title": "Four"}, if_match="*")
    assert store.index.get(doc.id).title == "Four"


def test_hand_edit_between_read_and_patch_is_kept(store: Store, events: list[Event]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    path = store.site.content_dir / doc.path
    path.write_text(path.read_text().replace("author: jonas-lindqvist", "author: mara-okafor"), encoding="utf-8")
    with pytest.raises(PreconditionFailed):
        store.update(doc, {"title": "Stale"}, if_match=doc.etag)
    new = store.update(doc, {"title": "Both changes"})  # no If-Match: lands on top of the hand edit
    assert new.author == "mara-okafor"
    assert new.title == "Both changes"
    text = path.read_text()
    assert "author: mara-okafor\n" in text and 'title: "Both changes"\n' in text  # its quotes kept
    assert set(events[0].data["changes"]) >= {"author", "title"}


def test_update_of_a_deleted_file(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    (store.site.content_dir / doc.path).unlink()
    with pytest.raises(NotFound):
        store.update(doc, {"title": "x"})


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"id": "01K0000000AAAAAAAAAAAAAAAA"}, Invalid),
        ({"content": ["x"]}, Invalid),
        ({"status": "gone"}, Invalid),
    ],
)
def test_update_rejects(store: Store, values: dict[str, Any], error: type[Exception]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    before = snapshot(store.site.root)
    with pytest.raises(error):
        store.update(doc, values)
    assert snapshot(store.site.root) == before


def test_update_ignores_read_only_fields(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    new = store.update(doc, {"title": "T", "url": "x", "hash": "y", "id": doc.id, "type": "pages"})
    assert new.title == "T" and new.type == "posts"


# -- rename ----------------------------------------------------------------------------------


def test_rename_moves_the_file_and_keeps_the_old_url(store: Store, events: list[Event]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    new = store.update(doc, {"slug": "pour-over-guide", "title": "Pour-over guide"})
    assert new.id == doc.id and new.path == "posts/pour-over-guide.md"
    assert not (store.site.content_dir / doc.path).exists()
    assert "/posts/pour-over-basics/" in new.aliases
    assert new.title == "Pour-over guide"
    assert names(events) == ["post.updated"]
    assert store.index.get("pour-over-guide", "posts") is new
    with pytest.raises(NotFound):
        store.index.get("pour-over-basics", "posts")


def test_rename_appends_to_existing_aliases(store: Store) -> None:
    doc = store.index.get("compostable-packaging", "posts")
    new = store.rename(doc, "bags")
    assert new.aliases == ("/blog/new-bags/", "/news/packaging-2026/", "/posts/compostable-packaging/")
    back = store.rename(new, "compostable-packaging")
    assert back.aliases.count("/posts/compostable-packaging/") == 1
    assert "/posts/bags/" in back.aliases


def test_rename_of_a_file_without_id_freezes_its_id(store: Store) -> None:
    doc = store.index.get("welcome-to-cinder-and-crema", "posts")
    assert not doc.id_in_file
    new = store.rename(doc, "welcome")
    assert new.id == doc.id and new.id_in_file
    assert f"id: {doc.id}\n" in text_of(store, new)


def test_rename_never_overwrites_a_file(store: Store) -> None:
    target = store.site.content_dir / "posts/target.md"
    target.write_text("---\ntitle: [not indexed, broken\n---\nPrecious.\n", encoding="utf-8")
    store.index.refresh(["posts/target.md"])
    doc = store.index.get("pour-over-basics", "posts")
    before = snapshot(store.site.root)
    with pytest.raises(Conflict):
        store.rename(doc, "target")
    assert snapshot(store.site.root) == before
    with pytest.raises(Conflict):
        store.rename(doc, "water-chemistry-for-coffee")  # an indexed document's slug
    assert snapshot(store.site.root) == before


@pytest.mark.parametrize("slug", ["../x", "a/b", "x\x00y", "..", "/etc/passwd", "a\\b", "Upper", "-x", ""])
def test_rename_to_an_unsafe_slug_changes_nothing(store: Store, slug: str) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    before = snapshot(store.site.root.parent)
    with pytest.raises(BadRequest):
        store.rename(doc, slug)
    if slug:
        with pytest.raises(BadRequest):
            store.update(doc, {"slug": slug, "title": "Changed too"})
    assert snapshot(store.site.root.parent) == before


def test_update_to_a_taken_slug_changes_nothing(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    before = snapshot(store.site.root)
    with pytest.raises(Conflict):
        store.update(doc, {"slug": "water-chemistry-for-coffee", "title": "Changed too"})
    assert snapshot(store.site.root) == before


# -- status transitions and their events -----------------------------------------------------


def _step(store: Store, clock: Clock, events: list[Event], action: Callable[[], Any]) -> list[Event]:
    clock.advance(minutes=1)
    events.clear()
    action()
    return list(events)


@pytest.mark.parametrize(("type_name", "kind"), [("posts", "post"), ("pages", "page"), ("products", "entry")])
def test_lifecycle_events(store: Store, clock: Clock, events: list[Event], type_name: str, kind: str) -> None:
    extra = {"price": 5, "sku": "LIFE-1"} if type_name == "products" else {}
    created = store.create(type_name, {"title": "Life", "content": "Body.", **extra})
    assert names(events) == [f"{kind}.created"]
    doc_id = created.id

    def doc() -> Document:
        return store.index.get(doc_id)

    got = _step(store, clock, events, lambda: store.set_status(doc(), "published"))
    assert names(got) == [f"{kind}.updated", f"{kind}.published"]
    assert set(got[0].data["changes"]) >= {"draft", "date", "updated"}
    assert got[1].data[kind]["status"] == "published"
    assert doc().published_at == clock.now.replace(second=0)

    got = _step(store, clock, events, lambda: store.update(doc(), {"title": "Life, revised"}))
    assert names(got) == [f"{kind}.updated"]
    assert got[0].data["changes"] == ["title", "updated"]
    assert got[0].key == doc_id

    got = _step(store, clock, events, lambda: store.set_status(doc(), "draft"))
    assert names(got) == [f"{kind}.updated", f"{kind}.unpublished"]

    got = _step(store, clock, events, lambda: store.set_status(doc(), "trash"))
    assert names(got) == [f"{kind}.deleted"]
    assert doc().stored_status is Status.TRASH
    assert (store.site.content_dir / doc().path).exists()  # the trash is a status, not a removal

    got = _step(store, clock, events, lambda: store.restore(doc()))
    assert names(got) == [f"{kind}.restored"]
    assert doc().stored_status is Status.DRAFT  # back to what it was before the trash

    got = _step(store, clock, events, lambda: store.set_status(doc(), "published"))
    assert names(got) == [f"{kind}.updated", f"{kind}.published"]

    path = store.site.content_dir / doc().path
    got = _step(store, clock, events, lambda: store.delete(doc()))
    assert names(got) == [f"{kind}.deleted"]
    assert not path.exists()
    with pytest.raises(NotFound):
        store.index.get(doc_id)
    assert all(e.source == "api" for e in got)


def test_trash_of_a_published_post_and_restore(store: Store, clock: Clock, events: list[Event]) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    got = _step(store, clock, events, lambda: store.set_status(doc, "trash"))
    assert names(got) == ["post.deleted"]
    got = _step(store, clock, events, lambda: store.restore(store.index.get(doc.id)))
    assert names(got) == ["post.restored", "post.published"]
    assert store.index.get(doc.id).stored_status is Status.PUBLISHED


def test_restore_needs_the_trash(store: Store) -> None:
    with pytest.raises(Conflict):
        store.restore(store.index.get("pour-over-basics", "posts"))


def test_delete_with_if_match(store: Store) -> None:
    doc = store.index.get("pour-over-basics", "posts")
    with pytest.raises(PreconditionFailed):
        store.delete(doc, if_match="sha256-0000")
    store.delete(doc, if_match=doc.etag)
    assert not (store.site.content_dir / doc.path).exists()
    with pytest.raises(NotFound):
        store.delete(doc)


def test_events_carry_the_source(store: Store, events: list[Event]) -> None:
    store.create("posts", {"title": "From the CLI"}, source="cli")
    assert events[0].source == "cli"


# -- validation ------------------------------------------------------------------------------

VALID_PRODUCT = {"title": "Thing", "price": 10, "sku": "NEW-1"}


@pytest.mark.parametrize(
    ("type_name", "values", "field", "needle"),
    [
        ("posts", {"seo_description": "x" * 161}, "seo_description", "at most 160"),
        ("posts", {"seo_title": "x" * 201}, "seo_title", "at most 200"),
        ("posts", {"categories": ["brewing", "nope"]}, "categories", "unknown category 'nope'"),
        ("posts", {"category": "nope"}, "categories", "nope"),
        ("posts", {"author": "nobody"}, "author", "unknown author 'nobody'"),
        ("posts", {"featured_image": "missing.jpg"}, "featured_image", "uploads"),
        ("posts", {"featured_image": "../cms.toml"}, "featured_image", "uploads"),
        ("posts", {"featured_image": "https://example.com/x.jpg"}, "featured_image", "uploads"),
        ("products", {**VALID_PRODUCT, "price": "abc"}, "price", "must be a number"),
        ("products", {**VALID_PRODUCT, "price": -1}, "price", ">= 0"),
        ("products", {**VALID_PRODUCT, "in_stock": "yes"}, "in_stock", "true or false"),
        ("products", {**VALID_PRODUCT, "weight_grams": 2.5}, "weight_grams", "integer"),
        ("products", {**VALID_PRODUCT, "sku": "X" * 33}, "sku", "at most 32"),
        ("products", {**VALID_PRODUCT, "roast": "burnt"}, "roast", "light, medium, dark"),
        ("products", {"title": "Thing", "sku": "NEW-1"}, "price", "required"),
        ("products", {**VALID_PRODUCT, "data": {"colour": "red"}}, "data.colour", "not a field"),
        ("products", {**VALID_PRODUCT, "colour": "red"}, "colour", "not a field"),
    ],
)
def test_validation_details_per_field(
    store: Store, type_name: str, values: dict[str, Any], field: str, needle: str
) -> None:
    before = snapshot(store.site.root)
    with pytest.raises(Invalid) as info:
        store.create(type_name, {"title": "Check", **values})
    assert any(needle in m for m in info.value.details[field]), info.value.details
    assert info.value.code == "VALIDATION_ERROR"
    assert snapshot(store.site.root) == before


def test_a_taken_unique_value_alone_is_a_conflict_and_writes_nothing(store: Store) -> None:
    before = snapshot(store.site.root)
    with pytest.raises(Conflict) as info:
        store.create("products", {"title": "Check", **VALID_PRODUCT, "sku": "CC-KEN-250"})
    assert list(info.value.details) == ["sku"] and "unique" in info.value.details["sku"][0]
    assert snapshot(store.site.root) == before


def test_validation_reports_every_field_at_once(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.create("products", {"title": "T", "price": "abc", "in_stock": "yes", "sku": "CC-KEN-250"})
    assert set(info.value.details) == {"price", "in_stock", "sku"}


def test_validation_on_update(store: Store) -> None:
    doc = store.index.get("kenya-kiambu-aa", "products")
    with pytest.raises(Invalid) as info:
        store.update(doc, {"data": {"roast": "burnt"}})
    assert "roast" in info.value.details
    assert store.update(doc, {"data": {"sku": "CC-KEN-250"}}).meta["sku"] == "CC-KEN-250"  # its own value


def test_valid_references_pass(store: Store) -> None:
    (store.site.uploads_dir / "images").mkdir(parents=True)
    (store.site.uploads_dir / "images/cup.jpg").write_bytes(b"jpg")
    doc = store.create(
        "posts",
        {
            "title": "Refs",
            "categories": ["espresso"],
            "author": "mara-okafor",
            "featured_image": "/uploads/images/cup.jpg",
            "seo_description": "x" * 160,
        },
    )
    assert doc.featured_image == "/uploads/images/cup.jpg"
    assert doc.categories == ("espresso",)


@pytest.mark.parametrize(
    "values",
    [
        {"title": "x", "slug": "../x"},
        {"title": "x", "slug": "a/b"},
        {"title": "x", "slug": "x\x00y"},
        {"title": "x", "slug": ".."},
        {"title": "x", "slug": "a\\b"},
        {"title": "x", "slug": "/abs"},
        {"title": "x", "slug": "nul"},
        {"title": "x\x00y"},
    ],
)
def test_path_traversal_is_refused(store: Store, values: dict[str, Any]) -> None:
    before = snapshot(store.site.root.parent)
    with pytest.raises(BadRequest):
        store.create("posts", values)
    assert snapshot(store.site.root.parent) == before


@pytest.mark.parametrize("type_name", ["../posts", "posts/../../x", "", "Posts", "con"])
def test_unsafe_type_names_are_refused(store: Store, type_name: str) -> None:
    before = snapshot(store.site.root.parent)
    with pytest.raises(BadRequest):
        store.create(type_name, {"title": "x"})
    assert snapshot(store.site.root.parent) == before


# -- content types ---------------------------------------------------------------------------

EVENT_TYPE = {
    "label": "Events",
    "fields": [
        {"name": "title", "type": "text", "required": True},
        {"name": "venue", "type": "string"},
        {"name": "seats", "type": "integer", "min": 1},
    ],
}


def test_save_type_create_update_delete(store: Store, events: list[Event]) -> None:
    ctype = store.save_type("events", EVENT_TYPE, creating=True)
    assert ctype.label == "Events" and ctype.field("venue").type == "text"  # type: ignore[union-attr]
    assert (store.site.content_dir / "events/_type.yaml").is_file()
    assert store.index.types["events"] == ctype
    with pytest.raises(Conflict):
        store.save_type("events", EVENT_TYPE, creating=True)
    doc = store.create("events", {"title": "Cupping", "seats": 12})
    with pytest.raises(Invalid):
        store.create("events", {"title": "Bad", "seats": 0})
    updated = store.save_type("events", {**EVENT_TYPE, "label": "Happenings"}, creating=False)
    assert updated.label == "Happenings"
    assert "label: Happenings\n" in (store.site.content_dir / "events/_type.yaml").read_text()
    with pytest.raises(Conflict) as info:
        store.delete_type("events")
    assert info.value.details == {"documents": 1}
    assert store.index.get(doc.id)
    events.clear()
    store.delete_type("events", force=True)
    assert names(events) == ["entry.deleted"]
    assert "events" not in store.index.types
    assert not (store.site.content_dir / "events").exists()
    with pytest.raises(NotFound):
        store.content_type("events")
    with pytest.raises(NotFound):
        store.create("events", {"title": "Ghost"})


def test_save_type_keeps_comments_of_the_schema(store: Store) -> None:
    store.save_type("products", {"label": "Shop"}, creating=False)
    text = (store.site.content_dir / "products/_type.yaml").read_text()
    assert text.startswith("# Coffees and gear sold in the shop.\n")
    assert "label: Shop\n" in text
    assert store.index.types["products"].label == "Shop"
    assert store.index.types["products"].field("sku").unique  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        {"fields": [{"name": "x", "type": "wibble"}]},
        {"fields": [{"name": "x"}, {"name": "x"}]},
        {"fields": [{"name": "x", "min": "low"}]},
        {"colour": "red"},
    ],
)
def test_save_type_invalid(store: Store, raw: dict[str, Any]) -> None:
    before = snapshot(store.site.root)
    with pytest.raises(Invalid):
        store.save_type("events", raw, creating=True)
    assert snapshot(store.site.root) == before


@pytest.mark.parametrize(("name", "error"), [("posts", Conflict), ("pages", Conflict), ("nope", NotFound)])
def test_delete_type_refusals(store: Store, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        store.delete_type(name)


def test_save_type_reserved_and_unsafe_names(store: Store) -> None:
    for name in ("categories", "tags", "authors"):
        with pytest.raises(BadRequest):
            store.save_type(name, EVENT_TYPE, creating=True)
    with pytest.raises(BadRequest):
        store.save_type("../x", EVENT_TYPE, creating=True)


# -- taxonomy terms --------------------------------------------------------------------------


def test_term_create_update_delete_with_events(store: Store, events: list[Event]) -> None:
    term = store.save_term("categories", None, {"name": "Filter Coffee", "parent": "brewing"}, creating=True)
    assert (term.slug, term.parent, term.path) == ("filter-coffee", "brewing", "categories/filter-coffee.md")
    assert "filter-coffee" in store.index.descendants("categories", "brewing")
    assert names(events) == ["category.created"]
    assert events[0].data["category"]["name"] == "Filter Coffee"
    with pytest.raises(Conflict):
        store.save_term("categories", "filter-coffee", {"name": "Again"}, creating=True)
    term = store.save_term("categories", "filter-coffee", {"description": "Drip and pour-over."}, creating=False)
    assert term.description == "Drip and pour-over." and term.name == "Filter Coffee"
    store.save_term("categories", "filter-coffee", {"parent": None}, creating=False)
    assert store.index.terms["categories"]["filter-coffee"].parent is None
    store.delete_term("categories", "filter-coffee")
    assert names(events) == ["category.created", "category.updated", "category.updated", "category.deleted"]
    assert not (store.site.content_dir / "categories/filter-coffee.md").exists()
    assert "filter-coffee" not in store.index.terms["categories"]


@pytest.mark.parametrize(
    ("slug", "values", "field", "needle"),
    [
        ("brewing", {"parent": "espresso"}, "parent", "cycle"),  # espresso sits below brewing
        ("brewing", {"parent": "brewing"}, "parent", "cycle"),
        ("news", {"parent": "nope"}, "parent", "unknown"),
        ("news", {"colour": "red"}, "colour", "not a field"),
        ("news", {"name": 5}, "name", "string"),
    ],
)
def test_term_invalid(store: Store, slug: str, values: dict[str, Any], field: str, needle: str) -> None:
    before = snapshot(store.site.root)
    with pytest.raises(Invalid) as info:
        store.save_term("categories", slug, values, creating=False)
    assert any(needle in m for m in info.value.details[field])
    assert snapshot(store.site.root) == before


def test_term_with_children_cannot_be_deleted(store: Store, events: list[Event]) -> None:
    with pytest.raises(Conflict) as info:
        store.delete_term("categories", "brewing")
    assert info.value.details == {"children": ["espresso"]}
    assert (store.site.content_dir / "categories/brewing.md").exists()
    store.delete_term("categories", "espresso")
    store.delete_term("categories", "brewing")
    assert names(events) == ["category.deleted", "category.deleted"]


def test_term_refusals(store: Store, events: list[Event]) -> None:
    with pytest.raises(NotFound):
        store.save_term("genres", None, {"name": "Jazz"}, creating=True)
    with pytest.raises(NotFound):
        store.delete_term("tags", "cold-brew")  # named by posts, no file
    with pytest.raises(NotFound):
        store.save_term("categories", "nope", {"name": "N"}, creating=False)
    with pytest.raises(Invalid):
        store.save_term("categories", None, {}, creating=True)
    with pytest.raises(BadRequest):
        store.save_term("categories", "../x", {"name": "X"}, creating=True)
    store.save_term("tags", None, {"name": "Cold Brew"}, creating=True)
    assert events == []  # only categories have events
    assert store.index.all_terms("tags")["cold-brew"].path == "tags/cold-brew.md"


def test_new_category_is_usable_at_once(store: Store) -> None:
    with pytest.raises(Invalid):
        store.create("posts", {"title": "x", "categories": ["tea"]})
    store.save_term("categories", None, {"name": "Tea"}, creating=True)
    assert store.create("posts", {"title": "x", "categories": ["tea"]}).categories == ("tea",)
