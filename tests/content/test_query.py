"""The query engine: filter grammar (seed 004 + Strapi operators), visibility, taxonomies, search, sort, pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cms.content.index import Index
from cms.content.query import Page, Query, parse_brackets, parse_query, run
from cms.errors import BadRequest
from tests.support import DEMO_DRAFTS, DEMO_LIVE_POSTS, DEMO_NOW, DEMO_PAGES, DEMO_POSTS

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

SITE_FILES = {
    "cms.toml": """
        [site]
        title = "Query test"
        timezone = "UTC"

        [taxonomies.series]
        label = "Series"
    """,
    "content/categories/brewing.md": "---\nname: Brewing\n---\n",
    "content/categories/espresso.md": "---\nname: Espresso\nparent: brewing\n---\n",
    "content/categories/milk.md": "---\nname: Milk\nparent: espresso\n---\n",
    "content/categories/news.md": "---\nname: News\n---\n",
    "content/authors/ana.md": "---\nname: Ana\n---\n",
    "content/authors/bo.md": "---\nname: Bo\n---\n",
    "content/posts/alpha.md": """
        ---
        title: Alpha coffee
        date: 2026-01-10T10:00:00Z
        tags: [coffee, beans]
        categories: [brewing]
        author: ana
        rating: 5
        featured: true
        series: [basics]
        metrics:
          views: 100
          source:
            name: rss
        ---
        Notes about a washed lot from the north.
    """,
    "content/posts/beta.md": """
        ---
        title: Beta brewing
        date: 2026-02-01
        tags: [coffee]
        categories: [espresso]
        author: bo
        rating: "7"
        featured: false
        metrics: {views: 50}
        ---
        Grind finer, then coarser.
    """,
    "content/posts/gamma.md": """
        ---
        title: Gamma Ünïcode café 中文
        date: 2026-03-15T12:00:00
        tags: [tea]
        categories: [milk]
        author: ana
        rating: 3.5
        series: [basics, advanced]
        metrics: {views: 5}
        ---
        Steamed milk and matcha.
    """,
    "content/posts/delta.md": """
        ---
        title: Delta draft
        date: 2026-01-20
        draft: true
        tags: [coffee]
        ---
        Not yet.
    """,
    "content/posts/epsilon.md": """
        ---
        title: Epsilon trashed
        date: 2025-12-01
        status: trash
        ---
        Gone.
    """,
    "content/posts/zeta.md": """
        ---
        title: Zeta scheduled
        date: 2030-01-01T00:00:00Z
        ---
        Later.
    """,
    "content/posts/eta.md": """
        ---
        title: Eta expired
        date: 2025-01-01
        expires: 2025-06-01
        ---
        Was here.
    """,
    "content/posts/theta.md": """
        ---
        title: theta lowercase
        tags: []
        ---
        A plain first paragraph.

        Watch out: <script>alert('x')</script> teapot here.
    """,
    "content/posts/iota.md": """
        ---
        title: Iota
        date: 2026-04-01
        lastmod: 2026-05-01
        tags: [news-tag]
        categories: [news]
        author: bo
        rating: 0
        featured: false
        ---
        We bought a new espresso machine for the shop.
    """,
    "content/posts/kappa.md": """
        ---
        title: Espresso kappa
        date: 2026-04-02
        tags: [espresso-tag]
        rating:
        ---
        A short note.
    """,
    "content/products/mug.md": """
        ---
        title: Mug
        date: 2026-01-05
        price: 12.5
        in_stock: true
        sku: M-1
        tags: [gear]
        dims: {w: 10, h: 12}
        ---
        A mug.
    """,
    "content/products/kettle.md": """
        ---
        title: Kettle
        date: 2026-01-06
        price: 80
        in_stock: false
        sku: K-1
        tags: [gear, brewing-gear]
        ---
        A kettle.
    """,
    "content/products/widget.md": """
        ---
        title: Widget
        date: 2026-01-07
        price: n/a
        in_stock: "true"
        sku: W-1
        ---
        A widget.
    """,
}
LIVE_POSTS = {"alpha", "beta", "gamma", "theta", "iota", "kappa"}
ALL_POSTS = LIVE_POSTS | {"delta", "epsilon", "zeta", "eta"}


@pytest.fixture
def index(make_site: Any) -> Index:
    files = dict(SITE_FILES)
    config = files.pop("cms.toml")
    site = make_site(files, config=config)
    idx = Index.load(site, background_search=False)
    assert idx.problems == {}
    return idx


def query(index: Index, params: dict[str, Any], now: datetime = NOW) -> Page:
    return run(index, parse_query(params, taxonomies=("series",)), now)


def slugs(page: Page) -> list[str]:
    return [d.slug for d in page.items]


def slug_set(index: Index, params: dict[str, Any], now: datetime = NOW) -> set[str]:
    page = query(index, {"per_page": "100", **params}, now)
    assert page.total == len(page.items)
    return set(slugs(page))


# -- operators -------------------------------------------------------------------------------

POST_FILTERS = [
    # numbers (rating is 5, "7" (a string), 3.5, 0, missing, null)
    ({"rating": {"$eq": "5"}}, {"alpha"}),
    ({"rating": {"$eq": "7"}}, {"beta"}),
    ({"rating": {"$gt": "4"}}, {"alpha", "beta"}),
    ({"rating": {"$gt": "10"}}, set()),  # "7" > "10" as text, not as numbers
    ({"rating": {"$gte": "3.5"}}, {"alpha", "beta", "gamma"}),
    ({"rating": {"$lt": "1"}}, {"iota"}),
    ({"rating": {"$lte": "3.5"}}, {"gamma", "iota"}),
    ({"rating": {"$ne": "5"}}, LIVE_POSTS - {"alpha"}),
    ({"rating": {"$null": "true"}}, {"theta", "kappa"}),
    ({"rating": {"$null": "false"}}, {"alpha", "beta", "gamma", "iota"}),
    ({"rating": {"$notNull": "true"}}, {"alpha", "beta", "gamma", "iota"}),
    ({"rating": {"$notNull": "false"}}, {"theta", "kappa"}),
    ({"rating": {"$in": "5,0"}}, {"alpha", "iota"}),
    ({"rating": {"$in": ["5", "7"]}}, {"alpha", "beta"}),
    ({"rating": {"$notIn": "5,0"}}, {"beta", "gamma", "theta", "kappa"}),
    ({"rating": {"$between": "1,5"}}, {"alpha", "gamma"}),
    ({"rating": {"$between": ["0", "3.5"]}}, {"gamma", "iota"}),
    ({"data.rating": {"$gte": "5"}}, {"alpha", "beta"}),
    # nested data
    ({"data.metrics.views": {"$gt": "10"}}, {"alpha", "beta"}),
    ({"data.metrics.views": {"$lt": "10"}}, {"gamma"}),
    ({"data.metrics.source.name": {"$eq": "rss"}}, {"alpha"}),
    ({"data.metrics.source.name": {"$null": "true"}}, LIVE_POSTS - {"alpha"}),
    ({"data.series.1": {"$eq": "advanced"}}, {"gamma"}),
    # booleans from "true"/"false"
    ({"featured": {"$eq": "true"}}, {"alpha"}),
    ({"featured": {"$eq": "false"}}, {"beta", "iota"}),
    ({"data.featured": {"$ne": "true"}}, LIVE_POSTS - {"alpha"}),
    ({"featured": {"$eq": "1"}}, {"alpha"}),
    # strings
    ({"title": {"$eq": "Alpha coffee"}}, {"alpha"}),
    ({"title": {"$eq": "alpha coffee"}}, set()),
    ({"title": {"$eqi": "ALPHA COFFEE"}}, {"alpha"}),
    ({"title": {"$contains": "COFFEE"}}, {"alpha"}),
    ({"title": {"$containsi": "brew"}}, {"beta"}),
    ({"title": {"$notContains": "coffee"}}, LIVE_POSTS - {"alpha"}),
    ({"title": {"$startsWith": "Gamma Ü"}}, {"gamma"}),
    ({"title": {"$contains": "中文"}}, {"gamma"}),
    ({"title": {"$contains": "CAFÉ"}}, {"gamma"}),
    ({"title": {"$endsWith": "kappa"}}, {"kappa"}),
    ({"data.title": {"$contains": "gamma"}}, {"gamma"}),
    ({"slug": {"$startsWith": "ka"}}, {"kappa"}),
    ({"slug": {"$endsWith": "eta"}}, {"beta", "theta"}),
    ({"slug": "alpha"}, {"alpha"}),  # a bare value means $eq
    ({"slug": {"$in": "alpha,iota,nope"}}, {"alpha", "iota"}),
    ({"slug": {"$eq": "nothing-here"}}, set()),
    ({"type": {"$eq": "posts"}}, LIVE_POSTS),
    ({"type": {"$ne": "posts"}}, set()),
    # lists: tags and categories
    ({"tags": {"$contains": "coffee"}}, {"alpha", "beta"}),
    ({"tags": {"$containsi": "COFFEE"}}, {"alpha", "beta"}),
    ({"tags": {"$eq": "tea"}}, {"gamma"}),
    ({"tags": {"$in": "tea,beans"}}, {"alpha", "gamma"}),
    ({"tags": {"$notIn": "coffee"}}, {"gamma", "theta", "iota", "kappa"}),
    ({"tags": {"$notContains": "coffee"}}, {"gamma", "theta", "iota", "kappa"}),
    ({"tags": {"$null": "true"}}, {"theta"}),
    ({"categories": {"$eq": "brewing"}}, {"alpha"}),
    ({"category": {"$eq": "milk"}}, {"gamma"}),
    ({"data.tags": {"$contains": "beans"}}, {"alpha"}),
    # author
    ({"author": {"$eq": "ana"}}, {"alpha", "gamma"}),
    ({"authorId": {"$ne": "ana"}}, {"beta", "theta", "iota", "kappa"}),
    ({"author": {"$null": "true"}}, {"theta", "kappa"}),
    # dates against date-only strings
    ({"published_at": {"$gte": "2026-03-01"}}, {"gamma", "iota", "kappa"}),
    ({"publishedAt": {"$lt": "2026-02-01"}}, {"alpha"}),
    ({"date": {"$lte": "2026-02-01"}}, {"alpha", "beta"}),
    ({"published_at": {"$gt": "2026-03-15T11:59:59Z"}}, {"gamma", "iota", "kappa"}),
    ({"published_at": {"$between": "2026-02-01,2026-03-31"}}, {"beta", "gamma"}),
    ({"published_at": {"$null": "true"}}, {"theta"}),
    ({"published_at": {"$notNull": "true"}}, LIVE_POSTS - {"theta"}),
    ({"updated_at": {"$gt": "2026-04-15"}}, {"iota"}),
    ({"updatedAt": {"$lt": "2026-01-11"}}, {"alpha"}),
    # logic
    ({"$or": [{"slug": {"$eq": "alpha"}}, {"slug": {"$eq": "beta"}}]}, {"alpha", "beta"}),
    ({"$and": [{"tags": {"$contains": "coffee"}}, {"author": {"$eq": "bo"}}]}, {"beta"}),
    ({"$not": {"tags": {"$contains": "coffee"}}}, {"gamma", "theta", "iota", "kappa"}),
    (
        {
            "$or": [
                {"$and": [{"author": "ana"}, {"rating": {"$gt": "4"}}]},
                {"$not": {"slug": {"$ne": "kappa"}}},
            ]
        },
        {"alpha", "kappa"},
    ),
    ({"rating": {"$gt": "1", "$lt": "6"}}, {"alpha", "gamma"}),  # two operators on one field: AND
    ({"author": "ana", "rating": {"$lt": "4"}}, {"gamma"}),  # two fields: AND
]


@pytest.mark.parametrize(("filters", "expected"), POST_FILTERS, ids=[str(f) for f, _ in POST_FILTERS])
def test_filter_operators_on_posts(index: Index, filters: dict[str, Any], expected: set[str]) -> None:
    assert slug_set(index, {"type": "posts", "filters": filters}) == expected


PRODUCT_FILTERS = [
    ({"data.price": {"$gt": "50"}}, {"kettle"}),  # "n/a" is not a number: never above 50
    ({"data.price": {"$lte": "12.5"}}, {"mug"}),
    ({"price": {"$eq": "80"}}, {"kettle"}),
    ({"price": {"$eq": "80.0"}}, {"kettle"}),
    ({"price": {"$eq": "n/a"}}, {"widget"}),
    ({"price": {"$ne": "80"}}, {"mug", "widget"}),
    ({"price": {"$between": "10,100"}}, {"mug", "kettle"}),
    ({"in_stock": {"$eq": "true"}}, {"mug", "widget"}),  # a bool in one file, the text "true" in another
    ({"in_stock": {"$eq": "false"}}, {"kettle"}),
    ({"data.dims.w": {"$eq": "10"}}, {"mug"}),
    ({"data.dims": {"$eq": "10"}}, set()),  # an object never equals a scalar
    ({"sku": {"$in": ["M-1", "K-1"]}}, {"mug", "kettle"}),
    ({"sku": {"$startsWith": "W"}}, {"widget"}),
    ({"tags": {"$contains": "brewing-gear"}}, {"kettle"}),
]


@pytest.mark.parametrize(("filters", "expected"), PRODUCT_FILTERS, ids=[str(f) for f, _ in PRODUCT_FILTERS])
def test_filter_operators_on_products(index: Index, filters: dict[str, Any], expected: set[str]) -> None:
    assert slug_set(index, {"type": "products", "filters": filters}) == expected


@pytest.mark.parametrize(
    "op",
    ["$eq", "$eqi", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$notIn", "$contains", "$containsi"]
    + ["$notContains", "$startsWith", "$endsWith", "$between"],
)
@pytest.mark.parametrize("field", ["price", "in_stock", "dims", "rating", "tags", "published_at", "title"])
def test_mixed_types_never_raise(index: Index, op: str, field: str) -> None:
    value = "1,2" if op == "$between" else "12.5"
    page = query(index, {"filters": {field: {op: value}}, "status": "any", "per_page": "100"})
    assert page.total == len(page.items)


def test_operator_results_differ_from_everything(index: Index) -> None:
    """Negative control: the filters above really narrow the list."""
    assert slug_set(index, {"type": "posts"}) == LIVE_POSTS
    assert slug_set(index, {"type": "products"}) == {"mug", "kettle", "widget"}


# -- the bracket grammar ---------------------------------------------------------------------

BRACKETS = [
    (
        [("filters[$or][0][status][$eq]", "draft"), ("filters[$or][1][status][$eq]", "published")],
        {"filters": {"$or": [{"status": {"$eq": "draft"}}, {"status": {"$eq": "published"}}]}},
    ),
    (
        [("filters[status][$in][0]", "draft"), ("filters[status][$in][1]", "published")],
        {"filters": {"status": {"$in": ["draft", "published"]}}},
    ),
    ([("filters[data.price][$gt]", "100")], {"filters": {"data.price": {"$gt": "100"}}}),
    ([("tag", "a"), ("tag", "b"), ("page", "2")], {"tag": ["a", "b"], "page": "2"}),
    ([("tag[]", "a"), ("tag[]", "b")], {"tag": ["a", "b"]}),
    ([("filters[slug]", "x")], {"filters": {"slug": "x"}}),
    ([("filters[a][1]", "x"), ("filters[a][0]", "y")], {"filters": {"a": ["y", "x"]}}),
    ([("filters[a][0]", "x"), ("filters[a][2]", "y")], {"filters": {"a": {"0": "x", "2": "y"}}}),  # not 0..n-1
]


@pytest.mark.parametrize(("pairs", "expected"), BRACKETS)
def test_parse_brackets(pairs: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    assert parse_brackets(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "needle"),
    [
        ([("filters[a", "x")], "filters[a"),
        ([("filters[][x]", "1")], "filters[][x]"),
        ([("filters[a]x", "1")], "filters[a]x"),
        ([("filters", "x"), ("filters[a]", "1")], "conflicts"),
        ([("filters" + "[$not]" * 20 + "[slug][$eq]", "x")], "deep"),
    ],
)
def test_parse_brackets_rejects_malformed_keys(pairs: list[tuple[str, str]], needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_brackets(pairs)
    assert needle in info.value.message


SEED_EXAMPLES = [
    ([("filters[status][$eq]", "published")], LIVE_POSTS),
    (
        [("filters[$or][0][status][$eq]", "draft"), ("filters[$or][1][status][$eq]", "published")],
        LIVE_POSTS | {"delta"},
    ),
    (
        [("filters[$and][0][status][$eq]", "published"), ("filters[$and][1][data.featured][$eq]", "true")],
        {"alpha"},
    ),
    ([("filters[status][$in]", "draft,trash")], {"delta", "epsilon"}),
    ([("filters[status][$in][0]", "draft"), ("filters[status][$in][1]", "scheduled")], {"delta", "zeta"}),
    ([("filters[status][$ne]", "published")], {"delta", "epsilon", "zeta", "eta"}),
    ([("filters[data.title][$contains]", "alpha")], {"alpha"}),
    ([("filters[publishedAt][$lt]", "2026-01-01")], set()),  # epsilon is in the trash, eta expired
    ([("filters[publishedAt][$lt]", "2026-01-01"), ("status", "any")], {"epsilon", "eta"}),
    ([("filters[publishedAt][$null]", "true")], {"theta"}),
    ([("filters[slug][$startsWith]", "e"), ("status", "all")], {"eta"}),
]


@pytest.mark.parametrize(("pairs", "expected"), SEED_EXAMPLES)
def test_seed_004_examples_through_brackets(index: Index, pairs: list[tuple[str, str]], expected: set[str]) -> None:
    params = parse_brackets([("type", "posts"), ("per_page", "100"), *pairs])
    assert {d.slug for d in run(index, parse_query(params), NOW).items} == expected


def test_filters_on_status_open_every_status_but_other_filters_do_not(index: Index) -> None:
    assert slug_set(index, {"type": "posts", "filters": {"status": {"$ne": "nothing"}}}) == ALL_POSTS
    assert slug_set(index, {"type": "posts", "filters": {"slug": {"$ne": "nothing"}}}) == LIVE_POSTS
    nested = {"$or": [{"slug": "delta"}, {"$and": [{"status": "trash"}]}]}
    assert slug_set(index, {"type": "posts", "filters": nested}) == {"delta", "epsilon"}


# -- visibility ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, LIVE_POSTS),
        ({"status": "published"}, LIVE_POSTS),
        ({"status": "draft"}, {"delta"}),
        ({"status": "trash"}, {"epsilon"}),
        ({"status": "scheduled"}, {"zeta"}),
        ({"status": "expired"}, {"eta"}),
        ({"status": "draft,scheduled"}, {"delta", "zeta"}),
        ({"status": ["draft", "trash"]}, {"delta", "epsilon"}),
        ({"status": "all"}, ALL_POSTS - {"epsilon"}),
        ({"status": "any"}, ALL_POSTS),
        ({"draft": "true"}, ALL_POSTS - {"epsilon"}),
        ({"draft": "false"}, LIVE_POSTS),
        ({"draft": "true", "status": "draft"}, {"delta"}),
    ],
)
def test_status_visibility(index: Index, params: dict[str, Any], expected: set[str]) -> None:
    assert slug_set(index, {"type": "posts", **params}) == expected


def test_scheduled_post_appears_once_its_date_passes(index: Index) -> None:
    assert "zeta" not in slug_set(index, {"type": "posts"}, now=datetime(2029, 12, 31, 23, 59, tzinfo=UTC))
    assert "zeta" in slug_set(index, {"type": "posts"}, now=datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert "zeta" in slug_set(index, {"type": "posts", "status": "scheduled"}, now=NOW)


def test_expired_post_is_visible_before_it_expires(index: Index) -> None:
    before = datetime(2025, 3, 1, tzinfo=UTC)
    assert "eta" in slug_set(index, {"type": "posts"}, now=before)
    assert "eta" not in slug_set(index, {"type": "posts"}, now=NOW)


def test_default_query_spans_types_and_type_narrows(index: Index) -> None:
    assert slug_set(index, {}) == LIVE_POSTS | {"mug", "kettle", "widget"}
    assert slug_set(index, {"type": "products"}) == {"mug", "kettle", "widget"}
    assert slug_set(index, {"type": "pages"}) == set()
    assert {d.slug for d in run(index, parse_query({}, type_name="products"), NOW).items} == {
        "mug",
        "kettle",
        "widget",
    }


# -- taxonomies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "brewing"}, {"alpha", "beta", "gamma"}),  # espresso and milk sit below brewing
        ({"category": "espresso"}, {"beta", "gamma"}),
        ({"category": "milk"}, {"gamma"}),
        ({"category": "news"}, {"iota"}),
        ({"category": "nope"}, set()),
        ({"tag": "coffee"}, {"alpha", "beta"}),  # delta (draft) names it too but is hidden
        ({"tag": "coffee", "status": "draft"}, {"delta"}),
        ({"tag": "coffee,tea"}, {"alpha", "beta", "gamma"}),
        ({"tags": ["coffee", "beans"]}, {"alpha", "beta"}),
        ({"tags": ["coffee", "beans"], "tag_mode": "all"}, {"alpha"}),
        ({"tag": "coffee,tea", "tag_mode": "all"}, set()),
        ({"tag": "coffee", "tag_mode": "ALL"}, {"alpha", "beta"}),
        ({"author": "ana"}, {"alpha", "gamma"}),
        ({"author": "bo"}, {"beta", "iota"}),
        ({"author": "nobody"}, set()),
        ({"series": "basics"}, {"alpha", "gamma"}),
        ({"series": "advanced"}, {"gamma"}),
        ({"series": "basics", "author": "ana", "tag": "tea"}, {"gamma"}),
        ({"category": "brewing", "tag": "coffee"}, {"alpha", "beta"}),
        ({"category": "brewing", "filters": {"rating": {"$gt": "4"}}}, {"alpha", "beta"}),
    ],
)
def test_taxonomy_parameters(index: Index, params: dict[str, Any], expected: set[str]) -> None:
    assert slug_set(index, {"type": "posts", **params}) == expected


def test_taxonomy_results_follow_a_refresh(index: Index) -> None:
    assert slug_set(index, {"tag": "tea"}) == {"gamma"}
    path = index.root / "posts/iota.md"
    path.write_text(path.read_text().replace("tags: [news-tag]", "tags: [tea]"), encoding="utf-8")
    index.refresh(["posts/iota.md"])
    assert slug_set(index, {"tag": "tea"}) == {"gamma", "iota"}
    assert slug_set(index, {"category": "news"}) == {"iota"}
    assert slug_set(index, {"author": "bo"}) == {"beta", "iota"}


# -- full text -------------------------------------------------------------------------------


def test_search_ranks_title_above_body(index: Index) -> None:
    page = query(index, {"search": "espresso"})
    assert slugs(page) == ["kappa", "iota"]  # title match first, body-only second
    assert page.total == 2


def test_search_snippets_mark_matches(index: Index) -> None:
    page = query(index, {"search": "espresso"})
    iota = index.get("iota", "posts")
    assert "<mark>espresso</mark>" in page.snippets[iota.id]
    assert set(page.snippets) == {d.id for d in page.items}


def test_search_snippets_escape_html(index: Index) -> None:
    page = query(index, {"search": "teapot"})
    assert slugs(page) == ["theta"]
    snippet = page.snippets[page.items[0].id]
    assert "&lt;script&gt;" in snippet
    assert "<script>" not in snippet
    assert "<mark>teapot</mark>" in snippet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("espresso kappa", {"kappa"}),  # every word must match
        ("alpha kappa", set()),
        ("espres", {"kappa", "iota"}),  # the last word is a prefix
        ("ESPRESSO", {"kappa", "iota"}),
        ("cafe", {"gamma"}),  # diacritics folded
        ("matcha", {"gamma"}),
        ("teapot", {"theta"}),
        ("zzzz", set()),
        ("espresso OR coffee", set()),  # FTS syntax is text, not operators
        ('"unbalanced', set()),
    ],
)
def test_search_words(index: Index, text: str, expected: set[str]) -> None:
    assert slug_set(index, {"search": text}) == expected


def test_search_respects_visibility_and_type(index: Index) -> None:
    assert slug_set(index, {"search": "not yet"}) == set()  # delta is a draft
    assert slug_set(index, {"search": "not yet", "status": "draft"}) == {"delta"}
    assert slug_set(index, {"search": "espresso", "type": "products"}) == set()
    assert slug_set(index, {"q": "espresso"}) == {"kappa", "iota"}


@pytest.mark.parametrize("text", ["", "   ", "!!!", "?*()"])
def test_search_without_words_is_no_search(index: Index, text: str) -> None:
    assert slug_set(index, {"type": "posts", "search": text}) == LIVE_POSTS


def test_search_with_explicit_sort(index: Index) -> None:
    assert slugs(query(index, {"search": "espresso", "sort": "title"})) == ["kappa", "iota"]
    assert slugs(query(index, {"search": "espresso", "sort": "-title"})) == ["iota", "kappa"]


# -- sorting ---------------------------------------------------------------------------------

BY_TITLE = ["alpha", "beta", "kappa", "gamma", "iota", "theta"]
BY_DATE = ["alpha", "beta", "gamma", "iota", "kappa"]  # theta has no date


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sort": "title"}, BY_TITLE),
        ({"sort": "-title"}, BY_TITLE[::-1]),
        ({"sort": "title:desc"}, BY_TITLE[::-1]),
        ({"sort": "title:asc"}, BY_TITLE),
        ({"order_by": "title", "order": "asc"}, BY_TITLE),
        ({"order_by": "title", "order": "desc"}, BY_TITLE[::-1]),
        ({"order_by": "title"}, BY_TITLE[::-1]),  # WordPress: DESC unless told
        ({}, BY_DATE[::-1] + ["theta"]),
        ({"sort": "published_at"}, BY_DATE + ["theta"]),  # missing last ascending ...
        ({"sort": "-publishedAt"}, BY_DATE[::-1] + ["theta"]),  # ... and descending
        ({"sort": "date"}, BY_DATE + ["theta"]),
        ({"order": "asc"}, BY_DATE + ["theta"]),
        ({"sort": "author,-published_at"}, ["gamma", "alpha", "iota", "beta", "kappa", "theta"]),
        ({"sort": "-author,published_at"}, ["beta", "iota", "alpha", "gamma", "kappa", "theta"]),
        ({"sort": "-author,title", "category": "brewing"}, ["beta", "alpha", "gamma"]),
        ({"sort": ["author", "-published_at"]}, ["gamma", "alpha", "iota", "beta", "kappa", "theta"]),
        (
            {"order_by": "author", "order": "asc", "sort": "-published_at"},
            ["gamma", "alpha", "iota", "beta"] + ["kappa", "theta"],
        ),
        ({"sort": "-updated_at"}, ["iota", "kappa", "gamma", "beta", "alpha", "theta"]),
        ({"sort": "slug"}, ["alpha", "beta", "gamma", "iota", "kappa", "theta"]),
    ],
)
def test_sort(index: Index, params: dict[str, Any], expected: list[str]) -> None:
    assert slugs(query(index, {"type": "posts", **params})) == expected


@pytest.mark.parametrize("key", ["data.metrics.views", "metrics.views"])
def test_sort_by_data_field_missing_last(index: Index, key: str) -> None:
    up = slugs(query(index, {"type": "posts", "sort": f"data.{key.removeprefix('data.')}"}))
    down = slugs(query(index, {"type": "posts", "sort": f"-data.{key.removeprefix('data.')}"}))
    assert up[:3] == ["gamma", "beta", "alpha"]
    assert down[:3] == ["alpha", "beta", "gamma"]
    assert set(up[3:]) == set(down[3:]) == {"theta", "iota", "kappa"}


@pytest.mark.parametrize("desc", [False, True])
def test_sort_by_plain_frontmatter_key_missing_last(index: Index, desc: bool) -> None:
    order = slugs(query(index, {"type": "posts", "sort": ("-" if desc else "") + "rating,title"}))
    assert order[-2:] == ["kappa", "theta"]  # null and missing, by title
    numbers = ["iota", "gamma", "alpha"]
    present = [s for s in order if s in numbers]
    assert present == (numbers[::-1] if desc else numbers)


@pytest.mark.parametrize("sort", ["price", "-price", "in_stock", "-in_stock", "dims", "tags", "-tags"])
def test_sort_mixed_types_never_raises(index: Index, sort: str) -> None:
    assert set(slugs(query(index, {"type": "products", "sort": sort}))) == {"mug", "kettle", "widget"}


def test_sort_numbers_numerically(index: Index) -> None:
    assert slugs(query(index, {"type": "products", "sort": "price"}))[:2] == ["mug", "kettle"]  # 12.5 < 80


# -- pagination, fields, exclude, random -----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "count", "total_pages", "has_next", "has_prev"),
    [
        ({"per_page": "4"}, 4, 2, True, False),
        ({"per_page": "4", "page": "2"}, 2, 2, False, True),
        ({"per_page": "4", "page": "3"}, 0, 2, False, True),
        ({"per_page": "4", "page": "999"}, 0, 2, False, True),
        ({"limit": "2"}, 2, 3, True, False),
        ({"limit": "2", "page": "3"}, 2, 3, False, True),
        ({"per_page": "6"}, 6, 1, False, False),
        ({"per_page": "100"}, 6, 1, False, False),
        ({"per_page": "1", "page": "6"}, 1, 6, False, True),
    ],
)
def test_pagination(
    index: Index, params: dict[str, Any], count: int, total_pages: int, has_next: bool, has_prev: bool
) -> None:
    page = query(index, {"type": "posts", **params})
    assert len(page.items) == count
    assert page.total == 6
    assert page.total_pages == total_pages
    assert (page.has_next, page.has_prev) == (has_next, has_prev)
    assert page.pagination()["total"] == 6


def test_pages_partition_the_list(index: Index) -> None:
    seen = []
    for number in (1, 2, 3):
        seen += slugs(query(index, {"type": "posts", "per_page": "2", "page": str(number)}))
    assert seen == slugs(query(index, {"type": "posts"}))


def test_empty_result_has_one_page(index: Index) -> None:
    page = query(index, {"type": "posts", "filters": {"slug": "none"}})
    assert (page.items, page.total, page.total_pages, page.has_next, page.has_prev) == ([], 0, 1, False, False)


def test_per_page_defaults() -> None:
    assert parse_query({}).per_page == 20
    assert parse_query({}, per_page=10).per_page == 10
    assert parse_query({"limit": "7"}).per_page == 7
    assert parse_query({"per_page": "5", "limit": "7"}).per_page == 5
    assert parse_query({"per_page": "150"}, max_per_page=200).per_page == 150


@pytest.mark.parametrize(
    ("params", "include", "exclude"),
    [
        ({"fields": "title,slug,publishedAt"}, ("title", "slug", "published_at"), ()),
        ({"fields": "-data.body,-content"}, (), ("data.body", "content")),
        ({"fields": ["title", "-content"]}, ("title",), ("content",)),
        ({"fields": "html,url,price"}, ("html", "url", "price"), ()),
        ({}, (), ()),
    ],
)
def test_fields_parse(params: dict[str, Any], include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    q = parse_query(params)
    assert (q.include, q.exclude_fields) == (include, exclude)


def test_exclude_by_id_and_hash(index: Index) -> None:
    alpha = index.get("alpha", "posts")
    beta = index.get("beta", "posts")
    assert slug_set(index, {"type": "posts", "exclude": f"{alpha.id},{beta.hash}"}) == LIVE_POSTS - {"alpha", "beta"}
    assert slug_set(index, {"type": "posts", "exclude": [alpha.hash]}) == LIVE_POSTS - {"alpha"}


def test_random_with_seed_is_deterministic(index: Index) -> None:
    first = slugs(query(index, {"random": "true", "seed": "42", "per_page": "100"}))
    second = slugs(query(index, {"random": "true", "seed": "42", "per_page": "100"}))
    plain = slugs(query(index, {"per_page": "100"}))
    assert first == second
    assert sorted(first) == sorted(plain)
    others = {tuple(slugs(query(index, {"random": "1", "seed": str(s), "per_page": "100"}))) for s in range(8)}
    assert len(others) > 1  # the seed matters


def test_random_without_seed_is_a_permutation(index: Index) -> None:
    plain = slugs(query(index, {"per_page": "100"}))
    orders = {tuple(slugs(query(index, {"random": "true", "per_page": "100"}))) for _ in range(10)}
    assert all(sorted(o) == sorted(plain) for o in orders)
    assert len(orders) > 1  # 9! orders: ten identical draws would be a broken shuffle


def test_random_respects_page_size_and_filters(index: Index) -> None:
    page = query(index, {"random": "true", "seed": "3", "per_page": "2", "type": "posts"})
    assert len(page.items) == 2 and page.total == 6
    assert set(slugs(page)) <= LIVE_POSTS


# -- timezones -------------------------------------------------------------------------------


@pytest.fixture
def berlin_index(make_site: Any) -> Index:
    site = make_site(
        {
            "content/posts/launch.md": """
                ---
                title: Launch
                date: 2026-01-01T00:30:00
                launch: 2026-01-01
                event_at: 2026-05-01 10:00:00
                ---
                Body.
            """,
        },
        config='[site]\ntitle = "B"\ntimezone = "Europe/Berlin"\n',
    )
    return Index.load(site, background_search=False)


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({"launch": {"$eq": "2026-01-01"}}, True),  # a YAML date against a date-only string
        ({"launch": {"$gte": "2026-01-01"}}, True),
        ({"launch": {"$lt": "2026-01-01"}}, False),
        ({"launch": {"$gt": "2025-12-31"}}, True),
        ({"event_at": {"$gt": "2026-05-01T09:00:00Z"}}, False),  # 10:00 Berlin is 08:00Z
        ({"event_at": {"$lt": "2026-05-01T08:30:00Z"}}, True),
        ({"event_at": {"$gte": "2026-05-01T10:00:00"}}, True),  # both in the site's zone
        ({"published_at": {"$gte": "2026-01-01"}}, True),  # 00:30 Berlin on New Year's day
        ({"published_at": {"$lt": "2026-01-01T00:00:00Z"}}, True),  # ... which is 23:30Z the day before
    ],
)
def test_dates_use_the_site_timezone(berlin_index: Index, filters: dict[str, Any], matches: bool) -> None:
    page = run(berlin_index, parse_query({"filters": filters}), NOW)
    assert (page.total == 1) is matches


# -- errors ----------------------------------------------------------------------------------


def _nested_not(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"slug": {"$eq": "x"}}
    for _ in range(levels):
        node = {"$not": node}
    return node


ERRORS = [
    ({"bogus": "1"}, "'bogus'"),
    ({"filters": {"title": {"$like": "x"}}}, "$like"),
    ({"filters": {"title": {"$like": "x"}}}, "$containsi"),  # lists what is accepted
    ({"filters": {"rating": {"$null": "maybe"}}}, "filters[rating][$null]"),
    ({"filters": {"rating": {"$notNull": "2"}}}, "$notNull"),
    ({"filters": {"$xor": [{"slug": "a"}]}}, "$xor"),
    ({"filters": _nested_not(9)}, "deeper than 8"),
    ({"filters": {"$or": [{"slug": {"$eq": str(i)}} for i in range(101)]}}, "more than 100"),
    ({"filters": {"$or": []}}, "$or"),
    ({"filters": {"$and": "x"}}, "$and"),
    ({"filters": {"$or": ["x"]}}, "non-empty object"),
    ({"filters": {"slug": {}}}, "filters[slug]"),
    ({"filters": {"slug": {"$eq": ["a", "b"]}}}, "one value"),
    ({"filters": {"slug": {"$eq": {"x": "y"}}}}, "not an object"),
    ({"filters": {"price": {"$between": "1,2,3"}}}, "$between"),
    ({"filters": {"bad name!": {"$eq": "1"}}}, "bad name!"),
    ({"filters": {"data.": {"$eq": "1"}}}, "'data.'"),
    ({"filters": "title"}, "bracket form"),
    ({"filters": ["x"]}, "bracket form"),
    ({"page": "abc"}, "page"),
    ({"page": "0"}, "page"),
    ({"page": ["1", "2"]}, "page may be given once"),
    ({"per_page": "0"}, "per_page"),
    ({"per_page": "101"}, "per_page"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"per_page": "-1"}, "per_page"),
    ({"status": "bogus"}, "'bogus'"),
    ({"status": "published,bogus"}, "'bogus'"),
    ({"tag_mode": "some"}, "tag_mode"),
    ({"order": "sideways"}, "order"),
    ({"sort": "bad-name!"}, "sort"),
    ({"order_by": "x y"}, "order_by"),
    ({"fields": "a b"}, "fields"),
    ({"draft": "maybe"}, "draft"),
    ({"random": "sometimes"}, "random"),
    ({"seed": "abc"}, "seed"),
    ({"search": "x" * 501}, "search"),
    ({"category": ["a", "b"]}, "category"),
]


@pytest.mark.parametrize(("params", "needle"), ERRORS, ids=[n + "-" + str(i) for i, (_, n) in enumerate(ERRORS)])
def test_bad_queries_are_named(params: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_query(params)
    assert needle in info.value.message


def test_unknown_parameter_lists_the_accepted_ones() -> None:
    with pytest.raises(BadRequest) as info:
        parse_query({"pagesize": "5"})
    assert "pagesize" in info.value.message
    for name in ("per_page", "filters", "sort", "tag"):
        assert name in info.value.message
    assert info.value.details["parameter"] == "pagesize"
    assert "per_page" in info.value.details["accepted"]


def test_unknown_operator_details() -> None:
    with pytest.raises(BadRequest) as info:
        parse_query({"filters": {"title": {"$like": "x"}}})
    assert info.value.details["field"] == "title"
    assert info.value.details["operator"] == "$like"


def test_limits_are_inclusive() -> None:
    parse_query({"filters": _nested_not(8)})
    parse_query({"filters": {"$or": [{"slug": {"$eq": str(i)}} for i in range(100)]}})
    parse_query({"per_page": "100"})
    parse_query({"per_page": "1"})


def test_extra_and_taxonomy_params_are_accepted() -> None:
    with pytest.raises(BadRequest):
        parse_query({"series": "basics"})
    assert parse_query({"series": "basics,advanced"}, taxonomies=("series",)).terms == (
        ("series", "basics"),
        ("series", "advanced"),
    )
    parse_query({"api_token": "x"}, extra_params=("api_token",))


def test_query_is_frozen_and_has_defaults() -> None:
    q = Query()
    assert (q.page, q.per_page, q.statuses, q.tag_mode) == (1, 20, None, "any")
    with pytest.raises(AttributeError):
        q.page = 2  # type: ignore[misc]


# -- the demo site ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "count"),
    [
        ([("type", "products"), ("filters[data.price][$gt]", "15")], 4),
        ([("type", "products"), ("filters[data.price][$gt]", "100")], 1),
        ([("type", "products"), ("filters[in_stock][$eq]", "false")], 1),
        ([("type", "products"), ("filters[roast][$in]", "light,dark")], 2),
        ([("type", "posts")], DEMO_LIVE_POSTS),
        ([("type", "posts"), ("draft", "true")], DEMO_POSTS),
        ([("type", "posts"), ("category", "brewing")], 7),  # 5 brewing + 2 espresso (a child)
        ([("type", "posts"), ("category", "espresso")], 2),
        ([("type", "posts"), ("tag", "recipe")], 5),
        ([("type", "posts"), ("tag", "recipe"), ("draft", "true")], 5),
        ([("type", "posts"), ("tag", "grinder"), ("draft", "true")], 4),  # one of them a draft
        ([("type", "posts"), ("tag", "grinder")], 3),
        ([("type", "posts"), ("author", "mara-okafor")], 6),
        ([("type", "posts"), ("filters[data.tags][$contains]", "tasting")], 6),
        ([("type", "pages")], DEMO_PAGES),
        ([("type", "posts"), ("status", "scheduled")], 1),
        ([("type", "posts"), ("status", "draft")], len(DEMO_DRAFTS)),
    ],
)
def test_demo_site_queries(demo_index: Index, pairs: list[tuple[str, str]], count: int) -> None:
    page = run(demo_index, parse_query(parse_brackets(pairs)), DEMO_NOW)
    assert page.total == count


def test_demo_search_puts_the_title_match_first(demo_index: Index) -> None:
    page = run(demo_index, parse_query({"search": "cold brew"}), DEMO_NOW)
    assert page.items[0].slug == "cold-brew-without-the-fuss"
    assert page.total > 1
    assert "<mark>" in page.snippets[page.items[0].id]
