"""Categories, tags, custom taxonomies and authors over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from cms.api.app import create_app
from cms.config import Site
from cms.content.index import Index

from .conftest import DRAFT, Clock, assert_error, client, fast_state, unlimited


def data(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()["data"]


def has(item: dict[str, Any], **expected: Any) -> bool:
    return {k: item.get(k) for k in expected} == expected


def by_slug(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["slug"]: i for i in items}


# -- categories ------------------------------------------------------------------------------


def test_categories_have_counts_parent_and_children(reader: TestClient) -> None:
    response = reader.get("/api/v1/categories")
    cats = by_slug(data(response))
    assert set(cats) == {"brewing", "espresso", "news", "origins", "roasting", "sustainability"}
    assert has(cats["brewing"], name="Brewing", parent=None, children=["espresso"], post_count=5)
    assert cats["espresso"]["parent"] == "brewing" and cats["espresso"]["post_count"] == 2
    assert response.json()["pagination"]["total"] == 6


def test_category_counts_leave_out_drafts_and_scheduled(reader: TestClient) -> None:
    cats = by_slug(data(reader.get("/api/v1/categories")))
    assert cats["roasting"]["post_count"] == 2  # home-roasting-first-steps is a draft
    assert cats["news"]["post_count"] == 2  # winter-blend-2027 is scheduled


def test_category_counts_follow_a_publish(reader: TestClient, writer: TestClient) -> None:
    writer.post(f"/api/v1/posts/{DRAFT}/publish")
    assert data(reader.get("/api/v1/categories/brewing"))["post_count"] == 6


def test_nested_categories_put_children_under_parents(reader: TestClient) -> None:
    tree = by_slug(data(reader.get("/api/v1/categories", params={"nested": "true"})))
    assert "espresso" not in tree
    assert [c["slug"] for c in tree["brewing"]["children"]] == ["espresso"]
    assert tree["brewing"]["children"][0]["post_count"] == 2


@pytest.mark.parametrize("spelling", ["on", "yes", "1", "TRUE", ""])
def test_boolean_parameters_read_every_spelling_the_query_engine_reads(reader: TestClient, spelling: str) -> None:
    # One boolean reader for every parameter: `?nested=on` used to be a 400 while `?random=on` worked.
    tree = by_slug(data(reader.get("/api/v1/categories", params={"nested": spelling})))
    assert "espresso" not in tree
    flat = by_slug(data(reader.get("/api/v1/categories", params={"nested": "off"})))
    assert "espresso" in flat


def test_one_category(reader: TestClient) -> None:
    cat = data(reader.get("/api/v1/categories/espresso"))
    assert cat["name"] == "Espresso" and cat["url"] == "https://cinder-and-crema.example/categories/espresso/"
    assert_error(reader.get("/api/v1/categories/nope"), 404, "NOT_FOUND")


def test_create_category_writes_a_term_file(writer: TestClient, site: Site) -> None:
    response = writer.post(
        "/api/v1/categories", json={"name": "Cold Drinks", "description": "Iced.", "parent": "brewing"}
    )
    assert response.status_code == 201
    assert has(data(response), slug="cold-drinks", parent="brewing", post_count=0)
    assert (site.content_dir / "categories/cold-drinks.md").read_text() == (
        "---\nname: Cold Drinks\ndescription: Iced.\nparent: brewing\n---\n"
    )
    assert writer.get(response.headers["Location"]).status_code == 200
    assert "cold-drinks" in data(writer.get("/api/v1/categories/brewing"))["children"]


def test_a_unicode_slug_is_percent_encoded_in_the_location(writer: TestClient) -> None:
    """A header holds ASCII only: a slug of other letters was a 500 (latin-1 cannot encode it)."""
    response = writer.post("/api/v1/tags", json={"name": "手冲 咖啡"})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/api/v1/taxonomies/tags/%E6%89%8B%E5%86%B2-%E5%92%96%E5%95%A1"
    assert data(writer.get(response.headers["Location"]))["name"] == "手冲 咖啡"


def test_create_category_twice_is_409(writer: TestClient) -> None:
    assert_error(writer.post("/api/v1/categories", json={"name": "Brewing"}), 409, "CONFLICT")


def test_create_category_with_bad_fields_is_422(writer: TestClient) -> None:
    error = assert_error(
        writer.post("/api/v1/categories", json={"name": "X", "parent": "nope", "colour": "red"}),
        422,
        "VALIDATION_ERROR",
    )
    assert set(error["details"]) == {"parent", "colour"}
    assert list(assert_error(writer.post("/api/v1/categories", json={}), 422, "VALIDATION_ERROR")["details"]) == [
        "name"
    ]


def test_update_category_changes_only_its_lines(writer: TestClient, site: Site) -> None:
    path = site.content_dir / "categories/espresso.md"
    before = path.read_text()
    cat = data(writer.patch("/api/v1/categories/espresso", json={"description": "Shots."}))
    assert cat["description"] == "Shots."
    assert path.read_text() == before.replace(before.splitlines()[2], "description: Shots.")


def test_category_parent_cycle_is_422(writer: TestClient) -> None:
    assert_error(writer.patch("/api/v1/categories/brewing", json={"parent": "espresso"}), 422, "VALIDATION_ERROR")


def test_update_unknown_category_is_404(writer: TestClient) -> None:
    assert_error(writer.patch("/api/v1/categories/nope", json={"description": "x"}), 404, "NOT_FOUND")


@pytest.mark.parametrize("slug", ["Brewing", "-x-", "%F0%B5%8F%92", "con", "a%01b"])
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_of_a_slug_no_term_can_have_is_404_as_its_get(writer: TestClient, method: str, slug: str) -> None:
    """A path's slug is looked up: one no term could have is not found, as GET and DELETE say (not a 400)."""
    assert_error(writer.get(f"/api/v1/tags/{slug}"), 404, "NOT_FOUND")
    for path in (f"/api/v1/categories/{slug}", f"/api/v1/taxonomies/tags/{slug}"):
        assert_error(writer.request(method, path, json={"description": "x"}), 404, "NOT_FOUND")


def test_the_published_term_input_is_closed_like_the_store(anon: TestClient, writer: TestClient) -> None:
    """A key that is not a setting is a 422, so the schema allows no other keys; those a GET shows are ignored."""
    schemas = anon.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("TermInput", "NewTerm"):
        assert schemas[name]["additionalProperties"] is False
        assert {
            "name",
            "slug",
            "description",
            "parent",
            "id",
            "taxonomy",
            "post_count",
            "count",
            "children",
            "url",
        } == set(schemas[name]["properties"])
    assert schemas["NewTerm"]["properties"]["name"]["pattern"] == r"\S"  # a name of spaces is no name
    shown = data(writer.get("/api/v1/categories/espresso"))
    assert data(writer.patch("/api/v1/categories/espresso", json=shown))["name"] == shown["name"]
    assert_error(writer.post("/api/v1/categories", json={"name": "   "}), 422, "VALIDATION_ERROR")


def test_delete_category_removes_its_file(deleter: TestClient, writer: TestClient, site: Site) -> None:
    writer.post("/api/v1/categories", json={"name": "Temporary"})
    assert deleter.delete("/api/v1/categories/temporary").status_code == 204
    assert not (site.content_dir / "categories/temporary.md").exists()
    assert_error(deleter.get("/api/v1/categories/temporary"), 404, "NOT_FOUND")


def test_delete_category_with_children_is_409(deleter: TestClient, site: Site) -> None:
    error = assert_error(deleter.delete("/api/v1/categories/brewing"), 409, "CONFLICT")
    assert error["details"]["children"] == ["espresso"]
    assert (site.content_dir / "categories/brewing.md").exists()


def test_write_key_may_not_delete_a_category(writer: TestClient) -> None:
    assert_error(writer.delete("/api/v1/categories/news"), 403, "FORBIDDEN")


# -- tags and other taxonomies -----------------------------------------------------------------


def test_tags_have_counts(reader: TestClient) -> None:
    tags = by_slug(data(reader.get("/api/v1/tags")))
    assert tags["tasting"]["post_count"] == 7
    assert tags["pour-over"]["name"] == "Pour-over"  # from content/tags/pour-over.md
    assert tags["espresso-gear"]["post_count"] == 0  # only a draft uses it


def test_tags_ordered_by_count(reader: TestClient) -> None:
    counts = [t["post_count"] for t in data(reader.get("/api/v1/tags", params={"order_by": "count"}))]
    assert counts == sorted(counts, reverse=True)


def test_hide_empty_drops_unused_tags(reader: TestClient) -> None:
    assert all(t["post_count"] for t in data(reader.get("/api/v1/tags", params={"hide_empty": "true"})))


def test_one_tag(reader: TestClient) -> None:
    tag = data(reader.get("/api/v1/tags/latte-art"))
    assert tag["name"] == "Latte art" and tag["post_count"] == 1
    assert data(reader.get("/api/v1/tags/recipe"))["post_count"] == 5  # a tag without a file


def test_taxonomies_endpoint_serves_builtin_taxonomies(reader: TestClient) -> None:
    assert data(reader.get("/api/v1/taxonomies/tags")) == data(reader.get("/api/v1/tags"))
    assert data(reader.get("/api/v1/taxonomies/categories/brewing"))["children"] == ["espresso"]
    assert_error(reader.get("/api/v1/taxonomies/regions"), 404, "NOT_FOUND")


def test_custom_taxonomy_from_cms_toml(demo_site: Site, clock: Clock) -> None:
    (demo_site.root / "cms.toml").write_text(
        (demo_site.root / "cms.toml").read_text() + '\n[taxonomies.regions]\nlabel = "Regions"\n'
    )
    post = demo_site.content_dir / "posts/ethiopia-guji-harvest.md"
    post.write_text(post.read_text().replace("---\n", "---\nregions: [east-africa]\n", 1))
    site = unlimited(Site.load(demo_site.root))
    state = fast_state(site.state_dir)
    try:
        from cms.auth import Keys

        token = Keys(state, clock).create("r", ["write"]).token
        app = create_app(site, index=Index.load(site, background_search=False), state=state, clock=clock)
        http = client(app, token)
        assert data(http.get("/api/v1/taxonomies/regions/east-africa"))["post_count"] == 1
        assert http.post("/api/v1/taxonomies/regions", json={"name": "South America"}).status_code == 201
        assert (site.content_dir / "regions/south-america.md").exists()
        assert [d["slug"] for d in data(http.get("/api/v1/posts", params={"regions": "east-africa"}))] == [
            "ethiopia-guji-harvest"
        ]
    finally:
        state.close()


# -- authors -----------------------------------------------------------------------------------


def test_authors_without_email_for_a_read_key(reader: TestClient) -> None:
    authors = by_slug(data(reader.get("/api/v1/authors")))
    assert set(authors) == {"mara-okafor", "jonas-lindqvist"}
    assert all("email" not in a for a in authors.values())
    assert authors["mara-okafor"]["post_count"] == 6 and authors["mara-okafor"]["role"]


def test_authors_with_email_for_an_admin_key(admin: TestClient) -> None:
    assert data(admin.get("/api/v1/authors/mara-okafor"))["email"] == "mara@cinder-and-crema.example"
    assert all("email" in a for a in data(admin.get("/api/v1/authors")))


def test_one_author_without_email_for_a_write_key(writer: TestClient) -> None:
    author = data(writer.get("/api/v1/authors/jonas-lindqvist"))
    assert author["name"] == "Jonas Lindqvist" and "email" not in author and author["bio"]


def test_users_is_an_alias_of_authors(reader: TestClient) -> None:
    assert data(reader.get("/api/v1/users")) == data(reader.get("/api/v1/authors"))
    assert data(reader.get("/api/v1/users/mara-okafor")) == data(reader.get("/api/v1/authors/mara-okafor"))


def test_unknown_author_is_404(reader: TestClient) -> None:
    assert_error(reader.get("/api/v1/authors/nobody"), 404, "NOT_FOUND")
