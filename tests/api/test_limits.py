"""Every write endpoint answers its largest accepted body within a step budget, and list fields are bounded.

Work is counted, not timed: a profile hook counts the calls made in and into `cms/` code while a
request is served (Python functions and the builtins they call, in every thread). A 1 MiB title
once cost 23 s of CPU in `slugify`, trimming one character at a time (millions of calls); checked
first, it costs a few hundred. The hook stops a request as soon as it spends its budget, so a
regression fails fast instead of spinning.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.http import Services
from cms.content.limits import MAX_DESCRIPTION_CHARS, MAX_ITEM_CHARS, MAX_LIST_ITEMS, MAX_TITLE_CHARS
from tests.media import images
from tests.steps import Steps

from .conftest import assert_error, client, tree_digest

# Calls one refused request may make in cms code, whatever the size of its strings. Measured: a
# few hundred; the old slugify made millions for a 1 MiB title.
BUDGET = 5_000
# Per item of a list, for bodies whose cost grows with the number of JSON values (each is
# parsed and walked for depth and surrogates, about 8 calls); writing each tag cost about 36.
PER_ITEM = 20


@pytest.fixture
def admin_client(app: Starlette, tokens: dict[str, str]) -> TestClient:
    return client(app, tokens["admin"])


def largest(template: dict[str, Any], field: str, limit: int) -> bytes:
    """`template` as compact JSON of exactly `limit` bytes, `field` (dotted for nesting) full of one letter."""
    body = json.loads(json.dumps(template))
    keys: list[Any] = [int(k) if k.isdigit() else k for k in field.split(".")]
    *parents, last = keys
    holder = body
    for name in parents:
        holder = holder[name]
    holder[last] = ""
    overhead = len(json.dumps(body, separators=(",", ":")).encode())
    holder[last] = "a" * (limit - overhead)
    data = json.dumps(body, separators=(",", ":")).encode()
    assert len(data) == limit
    return data


def send(c: TestClient, method: str, path: str, data: bytes, budget: int = BUDGET) -> tuple[Any, Steps]:
    with Steps(budget) as steps:
        response = c.request(method, path, content=data, headers={"Content-Type": "application/json"})
    return response, steps


@pytest.fixture
def targets(app: Starlette, svc: Services) -> dict[str, str]:
    """One existing object per kind of write target."""
    store = svc.store
    hook, _ = app.state.services.webhooks.create({"name": "Target", "url": PUBLIC_URL})
    return {
        "post": store.create("posts", {"title": "Target", "content": "x"}).id,
        "page": store.create("pages", {"title": "Target", "content": "x"}).id,
        "product": store.create("products", {"title": "Target", "price": 5, "sku": "T-1"}).id,
        "tag": store.save_term("tags", None, {"name": "Target tag"}, creating=True).slug,
        "category": store.save_term("categories", None, {"name": "Target category"}, creating=True).slug,
        "type": store.save_type("target", {"fields": [{"name": "x"}]}, creating=True).name,
        "hook": hook.id,
    }


PUBLIC_URL = "https://93.184.215.14/hook"  # a public address written as one: no DNS in these tests
# (method, path, body template, the string field to fill, the field the 422 names)
STRING_BODIES = [
    ("POST", "/api/v1/posts", {"title": "", "content": "x"}, "title", "title"),
    ("PUT", "/api/v1/posts/{post}", {"title": "", "content": "x"}, "title", "title"),
    ("PATCH", "/api/v1/posts/{post}", {"title": ""}, "title", "title"),
    ("PATCH", "/api/v1/posts/{post}", {"summary": ""}, "summary", "excerpt"),
    ("POST", "/api/v1/posts", {"title": "T", "content": "x", "tags": ""}, "tags", "tags"),
    ("POST", "/api/v1/posts", {"title": "T", "content": "x", "categories": [""]}, "categories.0", "categories"),
    ("POST", "/api/v1/pages", {"title": "", "content": "x"}, "title", "title"),
    ("PUT", "/api/v1/pages/{page}", {"title": "", "content": "x"}, "title", "title"),
    ("PATCH", "/api/v1/pages/{page}", {"title": ""}, "title", "title"),
    ("POST", "/api/v1/content/products", {"title": "", "price": 1, "sku": "S-1"}, "title", "title"),
    ("PUT", "/api/v1/content/products/{product}", {"title": "", "price": 1, "sku": "S-2"}, "title", "title"),
    ("PATCH", "/api/v1/content/products/{product}", {"title": ""}, "title", "title"),
    ("POST", "/api/v1/tags", {"name": ""}, "name", "name"),
    ("PATCH", "/api/v1/tags/{tag}", {"description": ""}, "description", "description"),
    ("PUT", "/api/v1/categories/{category}", {"name": ""}, "name", "name"),
    ("POST", "/api/v1/taxonomies/categories", {"name": ""}, "name", "name"),
    ("POST", "/api/v1/content-types", {"name": "made", "label": ""}, "label", "label"),
    ("PATCH", "/api/v1/content-types/{type}", {"description": ""}, "description", "description"),
    ("POST", "/api/v1/webhooks", {"name": "", "url": PUBLIC_URL}, "name", "name"),
    ("POST", "/api/v1/webhooks", {"name": "n", "url": PUBLIC_URL, "events": [""]}, "events.0", "events"),
    ("PATCH", "/api/v1/webhooks/{hook}", {"name": ""}, "name", "name"),
    ("POST", "/api/v1/webhook/trigger", {"event": ""}, "event", "event"),
    ("POST", "/api/v1/api-keys", {"name": "", "scopes": ["read"]}, "name", "name"),
]


@pytest.mark.parametrize(
    ("method", "path", "template", "fill", "named"),
    STRING_BODIES,
    ids=[f"{m} {p} {f}" for m, p, _, f, _ in STRING_BODIES],
)
def test_the_largest_body_is_refused_within_the_budget(
    admin_client: TestClient,
    svc: Services,
    targets: dict[str, str],
    method: str,
    path: str,
    template: dict[str, Any],
    fill: str,
    named: str,
) -> None:
    limit = svc.site.api.max_json_bytes
    for name, value in targets.items():
        path = path.replace("{" + name + "}", value)
    before = tree_digest(svc.site.content_dir)
    response, steps = send(admin_client, method, path, largest(template, fill, limit))
    assert not steps.over, f"{method} {path} made more than {BUDGET} calls"
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert named in error["details"], error
    assert tree_digest(svc.site.content_dir) == before  # refused before anything was written


def test_one_byte_more_is_413(admin_client: TestClient, svc: Services) -> None:
    """The bodies above are the largest the server reads: one byte more is refused unread."""
    limit = svc.site.api.max_json_bytes
    response, steps = send(admin_client, "POST", "/api/v1/posts", largest({"title": ""}, "title", limit + 1))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert not steps.over


def test_the_largest_media_bodies_are_refused_within_the_budget(admin_client: TestClient, svc: Services) -> None:
    cup = images.jpeg((32, 32))
    made = admin_client.post("/api/v1/media", files={"image": ("cup.jpg", cup, "image/jpeg")})
    assert made.status_code == 201, made.text
    media_id = made.json()["data"]["id"]
    patch, steps = send(
        admin_client, "PATCH", f"/api/v1/media/{media_id}", largest({"alt": ""}, "alt", svc.site.api.max_json_bytes)
    )
    assert not steps.over
    assert "alt" in assert_error(patch, 422, "VALIDATION_ERROR")["details"]
    # A JSON upload may be larger (base64 of the largest image): the caption fills what the image leaves.
    upload_limit = svc.site.media.max_bytes * 29 // 20
    template = {"data": base64.b64encode(cup).decode(), "filename": "cup.jpg", "caption": ""}
    upload, steps = send(admin_client, "POST", "/api/v1/media", largest(template, "caption", upload_limit))
    assert not steps.over
    assert "caption" in assert_error(upload, 422, "VALIDATION_ERROR")["details"]


# -- list fields -------------------------------------------------------------------------------


def test_twenty_thousand_tags_are_a_422_naming_tags(admin_client: TestClient, svc: Services) -> None:
    tags = [f"tag-{n}" for n in range(20_000)]
    data = json.dumps({"title": "Tagged", "content": "x", "tags": tags}).encode()
    before = tree_digest(svc.site.content_dir)
    response, steps = send(admin_client, "POST", "/api/v1/posts", data, budget=PER_ITEM * len(tags))
    assert not steps.over, "the tags were handled one by one before their number was checked"
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"] == {"tags": [f"must have at most {MAX_LIST_ITEMS} items, got 20000"]}
    assert tree_digest(svc.site.content_dir) == before


def test_the_largest_list_body_is_refused_within_the_budget(admin_client: TestClient, svc: Services) -> None:
    limit = svc.site.api.max_json_bytes
    head = b'{"title":"T","content":"x","aliases":["a"'
    count = (limit - len(head) - 2) // 4  # each further item is ,"a"
    data = head + b',"a"' * count + b"]}"
    data += b" " * (limit - len(data))  # whitespace after the object is still JSON
    assert len(data) == limit
    response, steps = send(admin_client, "POST", "/api/v1/posts", data, budget=PER_ITEM * (count + 1))
    assert not steps.over
    assert "aliases" in assert_error(response, 422, "VALIDATION_ERROR")["details"]


@pytest.mark.parametrize("field", ["tags", "categories", "aliases", "author", "authors"])
def test_each_list_field_takes_at_most_the_maximum(writer: TestClient, svc: Services, field: str) -> None:
    too_many = [f"item-{n}" for n in range(MAX_LIST_ITEMS + 1)]
    error = assert_error(
        writer.post("/api/v1/posts", json={"title": "Many", "content": "x", field: too_many}), 422, "VALIDATION_ERROR"
    )
    assert error["details"] == {field: [f"must have at most {MAX_LIST_ITEMS} items, got {MAX_LIST_ITEMS + 1}"]}


def test_the_maximum_itself_is_accepted(writer: TestClient) -> None:
    tags = [f"tag-{n}" for n in range(MAX_LIST_ITEMS)]
    r = writer.post("/api/v1/posts", json={"title": "Exactly enough", "content": "x", "tags": tags})
    assert r.status_code == 201, r.text
    assert len(r.json()["data"]["tags"]) == MAX_LIST_ITEMS


def test_comma_separated_tags_count_as_items(writer: TestClient) -> None:
    many = ",".join(f"t{n}" for n in range(MAX_LIST_ITEMS + 1))
    error = assert_error(
        writer.post("/api/v1/posts", json={"title": "C", "content": "x", "tags": many}), 422, "VALIDATION_ERROR"
    )
    assert list(error["details"]) == ["tags"]


def test_a_tag_longer_than_an_item_may_be_is_refused(writer: TestClient) -> None:
    long_tag = "Q" * (MAX_ITEM_CHARS + 1)
    r = writer.post("/api/v1/posts", json={"title": "T", "content": "x", "tags": ["ok", long_tag]})
    assert list(assert_error(r, 422, "VALIDATION_ERROR")["details"]) == ["tags"]


def test_a_custom_list_field_in_data_is_bounded(writer: TestClient, svc: Services) -> None:
    svc.store.save_type("recipes", {"fields": [{"name": "steps", "type": "list"}]}, creating=True)
    steps = [f"step {n}" for n in range(MAX_LIST_ITEMS + 1)]
    r = writer.post("/api/v1/content/recipes", json={"title": "Bread", "data": {"steps": steps}})
    assert list(assert_error(r, 422, "VALIDATION_ERROR")["details"]) == ["data.steps"]


def test_titles_and_descriptions_at_their_maximum_are_accepted(writer: TestClient) -> None:
    r = writer.post(
        "/api/v1/posts", json={"title": "t" * MAX_TITLE_CHARS, "summary": "s" * MAX_DESCRIPTION_CHARS, "content": "x"}
    )
    assert r.status_code == 201, r.text
    assert len(r.json()["data"]["slug"].encode()) <= 80


def test_a_content_type_with_too_many_fields_is_refused(admin_client: TestClient) -> None:
    fields = [{"name": f"f{n}"} for n in range(201)]
    r = admin_client.post("/api/v1/content-types", json={"name": "wide", "fields": fields})
    assert list(assert_error(r, 422, "VALIDATION_ERROR")["details"]) == ["fields"]


def test_webhook_event_lists_are_bounded(admin_client: TestClient) -> None:
    events = ["post.created"] * (MAX_LIST_ITEMS + 1)
    r = admin_client.post("/api/v1/webhooks", json={"name": "n", "url": PUBLIC_URL, "events": events})
    assert list(assert_error(r, 422, "VALIDATION_ERROR")["details"]) == ["events"]


@pytest.fixture(autouse=True)
def _close_media(app: Starlette) -> Iterator[None]:
    yield
    library = app.state.services.media
    if library is not None:
        library.close()


def test_every_limit_is_documented_with_its_value() -> None:
    from cms.content import limits
    from tests.conftest import REPO

    text = (REPO / "docs" / "content-format.md").read_text(encoding="utf-8")
    for name in dir(limits):
        if name.startswith("MAX_"):
            value = getattr(limits, name)
            row = next((line for line in text.splitlines() if f"(`{name}`)" in line), "")
            assert row, f"docs/content-format.md does not list {name}"
            assert f"at most {value}" in row, f"docs/content-format.md gives {name} another value than {value}"
