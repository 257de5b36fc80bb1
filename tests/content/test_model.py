"""The content model: frontmatter aliases, status over time, excerpts, schemas and validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cms.content.model import (
    BUILTIN_TYPES,
    ContentType,
    Document,
    Field,
    Status,
    content_type_from_dict,
    derive_excerpt,
    field_from_dict,
    frontmatter_key,
    make_document,
    short_hash,
    to_datetime,
    url_path,
    validate,
)

BERLIN = ZoneInfo("Europe/Berlin")


def doc(meta: dict[str, Any], body: str = "", *, tz: Any = UTC, slug: str = "my-post", **kw: Any) -> Document:
    return make_document(
        doc_id="01K0000000AAAAAAAAAAAAAAAA",
        type="posts",
        slug=slug,
        path=f"posts/{slug}.md",
        meta=meta,
        body=body,
        etag="sha256-x",
        mtime=0.0,
        tz=tz,
        **kw,
    )


# -- make_document ---------------------------------------------------------------------------

JAN2 = datetime(2026, 1, 2, tzinfo=UTC)
JAN3 = datetime(2026, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meta", "attr", "expected"),
    [
        ({"date": date(2026, 1, 2)}, "published_at", JAN2),
        ({"published_at": "2026-01-02"}, "published_at", JAN2),
        ({"publishDate": "2026-01-02T00:00:00Z"}, "published_at", JAN2),
        ({"publishedAt": "2026-01-02T01:00:00+01:00"}, "published_at", JAN2),
        ({"pubDate": datetime(2026, 1, 2)}, "published_at", JAN2),
        ({"date": "2026-01-02", "publishDate": "2026-01-03"}, "published_at", JAN2),  # the first spelling wins
        ({"date": None, "publishDate": "2026-01-03"}, "published_at", JAN3),
        ({"date": "soon"}, "published_at", None),
        ({"date": 12}, "published_at", None),
        ({}, "published_at", None),
        ({"updated": "2026-01-03"}, "updated_at", JAN3),
        ({"lastmod": "2026-01-03"}, "updated_at", JAN3),
        ({"modified": "2026-01-03"}, "updated_at", JAN3),
        ({"updatedAt": "2026-01-03"}, "updated_at", JAN3),
        ({"date": "2026-01-02"}, "updated_at", JAN2),  # falls back to the publication date
        ({"date": "2026-01-02"}, "created_at", JAN2),
        ({"created": "2026-01-03", "date": "2026-01-02"}, "created_at", JAN3),
        ({"expires": "2026-01-03"}, "expires_at", JAN3),
        ({"expiryDate": "2026-01-03"}, "expires_at", JAN3),
        ({"expiresAt": "2026-01-03"}, "expires_at", JAN3),
        ({"summary": "S"}, "excerpt", "S"),
        ({"excerpt": "E"}, "excerpt", "E"),
        ({"description": "D"}, "excerpt", "D"),
        ({"summary": "S", "description": "D"}, "excerpt", "S"),
        ({"summary": "  "}, "excerpt", "Body paragraph."),  # blank: derived from the body
        ({"category": "news"}, "categories", ("news",)),
        ({"categories": ["a", "b"]}, "categories", ("a", "b")),
        ({"categories": "a"}, "categories", ("a",)),
        ({"categories": ["a", None, {"x": 1}, ["y"], 3]}, "categories", ("a", "3")),
        ({"tags": "solo"}, "tags", ("solo",)),
        ({"tags": ""}, "tags", ()),
        ({"tags": None}, "tags", ()),
        ({"author": "ana"}, "authors", ("ana",)),
        ({"authors": ["ana", "bo"]}, "authors", ("ana", "bo")),
        ({"authors": ["ana", "bo"]}, "author", "ana"),
        ({}, "author", None),
        ({"image": "a.jpg"}, "featured_image", "a.jpg"),
        ({"cover": "c.jpg"}, "featured_image", "c.jpg"),
        ({"thumbnail": "t.jpg"}, "featured_image", "t.jpg"),
        ({"featured_image": ""}, "featured_image", None),
        ({"featured_image": ["x"]}, "featured_image", None),
        ({"aliases": ["/old/"]}, "aliases", ("/old/",)),
        ({"title": "Given"}, "title", "Given"),
        ({"title": 2026}, "title", "2026"),
        ({}, "title", "My post"),  # from the slug
        ({}, "stored_status", Status.PUBLISHED),
        ({"draft": True}, "stored_status", Status.DRAFT),
        ({"draft": "yes"}, "stored_status", Status.PUBLISHED),  # only a real boolean counts
        ({"draft": False}, "stored_status", Status.PUBLISHED),
        ({"status": "draft"}, "stored_status", Status.DRAFT),
        ({"status": "trash", "draft": True}, "stored_status", Status.TRASH),
        ({"status": "published", "draft": True}, "stored_status", Status.DRAFT),
        ({"status": "bogus"}, "stored_status", Status.PUBLISHED),
    ],
)
def test_make_document_resolves_aliases(meta: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(doc(meta, "Body paragraph."), attr) == expected


def test_data_holds_the_non_base_keys() -> None:
    d = doc({"title": "T", "date": "2026-01-01", "price": 3, "series": ["a"], "tags": ["x"]}, taxonomies=["series"])
    assert d.data == {"price": 3, "series": ["a"]}
    assert d.meta["title"] == "T"  # the raw frontmatter stays


def test_naive_times_are_in_the_site_zone() -> None:
    d = doc({"date": "2026-07-01T10:00:00"}, tz=BERLIN)
    assert d.published_at == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert d.published_at.tzinfo is UTC  # type: ignore[union-attr]
    assert doc({"date": date(2026, 1, 1)}, tz=BERLIN).published_at == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def test_hash_words_and_reading_time() -> None:
    d = doc({}, "word " * 461)
    assert d.hash == short_hash(d.id) and len(d.hash) == 12
    assert short_hash("a") != short_hash("b")
    assert d.words == 461
    assert d.reading_minutes == 3
    assert doc({}, "").reading_minutes == 1


# -- status over time ------------------------------------------------------------------------

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("meta", "now", "status"),
    [
        ({"date": T}, T, Status.PUBLISHED),  # published at exactly its moment
        ({"date": T}, T - SEC, Status.SCHEDULED),
        ({"date": T}, T + SEC, Status.PUBLISHED),
        ({}, T, Status.PUBLISHED),
        ({"date": T - SEC * 10, "expires": T}, T - SEC, Status.PUBLISHED),
        ({"date": T - SEC * 10, "expires": T}, T, Status.EXPIRED),  # expiry is inclusive
        ({"expires": T}, T + SEC, Status.EXPIRED),
        ({"date": T + SEC, "expires": T}, T, Status.SCHEDULED),  # scheduling wins over expiry
        ({"date": T, "draft": True}, T + SEC, Status.DRAFT),
        ({"date": T, "status": "trash"}, T - SEC, Status.TRASH),
        ({"expires": T, "draft": True}, T + SEC, Status.DRAFT),
    ],
)
def test_status_at(meta: dict[str, Any], now: datetime, status: Status) -> None:
    d = doc(meta)
    assert d.status_at(now) is status
    assert d.is_live(now) is (status is Status.PUBLISHED)


# -- excerpts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "excerpt"),
    [
        ("First paragraph.\n\nSecond.", "First paragraph."),
        ("# Heading\n\nText after it.", "Text after it."),
        ("# Heading\nText right below.", "Text right below."),
        ("Setext heading\n==============\n\nThe text.", "The text."),
        ("```python\nx = 1\n```\n\nAfter code.", "After code."),
        ("```python\nx = 1\n\ny = 2\n```\n\nAfter a fence with a blank line.", "After a fence with a blank line."),
        ("~~~\ncode\n\nmore\n~~~\nTilde fence done.", "Tilde fence done."),
        ("Intro line\n```\ncode\n```", "Intro line"),
        ("**Bold** and _em_ and `code` and [a link](http://x).", "Bold and em and code and a link."),
        ("![alt](img.png)\n\nCaption paragraph.", "Caption paragraph."),
        ("Line one\nline two.", "Line one line two."),
        ("<div>html</div>\n\nProse.", "Prose."),
        ("| a | b |\n|---|---|\n\nAfter table.", "After table."),
        ("---\n\nAfter rule.", "After rule."),
        ("* * *\n\nAfter a starred rule.", "After a starred rule."),
        ("Before a rule.\n\n***\n\nAfter.", "Before a rule."),
        ("***Bold italic*** opens it.", "Bold italic opens it."),
        ("- a list item\n- another", "a list item another"),
        ("1. first step\n2) second", "first step second"),
        ("-5 degrees is cold.", "-5 degrees is cold."),
        ("Note[^1] here.\n\n[^1]: The note.", "Note here."),
        ("> Quoted words.", "Quoted words."),
        ("", ""),
        ("# Only a heading", ""),
        ("```\nonly code\n```", ""),
    ],
)
def test_derive_excerpt(body: str, excerpt: str) -> None:
    assert derive_excerpt(body) == excerpt


def test_derive_excerpt_cuts_at_a_word() -> None:
    text = "word " * 100
    out = derive_excerpt(text, limit=22)
    assert out == "word word word word…"
    long = derive_excerpt("Alpha beta, gamma delta epsilon.", limit=12)
    assert long == "Alpha beta…"  # trailing punctuation dropped before the ellipsis
    assert len(derive_excerpt("x " * 500)) <= 201


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "messages"),
    [
        (Field("t", "text", max_length=3), "abcd", ["must be at most 3 characters, got 4"]),
        (Field("t", "text", max_length=3), "abc", []),
        (Field("t", "text"), 5, ["must be a string, got integer"]),
        (Field("t", "markdown"), ["x"], ["must be a string, got list"]),
        (Field("t", "image"), {"src": "x"}, ["must be a string, got object"]),
        (Field("r", "reference"), ["a", "b"], []),
        (Field("r", "reference"), [1], ["must be a string, got list"]),
        (Field("n", "number"), "abc", ["must be a number, got string"]),
        (Field("n", "number"), True, ["must be a number, got boolean"]),
        (Field("n", "number", min=0, max=10), -1, ["must be >= 0"]),
        (Field("n", "number", min=0, max=10), 11.5, ["must be <= 10"]),
        (Field("n", "number", min=0, max=10), 10, []),
        (Field("n", "number"), float("inf"), ["must be a finite number"]),
        (Field("i", "integer"), 2.5, ["must be an integer"]),
        (Field("i", "integer"), 2.0, []),
        (Field("b", "boolean"), "yes", ["must be true or false, got string"]),
        (Field("b", "boolean"), 1, ["must be true or false, got integer"]),
        (Field("b", "boolean"), False, []),
        (Field("d", "date"), "2026-01-02", []),
        (Field("d", "datetime"), date(2026, 1, 2), []),
        (Field("d", "datetime"), "tomorrow", ["must be an ISO 8601 datetime, got 'tomorrow'"]),
        (Field("s", "select", options=("a", "b")), "c", ["must be one of a, b"]),
        (Field("s", "select", options=(1, 2)), 2, []),
        (Field("g", "tags"), "one", []),
        (Field("g", "tags"), [1], ["must be a list of strings"]),
        (Field("g", "tags"), 5, ["must be a list, got integer"]),
        (Field("l", "list", max_length=1), ["a", "b"], ["must have at most 1 items"]),
        (Field("l", "list"), [1, {"a": 1}], ["must be a list of strings"]),  # as the spec's items say
        (Field("l", "list"), ["a", "b"], []),
        (Field("l", "list"), "x", ["must be a list, got string"]),
        (Field("j", "json"), {"any": ["thing"]}, []),
    ],
)
def test_validate_messages_per_field_type(field: Field, value: Any, messages: list[str]) -> None:
    ctype = ContentType("things", fields=(field,))
    assert validate({field.name: value}, ctype) == ({field.name: messages} if messages else {})


@pytest.mark.parametrize("empty", [None, "", []])
def test_validate_required(empty: Any) -> None:
    ctype = ContentType("things", fields=(Field("x", "text", required=True), Field("y", "number")))
    assert validate({"x": empty, "y": empty}, ctype) == {"x": ["is required"]}
    assert validate({}, ctype) == {"x": ["is required"]}


def test_builtin_posts_schema() -> None:
    posts = BUILTIN_TYPES["posts"]
    assert validate({"title": "T", "seo_description": "x" * 161}, posts) == {
        "seo_description": ["must be at most 160 characters, got 161"]
    }
    assert validate({"title": "T", "draft": "no"}, posts) == {"draft": ["must be true or false, got string"]}
    assert validate({"title": "T", "date": date(2026, 1, 1), "tags": ["a"], "categories": "b"}, posts) == {}


# -- content types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"fields": [{"name": "x", "type": "wibble"}]}, "field 'x': unknown type 'wibble'"),
        ({"fields": [{"name": "x"}, {"name": "x", "type": "number"}]}, "field 'x' is declared twice"),
        ({"fields": [{"name": "x", "min": "low"}]}, "field 'x': min must be a number"),
        ({"fields": [{"name": "x", "max": True}]}, "field 'x': max must be a number"),
        ({"fields": [{"name": "x", "max_length": -1}]}, "max_length must be a non-negative integer"),
        ({"fields": [{"name": "x", "maxLength": "5"}]}, "max_length"),
        ({"fields": [{"name": "x", "options": "a,b"}]}, "options must be a list"),
        ({"fields": [{"name": "x", "colour": 1}]}, "field 'x': unknown key 'colour'"),
        ({"fields": [{"type": "text"}]}, "fields[0] needs a name"),
        ({"fields": ["x"]}, "fields[0] needs a name"),
        ({"fields": [{"name": "1x"}]}, "letters, digits and _"),
        ({"fields": [{"name": "a-b"}]}, "letters, digits and _"),
        ({"fields": "title"}, "fields must be a list"),
        ({"pages": "yes"}, "pages must be true or false"),
        ({"label": ["x"]}, "label must be a string"),
    ],
)
def test_content_type_from_dict_errors(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        content_type_from_dict("things", raw)
    assert needle in str(info.value)


def test_content_type_from_dict_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        content_type_from_dict("things", ["x"])  # type: ignore[arg-type]


def test_content_type_from_dict() -> None:
    ctype = content_type_from_dict(
        "products",
        {
            "label": "Products",
            "titleField": "name",
            "icon": "box",
            "fields": [
                {"name": "price", "type": "float", "required": True, "min": 0},
                {"name": "body", "type": "richText"},
                {"name": "roast", "type": "enum", "options": ["light", "dark"], "default": "light"},
                {"name": "sku", "type": "string", "maxLength": 32, "unique": True},
            ],
        },
    )
    assert ctype.title_field == "name" and ctype.slug_field == "title"
    assert [(f.name, f.type) for f in ctype.fields] == [
        ("price", "number"),
        ("body", "markdown"),
        ("roast", "select"),
        ("sku", "text"),
    ]
    assert ctype.field("sku").max_length == 32 and ctype.field("sku").unique  # type: ignore[union-attr]
    assert ctype.field("nope") is None
    assert not ctype.builtin and ctype.pages
    assert ctype.as_dict()["fields"][0] == {
        "name": "price",
        "type": "number",
        "label": "price",
        "required": True,
        "min": 0,
    }
    assert ctype.as_dict()["fields"][2]["options"] == ["light", "dark"]


def test_content_type_mapping_form_and_base() -> None:
    ctype = content_type_from_dict(
        "posts", {"fields": {"rating": {"type": "int"}, "title": {"max_length": 80}}}, base=BUILTIN_TYPES["posts"]
    )
    assert ctype.builtin
    assert ctype.field("rating").type == "integer"  # type: ignore[union-attr]
    assert ctype.field("title").max_length == 80  # type: ignore[union-attr]  # own declaration replaces the base
    assert ctype.field("seo_description") is not None  # the rest of the built-in schema stays
    assert [f.name for f in ctype.fields].count("title") == 1
    assert ctype.label == "Posts"


def test_field_from_dict_defaults() -> None:
    f = field_from_dict({"name": "x"})
    assert (f.type, f.required, f.unique, f.options, f.label) == ("text", False, False, (), "")
    assert f.as_dict() == {"name": "x", "type": "text", "label": "x"}


# -- paths and keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("posts", "hello"), "/posts/hello/"),
        (("pages", "about"), "/about/"),
        (("products", "mug"), "/products/mug/"),
        (("posts", "hallo", "de", "en"), "/de/posts/hallo/"),
        (("pages", "impressum", "de", "en"), "/de/impressum/"),
        (("posts", "hello", "en", "en"), "/posts/hello/"),  # the default language has no prefix
        (("posts", "café"), "/posts/café/"),
    ],
)
def test_url_path(args: tuple[Any, ...], path: str) -> None:
    assert url_path(*args) == path


@pytest.mark.parametrize(
    ("canonical", "meta", "key"),
    [
        ("published_at", {}, "date"),
        ("published_at", {"pubDate": 1}, "pubDate"),
        ("updated_at", {"lastmod": 1}, "lastmod"),
        ("updated_at", {}, "updated"),
        ("excerpt", {"description": "d"}, "description"),
        ("excerpt", {}, "summary"),
        ("categories", {"category": "x"}, "category"),
        ("price", {}, "price"),
    ],
)
def test_frontmatter_key(canonical: str, meta: dict[str, Any], key: str) -> None:
    assert frontmatter_key(canonical, meta) == key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02", datetime(2026, 1, 1, 23, 0, tzinfo=UTC)),  # midnight in Berlin
        (date(2026, 7, 2), datetime(2026, 7, 1, 22, 0, tzinfo=UTC)),
        (" 2026-01-02T00:00:00Z ", datetime(2026, 1, 2, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("not a date", None),
        (20260102, None),
    ],
)
def test_to_datetime(value: Any, expected: datetime | None) -> None:
    assert to_datetime(value, BERLIN) == expected
