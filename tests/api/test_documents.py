"""Documents over HTTP: lists, the document JSON, create/update/transitions, and optimistic concurrency."""

from __future__ import annotations

import difflib
import hashlib
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from cms.api.app import create_app
from cms.auth import Keys
from cms.config import Site
from cms.content.index import Index
from cms.state import State
from tests.support import DEMO_LIVE_POSTS

from .conftest import DRAFT, IMAGE, NOW, PUBLISHED, SCHEDULED, Clock, assert_error, client, fast_state, unlimited

POSTS = "/api/v1/posts"
LIVE_POSTS = DEMO_LIVE_POSTS  # 16 demo posts minus 2 drafts and 1 scheduled
ETAG = re.compile(r'^"sha256-[0-9a-f]{64}"$')


def data(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()["data"]


def slugs(response: Any) -> list[str]:
    return [d["slug"] for d in data(response)]


def links(response: Any) -> dict[str, dict[str, list[str]]]:
    """RFC 8288 Link header -> {rel: query parameters of its URL}."""
    out = {}
    for part in response.headers["Link"].split(", "):
        url, rel = re.fullmatch(r'<([^>]+)>; rel="(\w+)"', part).groups()  # type: ignore[union-attr]
        out[rel] = parse_qs(urlsplit(url).query)
    return out


def file_of(site: Site, doc: dict[str, Any]) -> bytes:
    return (site.content_dir / doc["type"] / f"{doc['slug']}.md").read_bytes()


# -- lists -----------------------------------------------------------------------------------


def test_list_envelope_has_data_pagination_and_total_header(reader: TestClient) -> None:
    response = reader.get(POSTS)
    body = response.json()
    assert set(body) == {"data", "pagination"}
    assert body["pagination"] == {
        "total": LIVE_POSTS,
        "page": 1,
        "per_page": 10,  # the demo site's [defaults] per_page
        "total_pages": 2,
        "has_next": True,
        "has_prev": False,
    }
    assert response.headers["X-Total-Count"] == str(LIVE_POSTS)


def test_default_per_page_is_20_and_the_maximum_100(make_site: Any) -> None:
    posts = {f"content/posts/p{i:02}.md": f"---\ntitle: P{i}\ndate: 2025-01-{i + 1:02}\n---\nx\n" for i in range(25)}
    site = unlimited(make_site(posts))  # no [defaults] in its cms.toml
    state = fast_state(site.state_dir)
    try:
        token = Keys(state).create("t", ["read"]).token
        http = client(create_app(site, index=Index.load(site, background_search=False), state=state), token)
        assert len(data(http.get(POSTS))) == 20
        assert len(data(http.get(POSTS, params={"per_page": 100}))) == 25
        assert_error(http.get(POSTS, params={"per_page": 101}), 400, "BAD_REQUEST")
    finally:
        state.close()


def test_per_page_and_limit_cap_the_page(reader: TestClient) -> None:
    assert len(data(reader.get(POSTS, params={"per_page": 3}))) == 3
    assert len(data(reader.get(POSTS, params={"limit": 4}))) == 4


def test_link_header_points_to_first_prev_next_last_keeping_other_parameters(reader: TestClient) -> None:
    rels = links(reader.get(POSTS, params={"per_page": 5, "page": 2, "fields": "slug"}))
    assert {rel: q["page"] for rel, q in rels.items()} == {"first": ["1"], "prev": ["1"], "next": ["3"], "last": ["3"]}
    assert all(q["per_page"] == ["5"] and q["fields"] == ["slug"] for q in rels.values())


def test_first_page_has_no_prev_and_last_page_no_next(reader: TestClient) -> None:
    first = reader.get(POSTS, params={"per_page": 5})
    assert set(links(first)) == {"first", "next", "last"}
    last = reader.get(POSTS, params={"per_page": 5, "page": 3})
    assert set(links(last)) == {"first", "prev", "last"}
    assert last.json()["pagination"] == {
        "total": LIVE_POSTS,
        "page": 3,
        "per_page": 5,
        "total_pages": 3,
        "has_next": False,
        "has_prev": True,
    }


def test_page_past_the_end_is_empty(reader: TestClient) -> None:
    assert data(reader.get(POSTS, params={"page": 99})) == []


def test_default_list_is_published_newest_first(reader: TestClient) -> None:
    items = data(reader.get(POSTS, params={"per_page": 100}))
    assert {d["status"] for d in items} == {"published"}
    dates = [d["published_at"] for d in items]
    assert dates == sorted(dates, reverse=True)
    assert DRAFT not in {d["slug"] for d in items} and SCHEDULED not in {d["slug"] for d in items}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("draft", {"grinder-buying-guide", "home-roasting-first-steps"}),
        ("scheduled", {SCHEDULED}),
        ("draft,scheduled", {"grinder-buying-guide", "home-roasting-first-steps", SCHEDULED}),
    ],
)
def test_status_filter_for_a_write_key(writer: TestClient, status: str, expected: set[str]) -> None:
    assert set(slugs(writer.get(POSTS, params={"status": status, "per_page": 100}))) == expected


def test_status_all_is_every_status_but_trash(writer: TestClient, deleter: TestClient) -> None:
    deleter.delete(f"{POSTS}/{PUBLISHED}")
    everything = slugs(writer.get(POSTS, params={"status": "all", "per_page": 100}))
    assert len(everything) == 15 and PUBLISHED not in everything
    assert slugs(writer.get(POSTS, params={"status": "trash"})) == [PUBLISHED]


@pytest.mark.parametrize("status", ["draft", "scheduled", "trash", "all", "published,draft"])
def test_read_key_asking_for_unpublished_is_403(reader: TestClient, status: str) -> None:
    assert_error(reader.get(POSTS, params={"status": status}), 403, "FORBIDDEN")


def test_read_key_may_ask_for_published_explicitly(reader: TestClient) -> None:
    assert len(data(reader.get(POSTS, params={"status": "published", "per_page": 100}))) == LIVE_POSTS


@pytest.mark.parametrize("slug", [DRAFT, SCHEDULED])
def test_unpublished_document_is_404_for_a_read_key_and_visible_to_writers(
    reader: TestClient, writer: TestClient, deleter: TestClient, slug: str
) -> None:
    assert_error(reader.get(f"{POSTS}/{slug}"), 404, "NOT_FOUND")
    assert data(writer.get(f"{POSTS}/{slug}"))["slug"] == slug
    assert data(deleter.get(f"{POSTS}/{slug}"))["slug"] == slug


def test_scheduled_post_goes_live_when_its_time_comes(reader: TestClient, clock: Clock) -> None:
    assert_error(reader.get(f"{POSTS}/{SCHEDULED}"), 404, "NOT_FOUND")
    clock.now = datetime(2027, 1, 15, 7, 1, tzinfo=UTC)  # 08:01 in Berlin
    assert data(reader.get(f"{POSTS}/{SCHEDULED}"))["status"] == "published"
    assert slugs(reader.get(POSTS))[0] == SCHEDULED


def test_or_filter_on_status_shows_drafts_only_to_writers(reader: TestClient, writer: TestClient) -> None:
    params = {"filters[$or][0][status][$eq]": "draft", "filters[$or][1][slug][$eq]": "pour-over-basics"}
    assert set(slugs(writer.get(POSTS, params=params))) == {
        "grinder-buying-guide",
        "home-roasting-first-steps",
        "pour-over-basics",
    }
    assert slugs(reader.get(POSTS, params=params)) == ["pour-over-basics"]


def test_category_filter_includes_child_categories(reader: TestClient) -> None:
    found = set(slugs(reader.get(POSTS, params={"category": "brewing", "per_page": 100})))
    assert found == {
        "aeropress-on-the-road",
        "brew-ratio-calculator",
        "cold-brew-without-the-fuss",
        "pour-over-basics",
        "water-chemistry-for-coffee",
        "dialing-in-espresso-at-home",  # espresso is a child of brewing
        "milk-steaming-and-latte-art",
    }


def test_tag_is_repeatable_with_any_and_all(reader: TestClient) -> None:
    query = [("tag", "recipe"), ("tag", "tasting"), ("per_page", "100")]
    any_of = set(slugs(reader.get(POSTS, params=query)))
    all_of = set(slugs(reader.get(POSTS, params=[*query, ("tag_mode", "all")])))
    assert all_of == {"brew-ratio-calculator", "dialing-in-espresso-at-home"}
    assert all_of < any_of and "cold-brew-without-the-fuss" in any_of and "ethiopia-guji-harvest" in any_of


def test_author_filter(reader: TestClient) -> None:
    items = data(reader.get(POSTS, params={"author": "mara-okafor", "per_page": 100}))
    assert items and {d["author"] for d in items} == {"mara-okafor"}


def test_search_is_ranked_and_has_snippets(reader: TestClient) -> None:
    items = data(reader.get(POSTS, params={"search": "espresso"}))
    assert items[0]["slug"] == "dialing-in-espresso-at-home"
    assert all("<mark>" in d["snippet"].lower() for d in items)


def test_search_without_matches_is_empty(reader: TestClient) -> None:
    response = reader.get(POSTS, params={"search": "zeppelin"})
    assert data(response) == [] and response.headers["X-Total-Count"] == "0"


def test_order_by_title_ascending(reader: TestClient) -> None:
    titles = [
        d["title"] for d in data(reader.get(POSTS, params={"order_by": "title", "order": "asc", "per_page": 100}))
    ]
    assert titles == sorted(titles, key=str.casefold)


def test_sort_by_several_keys(reader: TestClient) -> None:
    items = data(reader.get(POSTS, params={"sort": "author,-published_at", "per_page": 100}))
    keys = [(d["author"], d["published_at"]) for d in items]
    by_author = [a for a, _ in keys]
    assert by_author == sorted(by_author)
    for author in set(by_author):
        dates = [p for a, p in keys if a == author]
        assert dates == sorted(dates, reverse=True)


def test_filters_bracket_grammar_on_a_data_field(reader: TestClient) -> None:
    items = data(
        reader.get("/api/v1/content/products", params={"filters[data.price][$gt]": "20", "fields": "slug,data.price"})
    )
    assert 0 < len(items) < 6 and all(d["data.price"] > 20 for d in items)


def test_fields_include_and_exclude(reader: TestClient) -> None:
    only = data(reader.get(POSTS, params={"fields": "title,slug"}))
    assert all(set(d) == {"id", "title", "slug"} for d in only)
    without = data(reader.get(POSTS, params={"fields": "-content,-excerpt"}))
    assert all("content" not in d and "excerpt" not in d and "title" in d for d in without)


def test_exclude_ids(reader: TestClient) -> None:
    first = data(reader.get(POSTS))[0]
    for ref in (first["id"], first["hash"]):
        rest = data(reader.get(POSTS, params={"exclude": ref, "per_page": 100}))
        assert len(rest) == LIVE_POSTS - 1 and first["id"] not in {d["id"] for d in rest}


def test_random_order_is_repeatable_with_a_seed(reader: TestClient) -> None:
    params = {"random": "true", "seed": "42", "per_page": 100}
    one, two = slugs(reader.get(POSTS, params=params)), slugs(reader.get(POSTS, params=params))
    assert one == two
    assert sorted(one) == sorted(slugs(reader.get(POSTS, params={"per_page": 100})))
    assert one != slugs(reader.get(POSTS, params={**params, "seed": "7"}))


def test_all_content_lists_every_type_and_filters_by_type(reader: TestClient) -> None:
    types = {d["type"] for d in data(reader.get("/api/v1/content", params={"per_page": 100}))}
    assert types == {"posts", "pages", "products"}
    assert {d["type"] for d in data(reader.get("/api/v1/content", params={"type": "products"}))} == {"products"}
    assert_error(reader.get("/api/v1/content", params={"type": "recipes"}), 404, "NOT_FOUND")


def test_unknown_content_type_is_404(reader: TestClient) -> None:
    assert_error(reader.get("/api/v1/content/recipes"), 404, "NOT_FOUND")


# -- the document JSON -----------------------------------------------------------------------

FIELDS = {
    "id",
    "hash",
    "type",
    "slug",
    "title",
    "status",
    "excerpt",
    "content",
    "category",
    "categories",
    "tags",
    "author",
    "featured_image",
    "seo_title",
    "seo_description",
    "published_at",
    "created_at",
    "updated_at",
    "url",
    "data",
}


def test_document_json_has_the_documented_fields_and_no_html(reader: TestClient) -> None:
    doc = data(reader.get(f"{POSTS}/{PUBLISHED}"))
    assert FIELDS <= set(doc) and "html" not in doc
    assert doc["category"] == "brewing" and doc["categories"] == ["brewing"]
    assert doc["published_at"] == "2026-06-25T05:30:00Z"  # UTC with Z outside
    assert doc["url"] == f"https://cinder-and-crema.example/posts/{PUBLISHED}/"
    assert doc["seo_description"].startswith("An easy cold brew")


def test_html_only_when_asked(reader: TestClient) -> None:
    assert "<h2" in data(reader.get(f"{POSTS}/{PUBLISHED}", params={"render": "html"}))["html"]
    assert set(data(reader.get(f"{POSTS}/{PUBLISHED}", params={"fields": "html"}))) == {"id", "html"}
    assert all("<h2" in d["html"] for d in data(reader.get(POSTS, params={"render": "html", "per_page": 2})))


def test_custom_fields_are_under_data(reader: TestClient) -> None:
    doc = data(reader.get("/api/v1/content/products/by-slug/kenya-kiambu-aa"))
    assert doc["data"]["price"] == 16.0 and doc["data"]["sku"] == "CC-KEN-250" and doc["data"]["in_stock"] is False


def test_a_document_is_found_by_id_hash_and_slug(reader: TestClient) -> None:
    doc = data(reader.get(f"{POSTS}/{PUBLISHED}"))
    for ref in (doc["id"], doc["hash"], f"by-slug/{PUBLISHED}"):
        assert data(reader.get(f"{POSTS}/{ref}"))["id"] == doc["id"]


def test_a_post_is_not_found_under_pages(reader: TestClient) -> None:
    assert_error(reader.get(f"/api/v1/pages/{PUBLISHED}"), 404, "NOT_FOUND")


# -- create ----------------------------------------------------------------------------------


def test_create_answers_201_with_location_and_etag_of_the_file(writer: TestClient, site: Site) -> None:
    response = writer.post(POSTS, json={"title": "Hello, World!", "content": "First paragraph.\n\nSecond."})
    assert response.status_code == 201
    doc = response.json()["data"]
    assert doc["slug"] == "hello-world" and doc["status"] == "draft"
    assert response.headers["Location"] == f"{POSTS}/{doc['id']}"
    assert ETAG.match(response.headers["ETag"])
    assert response.headers["ETag"] == f'"sha256-{hashlib.sha256(file_of(site, doc)).hexdigest()}"'
    again = writer.get(response.headers["Location"])
    assert data(again)["id"] == doc["id"] and again.headers["ETag"] == response.headers["ETag"]


def test_create_records_created_at_and_updated_at(writer: TestClient) -> None:
    doc = data(writer.post(POSTS, json={"title": "Stamped", "content": "C"}))
    assert doc["created_at"] == doc["updated_at"] == "2026-11-24T12:00:00Z"


@pytest.mark.parametrize("missing", ["title", "content"])
def test_create_requires_title_and_content(writer: TestClient, missing: str) -> None:
    body = {"title": "T", "content": "C"}
    del body[missing]
    error = assert_error(writer.post(POSTS, json=body), 422, "VALIDATION_ERROR")
    assert list(error["details"]) == [missing]


def test_explicit_duplicate_slug_is_409(writer: TestClient) -> None:
    assert_error(writer.post(POSTS, json={"title": "T", "content": "C", "slug": PUBLISHED}), 409, "CONFLICT")


def test_excerpt_is_derived_when_absent(writer: TestClient) -> None:
    doc = data(writer.post(POSTS, json={"title": "T", "content": "## Heading\n\nThe *first* paragraph.\n\nMore."}))
    assert doc["excerpt"] == "The first paragraph."
    given = data(writer.post(POSTS, json={"title": "U", "content": "Body.", "excerpt": "Mine."}))
    assert given["excerpt"] == "Mine."


def test_create_with_every_base_field(writer: TestClient) -> None:
    body = {
        "title": "Full",
        "content": "Body.",
        "categories": ["brewing"],
        "tags": ["recipe"],
        "author": "mara-okafor",
        "featured_image": IMAGE,
        "seo_title": "SEO",
        "seo_description": "d" * 160,
        "published_at": "2026-01-02T03:04:05Z",
        "status": "published",
    }
    doc = data(writer.post(POSTS, json=body))
    assert (doc["category"], doc["tags"], doc["author"], doc["featured_image"]) == (
        "brewing",
        ["recipe"],
        "mara-okafor",
        IMAGE,
    )
    assert (doc["status"], doc["published_at"], doc["seo_title"]) == ("published", "2026-01-02T03:04:05Z", "SEO")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seo_description", "d" * 161),
        ("categories", ["no-such-category"]),
        ("featured_image", "images/missing.jpg"),
        ("featured_image", "../cms.toml"),
        ("author", "nobody"),
        ("tags", 5),
        ("title", 5),
        ("published_at", "yesterday"),
        ("status", "live"),
        ("data", "not an object"),
    ],
)
def test_invalid_field_is_422_with_details_for_that_field(
    writer: TestClient, site: Site, field: str, value: Any
) -> None:
    before = sorted((site.content_dir / "posts").iterdir())
    body = {"title": "T", "content": "C", field: value}
    error = assert_error(writer.post(POSTS, json=body), 422, "VALIDATION_ERROR")
    assert field in error["details"] and all(isinstance(m, str) for m in error["details"][field])
    assert sorted((site.content_dir / "posts").iterdir()) == before


def test_validation_reports_several_fields_at_once(writer: TestClient) -> None:
    body = {
        "title": "T",
        "content": "C",
        "seo_description": "d" * 161,
        "categories": ["nope"],
        "featured_image": "x.png",
    }
    error = assert_error(writer.post(POSTS, json=body), 422, "VALIDATION_ERROR")
    assert {"seo_description", "categories", "featured_image"} <= set(error["details"])


def test_documents_are_validated_against_their_schema(writer: TestClient) -> None:
    body = {"title": "P", "content": "", "price": "cheap", "roast": "burnt", "in_stock": "yes"}
    error = assert_error(writer.post("/api/v1/content/products", json=body), 422, "VALIDATION_ERROR")
    assert {"price", "roast", "in_stock", "sku"} <= set(error["details"])
    assert error["details"]["sku"] == ["is required"]


def test_schema_unique_field_is_enforced(writer: TestClient) -> None:
    """A value another document holds conflicts with it (409): the request itself is well formed."""
    body = {"title": "P", "content": "", "price": 1, "sku": "CC-KEN-250"}
    error = assert_error(writer.post("/api/v1/content/products", json=body), 409, "CONFLICT")
    assert list(error["details"]) == ["sku"] and "already has it" in error["details"]["sku"][0]
    patched = {"sku": "CC-KEN-250"}
    other = data(writer.post("/api/v1/content/products", json={**body, "sku": "NEW-2"}))["id"]
    assert_error(writer.patch(f"/api/v1/content/products/{other}", json=patched), 409, "CONFLICT")


def test_a_taken_unique_value_is_one_of_the_problems_of_a_bad_body(writer: TestClient) -> None:
    body = {"title": "P", "content": "", "price": "cheap", "sku": "CC-KEN-250"}
    error = assert_error(writer.post("/api/v1/content/products", json=body), 422, "VALIDATION_ERROR")
    assert set(error["details"]) == {"price", "sku"}


def test_schema_defaults_fill_missing_fields(writer: TestClient) -> None:
    doc = data(writer.post("/api/v1/content/products", json={"title": "P", "content": "", "price": 3, "sku": "NEW-1"}))
    assert doc["data"]["in_stock"] is True


# -- update ----------------------------------------------------------------------------------


def test_put_replaces_the_document(writer: TestClient, site: Site) -> None:
    doc = data(writer.put(f"{POSTS}/{PUBLISHED}", json={"title": "Replaced", "content": "New body."}))
    assert (doc["title"], doc["content"], doc["tags"], doc["categories"]) == ("Replaced", "New body.\n", [], [])
    text = file_of(site, doc).decode()
    assert "tags:" not in text and "seo_description" not in text and "id: 01KVYM3AY0V8PRQM7FF50TNYTQ" in text


def test_put_requires_title_and_content(writer: TestClient) -> None:
    error = assert_error(writer.put(f"{POSTS}/{PUBLISHED}", json={"title": "Only a title"}), 422, "VALIDATION_ERROR")
    assert list(error["details"]) == ["content"]


def test_patch_merges(writer: TestClient) -> None:
    doc = data(writer.patch(f"{POSTS}/{PUBLISHED}", json={"title": "Patched"}))
    assert (
        doc["title"] == "Patched"
        and doc["tags"] == ["cold-brew", "recipe"]
        and doc["content"].startswith("Every summer")
    )


def _changed_lines(before: bytes, after: bytes) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(before.decode().splitlines(), after.decode().splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_patch_touches_only_the_changed_lines(writer: TestClient, site: Site) -> None:
    path = site.content_dir / "posts/compostable-packaging.md"
    before = path.read_bytes()
    writer.patch("/api/v1/posts/compostable-packaging", json={"title": "Compostable bags"})
    removed, added = _changed_lines(before, path.read_bytes())
    assert removed == [
        "title: Why we are switching to compostable bags (and what is still not solved)",
        "updated: 2026-04-02T16:45:00+02:00",
    ]
    assert added == ["title: Compostable bags", "updated: 2026-11-24T13:00:00+01:00"]
    assert path.read_text().startswith("---\n# Updated in April once the new bags arrived from the printer.\n")


def test_patch_of_the_body_leaves_the_frontmatter_bytes_alone(writer: TestClient, site: Site) -> None:
    path = site.content_dir / f"posts/{PUBLISHED}.md"
    before = path.read_bytes()
    writer.patch(f"{POSTS}/{PUBLISHED}", json={"content": "Short now.\n"})
    old_front = before.decode().split("\n---\n", 1)[0]
    assert path.read_text() == f"{old_front}\nupdated: 2026-11-24T13:00:00+01:00\n---\nShort now.\n"


def test_patch_slug_renames_the_file_and_keeps_the_old_url(writer: TestClient, site: Site) -> None:
    doc = data(writer.patch(f"{POSTS}/{PUBLISHED}", json={"slug": "cold-brew"}))
    assert doc["slug"] == "cold-brew" and f"/posts/{PUBLISHED}/" in doc.get("aliases", [])
    assert (site.content_dir / "posts/cold-brew.md").exists() and not (
        site.content_dir / f"posts/{PUBLISHED}.md"
    ).exists()


def test_patch_read_only_fields_are_ignored(writer: TestClient) -> None:
    doc = data(writer.get(f"{POSTS}/{PUBLISHED}"))
    patched = data(
        writer.patch(f"{POSTS}/{PUBLISHED}", json={"hash": "000000000000", "url": "http://evil/", "title": "T"})
    )
    assert (patched["hash"], patched["url"]) == (doc["hash"], doc["url"])


def test_patch_unknown_field_on_a_schema_type_is_422(writer: TestClient) -> None:
    error = assert_error(
        writer.patch("/api/v1/content/products/kenya-kiambu-aa", json={"data": {"colour": "red"}}),
        422,
        "VALIDATION_ERROR",
    )
    assert "data.colour" in error["details"]


def test_write_key_cannot_patch_through_by_slug_route(writer: TestClient) -> None:
    assert_error(writer.patch(f"{POSTS}/by-slug/{PUBLISHED}", json={"title": "x"}), 405, "METHOD_NOT_ALLOWED")


# -- publish, unpublish, trash, restore, delete ------------------------------------------------


def test_publish_sets_status_and_published_at_when_empty(writer: TestClient, reader: TestClient, site: Site) -> None:
    draft = data(writer.post(POSTS, json={"title": "Fresh", "content": "C"}))
    assert draft["published_at"] is None
    doc = data(writer.post(f"{POSTS}/{draft['id']}/publish"))
    assert doc["status"] == "published" and doc["published_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "date: 2026-11-24T13:00:00+01:00" in file_of(site, doc).decode()
    assert data(reader.get(f"{POSTS}/{draft['id']}"))["status"] == "published"


def test_publish_keeps_an_existing_published_at(writer: TestClient) -> None:
    doc = data(writer.post(f"{POSTS}/{DRAFT}/publish"))
    assert doc["status"] == "published" and doc["published_at"] == "2026-10-20T13:00:00Z"


def test_unpublish_goes_back_to_draft(writer: TestClient, reader: TestClient) -> None:
    assert data(writer.post(f"{POSTS}/{PUBLISHED}/unpublish"))["status"] == "draft"
    assert_error(reader.get(f"{POSTS}/{PUBLISHED}"), 404, "NOT_FOUND")


def test_delete_moves_to_trash(deleter: TestClient, reader: TestClient, site: Site) -> None:
    doc = data(deleter.delete(f"{POSTS}/{PUBLISHED}"))
    assert doc["status"] == "trash"
    assert "status: trash" in file_of(site, doc).decode()
    assert_error(reader.get(f"{POSTS}/{PUBLISHED}"), 404, "NOT_FOUND")
    assert PUBLISHED not in slugs(reader.get(POSTS, params={"per_page": 100}))


def test_restore_brings_a_document_out_of_the_trash(
    deleter: TestClient, writer: TestClient, reader: TestClient
) -> None:
    deleter.delete(f"{POSTS}/{PUBLISHED}")
    assert data(writer.post(f"{POSTS}/{PUBLISHED}/restore"))["status"] == "published"
    assert data(reader.get(f"{POSTS}/{PUBLISHED}"))["slug"] == PUBLISHED


def test_restore_of_a_draft_from_the_trash_keeps_it_a_draft(deleter: TestClient, writer: TestClient) -> None:
    deleter.delete(f"{POSTS}/{DRAFT}")
    assert data(writer.post(f"{POSTS}/{DRAFT}/restore"))["status"] == "draft"


def test_restore_outside_the_trash_is_409(writer: TestClient) -> None:
    assert_error(writer.post(f"{POSTS}/{PUBLISHED}/restore"), 409, "CONFLICT")


def test_permanent_delete_removes_the_file(deleter: TestClient, admin: TestClient, site: Site) -> None:
    response = deleter.delete(f"{POSTS}/{PUBLISHED}", params={"permanent": "true"})
    assert response.status_code == 204 and response.content == b""
    assert not (site.content_dir / f"posts/{PUBLISHED}.md").exists()
    assert_error(admin.get(f"{POSTS}/{PUBLISHED}"), 404, "NOT_FOUND")


def test_permanent_delete_from_the_trash(deleter: TestClient, site: Site) -> None:
    deleter.delete(f"{POSTS}/{PUBLISHED}")
    assert deleter.delete(f"{POSTS}/{PUBLISHED}", params={"permanent": "true"}).status_code == 204
    assert not (site.content_dir / f"posts/{PUBLISHED}.md").exists()


# -- ETags and preconditions -------------------------------------------------------------------


def test_etag_is_the_strong_sha256_of_the_file(reader: TestClient, site: Site) -> None:
    response = reader.get(f"{POSTS}/{PUBLISHED}")
    digest = hashlib.sha256((site.content_dir / f"posts/{PUBLISHED}.md").read_bytes()).hexdigest()
    assert response.headers["ETag"] == f'"sha256-{digest}"'


@pytest.mark.parametrize("form", ["{}", "W/{}", '"sha256-other", {}'])
def test_if_none_match_with_the_current_etag_is_304(reader: TestClient, form: str) -> None:
    etag = reader.get(f"{POSTS}/{PUBLISHED}").headers["ETag"]
    response = reader.get(f"{POSTS}/{PUBLISHED}", headers={"If-None-Match": form.format(etag)})
    assert response.status_code == 304 and response.content == b"" and response.headers["ETag"] == etag


def test_if_none_match_with_another_etag_is_200(reader: TestClient) -> None:
    response = reader.get(f"{POSTS}/{PUBLISHED}", headers={"If-None-Match": '"sha256-0000"'})
    assert response.status_code == 200


STALE = '"sha256-0000000000000000000000000000000000000000000000000000000000000000"'


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"title": "T", "content": "C"}),
        ("PATCH", "", {"title": "T"}),
        ("DELETE", "", None),
        ("DELETE", "?permanent=true", None),
        ("POST", "/publish", None),
        ("POST", "/unpublish", None),
    ],
)
def test_stale_if_match_is_412_and_changes_nothing(
    admin: TestClient, site: Site, method: str, suffix: str, body: dict[str, str] | None
) -> None:
    path = site.content_dir / f"posts/{PUBLISHED}.md"
    before = path.read_bytes()
    response = admin.request(method, f"{POSTS}/{PUBLISHED}{suffix}", json=body, headers={"If-Match": STALE})
    error = assert_error(response, 412, "PRECONDITION_FAILED")
    assert response.headers["ETag"] == f'"{error["details"]["current_etag"]}"'
    assert path.read_bytes() == before


def test_current_if_match_succeeds(writer: TestClient) -> None:
    etag = writer.get(f"{POSTS}/{PUBLISHED}").headers["ETag"]
    response = writer.patch(f"{POSTS}/{PUBLISHED}", json={"title": "T"}, headers={"If-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] != etag
    assert writer.patch(f"{POSTS}/{PUBLISHED}", json={"title": "U"}, headers={"If-Match": "*"}).status_code == 200


def test_hand_edit_makes_if_match_stale_before_the_index_knows(writer: TestClient, site: Site, index: Index) -> None:
    etag = writer.get(f"{POSTS}/{PUBLISHED}").headers["ETag"]
    path = site.content_dir / f"posts/{PUBLISHED}.md"
    path.write_bytes(path.read_bytes().replace(b"Every summer", b"Each summer"))  # no index.refresh
    response = writer.patch(f"{POSTS}/{PUBLISHED}", json={"title": "Lost update?"}, headers={"If-Match": etag})
    assert_error(response, 412, "PRECONDITION_FAILED")
    assert response.headers["ETag"] == f'"sha256-{hashlib.sha256(path.read_bytes()).hexdigest()}"'
    assert b"Each summer" in path.read_bytes() and b"Lost update?" not in path.read_bytes()


def test_hand_edit_then_refresh_changes_the_etag(writer: TestClient, site: Site, index: Index) -> None:
    etag = writer.get(f"{POSTS}/{PUBLISHED}").headers["ETag"]
    path = site.content_dir / f"posts/{PUBLISHED}.md"
    path.write_bytes(path.read_bytes().replace(b"Every summer", b"Each summer"))
    index.refresh([f"posts/{PUBLISHED}.md"])
    response = writer.get(f"{POSTS}/{PUBLISHED}")
    assert response.headers["ETag"] != etag and data(response)["content"].startswith("Each summer")


def test_patch_without_if_match_lands_on_top_of_a_hand_edit(writer: TestClient, site: Site) -> None:
    path = site.content_dir / f"posts/{PUBLISHED}.md"
    path.write_bytes(path.read_bytes().replace(b"Every summer", b"Each summer"))  # the index still has the old text
    writer.patch(f"{POSTS}/{PUBLISHED}", json={"title": "Both survive"})
    text = path.read_text()
    assert "Each summer" in text and "title: Both survive" in text


@pytest.fixture
def strict_app_client(site: Site, index: Index, state: State, clock: Clock, tokens: dict[str, str]) -> TestClient:
    """The app of the site after `[api] require_if_match = true` was added to its cms.toml."""
    toml = site.root / "cms.toml"
    text = toml.read_text()
    setting = "require_if_match = true\n"
    toml.write_text(
        text.replace("[api]\n", "[api]\n" + setting, 1) if "\n[api]\n" in text else text + "\n[api]\n" + setting
    )
    strict = unlimited(Site.load(site.root))
    assert strict.api.require_if_match is True
    return client(create_app(strict, index=index, state=state, clock=clock), tokens["admin"])


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"title": "T", "content": "C"}), ("PATCH", {"title": "T"}), ("DELETE", None)]
)
def test_require_if_match_answers_428_without_it(
    strict_app_client: TestClient, method: str, body: dict[str, str] | None
) -> None:
    url = f"{POSTS}/{PUBLISHED}"
    assert_error(strict_app_client.request(method, url, json=body), 428, "PRECONDITION_REQUIRED")
    etag = strict_app_client.get(url).headers["ETag"]
    assert strict_app_client.request(method, url, json=body, headers={"If-Match": etag}).status_code == 200


def test_require_if_match_does_not_affect_create(strict_app_client: TestClient) -> None:
    assert strict_app_client.post(POSTS, json={"title": "T", "content": "C"}).status_code == 201


# -- pages and other types ---------------------------------------------------------------------


def test_pages_have_the_same_lifecycle(writer: TestClient, deleter: TestClient, reader: TestClient, site: Site) -> None:
    created = writer.post("/api/v1/pages", json={"title": "Imprint", "content": "Who we are."})
    assert created.status_code == 201 and created.headers["Location"].startswith("/api/v1/pages/")
    ref = data(created)["id"]
    assert data(writer.post(f"/api/v1/pages/{ref}/publish"))["url"] == "https://cinder-and-crema.example/imprint/"
    assert data(reader.get("/api/v1/pages/by-slug/imprint"))["title"] == "Imprint"
    assert data(writer.patch(f"/api/v1/pages/{ref}", json={"title": "Legal"}))["title"] == "Legal"
    assert data(deleter.delete(f"/api/v1/pages/{ref}"))["status"] == "trash"
    assert data(writer.post(f"/api/v1/pages/{ref}/restore"))["status"] == "published"
    assert deleter.delete(f"/api/v1/pages/{ref}?permanent=true").status_code == 204
    assert not (site.content_dir / "pages/imprint.md").exists()


def test_any_type_has_the_same_lifecycle(writer: TestClient, deleter: TestClient, reader: TestClient) -> None:
    base = "/api/v1/content/products"
    created = writer.post(base, json={"title": "Moka pot", "content": "", "price": 30, "sku": "CC-MOKA"})
    assert created.status_code == 201 and created.headers["Location"].startswith(base + "/")
    ref = data(created)["id"]
    writer.post(f"{base}/{ref}/publish")
    assert data(reader.get(f"{base}/by-slug/moka-pot"))["data"]["price"] == 30
    assert data(writer.patch(f"{base}/{ref}", json={"price": 25}))["data"]["price"] == 25
    assert "moka-pot" in slugs(reader.get(base, params={"per_page": 100}))
    assert deleter.delete(f"{base}/{ref}?permanent=true").status_code == 204
    assert_error(reader.get(f"{base}/{ref}"), 404, "NOT_FOUND")
