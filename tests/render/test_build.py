"""A full build of the demo site, checked from the outside: links, feeds, sitemap, HTML structure,
drafts, pagination, archives, products, metadata; and how errors in templates and documents are
reported by `cms build`."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cms.cli import main
from cms.config import Site
from cms.content.index import Index
from cms.content.model import Status, url_path
from cms.render.build import BuildResult
from cms.render.feeds import FEED_ITEMS
from tests.conftest import MakeSite
from tests.render import (
    ATOM,
    BASE_URL,
    DRAFTS,
    NOW,
    SCHEDULED,
    SITEMAP,
    Element,
    Page,
    build_site,
    check_links,
    copy_demo,
    html_files,
    json_ld_blocks,
    parse_html,
)
from tests.support import DEMO_LIVE_POSTS


@dataclass
class Built:
    site: Site
    index: Index
    result: BuildResult
    out: Path

    def read(self, rel: str) -> str:
        return (self.out / rel).read_text(encoding="utf-8")

    def page(self, rel: str) -> Page:
        return parse_html(self.read(rel))

    def posts(self) -> list[str]:
        """Slugs of the published posts, newest first."""
        live = [d for d in self.index.docs.values() if d.type == "posts" and d.status_at(NOW) is Status.PUBLISHED]
        live.sort(key=lambda d: (-d.published_at.timestamp() if d.published_at else 0, d.id))
        return [d.slug for d in live]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The demo site built once for the read-only checks of this module."""
    site = copy_demo(tmp_path_factory.mktemp("demo"))
    out = site.root / "public"
    index, result = build_site(site, out)
    return Built(site, index, result, out)


@pytest.fixture(scope="module")
def built_drafts(built: Built) -> Built:
    out = built.site.root / "public-drafts"
    index, result = build_site(built.site, out, drafts=True)
    return Built(built.site, index, result, out)


def test_the_build_succeeds_and_reports_every_file(built: Built) -> None:
    assert built.result.ok, built.result.errors
    files = {p.relative_to(built.out).as_posix() for p in built.out.rglob("*") if p.is_file()}
    assert set(built.result.written) == files
    assert built.result.unchanged == [] and built.result.removed == []
    for rel in ("index.html", "404.html", "robots.txt", "sitemap.xml", "feed.xml", "atom.xml", "search.json"):
        assert rel in files
    assert "search/index.html" in files and "_redirects" in files


def test_every_internal_link_and_asset_resolves(built: Built) -> None:
    broken, checked = check_links(built.out)
    assert broken == []
    assert checked > 1000  # the checker saw the site's links, not an empty folder


def test_the_link_checker_finds_a_broken_link(built: Built, tmp_path: Path) -> None:
    """Negative control: the checker is not vacuous."""
    copy = tmp_path / "out"
    shutil.copytree(built.out, copy)
    (copy / "posts" / built.posts()[0] / "index.html").unlink()
    (copy / "static" / "style.css").unlink()
    broken, _ = check_links(copy)
    assert any("no such file" in b and "style.css" in b for b in broken)
    assert any(f"/posts/{built.posts()[0]}/" in b for b in broken)


def test_every_html_file_is_a_well_formed_accessible_page(built: Built) -> None:
    pages = html_files(built.out)
    assert len(pages) > 60
    for path in pages:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(built.out)
        assert text.startswith("<!doctype html>"), rel
        page = parse_html(text)
        assert page.title and page.title.strip(), rel
        html = page.find("html")
        assert len(html) == 1 and html[0].attrs.get("lang") == "en", rel
        mains = page.find("main")
        assert len(mains) == 1, rel
        skip = page.has_class("skip-link")
        assert skip and skip[0].tag == "a", rel
        target = skip[0].attrs["href"]
        assert target.startswith("#") and mains[0].attrs.get("id") == target[1:], rel
        assert page.meta("viewport"), rel
        assert len(page.ids) == len([e for e in page.elements if "id" in e.attrs]), f"{rel}: duplicate ids"


def test_feeds_are_rss_and_atom_with_the_newest_posts(built: Built) -> None:
    newest = built.posts()[:FEED_ITEMS]
    rss = ET.parse(built.out / "feed.xml").getroot()
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    channel = rss.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "Cinder & Crema"
    assert channel.findtext("link") == BASE_URL + "/"
    items = channel.findall("item")
    assert [i.findtext("link") for i in items] == [f"{BASE_URL}/posts/{slug}/" for slug in newest]
    for item in items:
        assert item.findtext("title") and item.findtext("guid") == item.findtext("link")
        assert item.findtext("pubDate")

    atom = ET.parse(built.out / "atom.xml").getroot()
    assert atom.tag == ATOM + "feed"
    assert atom.findtext(ATOM + "id") == BASE_URL + "/"
    assert atom.findtext(ATOM + "title") == "Cinder & Crema"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", atom.findtext(ATOM + "updated") or "")
    entries = atom.findall(ATOM + "entry")
    assert [e.findtext(ATOM + "id") for e in entries] == [f"{BASE_URL}/posts/{slug}/" for slug in newest]
    for entry in entries:
        assert entry.findtext(ATOM + "title") and entry.findtext(ATOM + "updated")
        content = entry.find(ATOM + "content")
        assert content is not None and content.get("type") == "html" and "<p>" in (content.text or "")


def test_every_category_with_posts_has_both_feeds(built: Built) -> None:
    members = built.index.term_members("categories")
    with_posts = sorted(
        slug
        for slug, docs in members.items()
        if any(d.type == "posts" and d.status_at(NOW) is Status.PUBLISHED for d in docs)
    )
    assert len(with_posts) >= 5
    for slug in with_posts:
        expected = [
            f"{BASE_URL}/posts/{d}/"
            for d in built.posts()
            if slug in built.index.doc_terms(built.index.get(d, "posts"), "categories")
        ][:FEED_ITEMS]
        rss = ET.parse(built.out / "categories" / slug / "feed.xml").getroot()
        assert [i.findtext("link") for i in rss.iter("item")] == expected, slug
        atom = ET.parse(built.out / "categories" / slug / "atom.xml").getroot()
        assert [e.findtext(ATOM + "id") for e in atom.iter(ATOM + "entry")] == expected, slug
        # the archive page announces its feeds
        page = built.page(f"categories/{slug}/index.html")
        assert page.find("link", rel="alternate", href=f"/categories/{slug}/feed.xml")


def test_sitemap_lists_every_built_document(built: Built) -> None:
    root = ET.parse(built.out / "sitemap.xml").getroot()
    assert root.tag == SITEMAP + "urlset"
    locs = [u.findtext(SITEMAP + "loc") for u in root.findall(SITEMAP + "url")]
    assert all(locs) and len(locs) == len(set(locs))
    live = [
        d for d in built.index.docs.values() if d.status_at(NOW) is Status.PUBLISHED and d.type != "authors"
    ]  # every published post, page and product has a page
    expected = {BASE_URL + "/"} | {BASE_URL + url_path(d.type, d.slug) for d in live}
    assert set(locs) == expected


def test_robots_404_and_search(built: Built) -> None:
    robots = built.read("robots.txt")
    assert "User-agent: *" in robots and f"Sitemap: {BASE_URL}/sitemap.xml" in robots
    not_found = built.page("404.html")
    assert not_found.meta("robots") == "noindex"
    assert not_found.find("form", action="/search/")
    search = built.page("search/index.html")
    assert search.find("script", src="/static/search.js")
    assert search.find("input", id="search-input")
    entries = json.loads(built.read("search.json"))
    by_url = {e["u"]: e for e in entries}
    for slug in built.posts():
        entry = by_url[f"/posts/{slug}/"]
        assert entry["t"] == built.index.get(slug, "posts").title and entry["d"]
    assert "/about/" in by_url and "/products/kenya-kiambu-aa/" in by_url


def test_aliases_become_redirect_pages_and_redirect_rules(built: Built) -> None:
    expected = {
        "/blog/aeropress-travel-kit/": "/posts/aeropress-on-the-road/",
        "/blog/new-bags/": "/posts/compostable-packaging/",
        "/news/packaging-2026/": "/posts/compostable-packaging/",
        "/blog/espresso-dial-in/": "/posts/dialing-in-espresso-at-home/",
        "/blog/hello-world/": "/posts/welcome-to-cinder-and-crema/",
    }
    rules = [line.split() for line in built.read("_redirects").splitlines()]
    assert {old: new for old, new, code in rules} == expected
    assert all(code == "301" for *_, code in rules)
    for old, new in expected.items():
        page = built.page(old.lstrip("/") + "index.html")
        refresh = [e for e in page.find("meta") if e.attrs.get("http-equiv") == "refresh"]
        assert refresh and refresh[0].attrs["content"] == f"0; url={new}"
        assert page.find("link", rel="canonical", href=BASE_URL + new)
        assert page.meta("robots") == "noindex"


def test_drafts_and_scheduled_posts_are_not_published(built: Built) -> None:
    hidden = (*DRAFTS, SCHEDULED)
    assert len(built.posts()) == DEMO_LIVE_POSTS
    everything = "\n".join(p.read_text(encoding="utf-8") for p in built.out.rglob("*") if p.is_file())
    for slug in hidden:
        assert not (built.out / "posts" / slug).exists()
        assert f"/posts/{slug}/" not in everything, slug
        assert built.index.get(slug, "posts").title not in everything, slug


def test_drafts_build_shows_them_marked(built_drafts: Built) -> None:
    assert built_drafts.result.ok
    for slug, label in [(DRAFTS[0], "Draft"), (DRAFTS[1], "Draft"), (SCHEDULED, "Scheduled")]:
        page = built_drafts.page(f"posts/{slug}/index.html")
        title = built_drafts.index.get(slug, "posts").title
        assert page.find("h1")[0].text.split() == [*title.split(), label], slug
        assert page.meta("robots") == "noindex", slug
    home = built_drafts.page("index.html")
    cards = home.has_class("is-draft")
    assert cards, "the home page marks draft cards"
    published = built_drafts.page("posts/pour-over-basics/index.html")
    assert published.meta("robots") is None and "Draft" not in published.find("h1")[0].text


def test_home_is_paginated(built: Built) -> None:
    posts = built.posts()
    first, second = built.page("index.html"), built.page("page/2/index.html")
    assert not (built.out / "page" / "3").exists()

    def card_links(page: Page) -> list[str]:
        return [e.attrs["href"] for e in _card_title_links(page)]

    assert card_links(first) == [f"/posts/{s}/" for s in posts[:10]]
    assert card_links(second) == [f"/posts/{s}/" for s in posts[10:]]
    assert first.find("a", rel="next", href="/page/2/") and not first.find("a", rel="prev")
    assert second.find("a", rel="prev", href="/") and not second.find("a", rel="next")
    assert second.find("link", rel="canonical", href=BASE_URL + "/page/2/")
    assert second.title and "Page 2" in second.title


def _card_title_links(page: Page) -> list[Element]:
    """The <a> inside each card title, in order (html.parser gives no tree, so match by position)."""
    links = []
    in_title = False
    for e in page.elements:
        if "card-title" in e.attrs.get("class", "").split():
            in_title = True
        elif in_title and e.tag == "a":
            links.append(e)
            in_title = False
    return links


def test_term_and_author_archives_list_their_posts(built: Built) -> None:
    posts = built.posts()
    for taxonomy in ("categories", "tags", "authors"):
        members = built.index.term_members(taxonomy)
        listed = built.page(f"{taxonomy}/index.html")
        archives = 0
        for slug in members:
            expected = [
                f"/posts/{p}/"
                for p in posts
                if slug in built.index.doc_terms(built.index.get(p, "posts"), taxonomy)
                or (taxonomy == "authors" and built.index.get(p, "posts").author == slug)
            ]
            folder = built.out / taxonomy / slug
            if not expected:
                assert not folder.exists(), f"{taxonomy}/{slug} has no posts but an archive"
                continue
            archives += 1
            shown = []
            for n in range(1, 10):
                rel = f"{taxonomy}/{slug}/index.html" if n == 1 else f"{taxonomy}/{slug}/page/{n}/index.html"
                if not (built.out / rel).is_file():
                    break
                shown += [e.attrs["href"] for e in _card_title_links(built.page(rel))]
            assert shown == expected, f"{taxonomy}/{slug}"
            assert listed.find("a", href=f"/{taxonomy}/{slug}/"), f"/{taxonomy}/ links {slug}"
        assert archives >= 2, taxonomy


def test_products_use_their_template(built: Built) -> None:
    products = sorted((d for d in built.index.docs.values() if d.type == "products"), key=lambda d: d.slug)
    assert len(products) == 6
    listing = built.page("products/index.html")
    for doc in products:
        page = built.page(f"products/{doc.slug}/index.html")
        assert page.has_class("entry-products"), doc.slug
        assert page.has_class("product-buy") and page.has_class("price-large"), "product.html's own block"
        price = page.has_class("price-large")[0].text
        assert price == f"€{doc.data['price']:.2f}"
        assert page.find("code")[0].text == doc.data["sku"]
        assert listing.find("a", href=f"/products/{doc.slug}/")


def test_every_page_has_canonical_open_graph_and_json_ld(built: Built) -> None:
    documents = [d for d in built.index.docs.values() if d.status_at(NOW) is Status.PUBLISHED and d.type != "authors"]
    assert len(documents) == 22
    for doc in documents:
        url = url_path(doc.type, doc.slug)
        rel = url.lstrip("/") + "index.html"
        text = built.read(rel)
        page = parse_html(text)
        canonical = page.find("link", rel="canonical")
        assert len(canonical) == 1 and canonical[0].attrs["href"] == BASE_URL + url, rel
        assert page.meta("og:url") == BASE_URL + url, rel
        assert page.meta("og:title") == (doc.meta.get("seo_title") or doc.title), rel
        assert page.meta("og:type") == ("article" if doc.type == "posts" else "website"), rel
        assert page.meta("og:site_name") == "Cinder & Crema" and page.meta("og:description"), rel
        assert page.meta("twitter:card") in ("summary", "summary_large_image"), rel
        blocks = json_ld_blocks(text)
        assert len(blocks) == 1, rel
        data = json.loads(blocks[0])
        assert data["@context"] == "https://schema.org"
        assert data["@type"] == ("Article" if doc.type == "posts" else "WebPage"), rel
        assert data["headline"] == doc.title and data["url"] == BASE_URL + url, rel
        assert None not in data.values(), rel
        if doc.type == "posts":
            assert page.meta("article:published_time"), rel
            assert data["author"]["@type"] == "Person" and data["author"]["name"], rel
    for rel in ("index.html", "categories/index.html", "tags/pour-over/index.html"):
        page = built.page(rel)
        assert page.find("link", rel="canonical") and page.meta("og:type") == "website", rel


# -- errors ----------------------------------------------------------------------------------------

BROKEN_SYNTAX = """\
{% extends "base.html" %}
{% block content %}
<h1>{{ page.title }}</h1>

<p>{{ page.title | }}</p>
{% endblock %}
"""
BROKEN_RUNTIME = """\
{% extends "base.html" %}
{% block content %}
<h1>{{ page.title }}</h1>
<p>{{ page.no_such_key.deeper }}</p>
{% endblock %}
"""
BROKEN_FILTER = """\
{% extends "base.html" %}
{% block content %}
<p>{{ page.title|date("%Y") }}</p>
{% endblock %}
"""


def test_a_meta_title_is_the_pages_title_as_in_the_api(make_site: MakeSite, tmp_path: Path) -> None:
    """The built page reads seo_title through the getter the API uses, so `meta_title:` reaches both."""
    site = make_site(
        {
            "content/posts/hello.md": """
                ---
                title: Hello
                date: 2026-01-01
                meta_title: Hello, search engines
                meta_description: What search engines show
                ---
                Text.
                """
        }
    )
    build_site(site, tmp_path / "out")
    page = parse_html((tmp_path / "out" / "posts" / "hello" / "index.html").read_text(encoding="utf-8"))
    assert page.title is not None and page.title.startswith("Hello, search engines"), page.title
    assert page.meta("og:title") == "Hello, search engines"
    assert page.meta("og:description") == "What search engines show"


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


@pytest.mark.parametrize(
    ("template", "line"),
    [(BROKEN_SYNTAX, 5), (BROKEN_RUNTIME, 4), (BROKEN_FILTER, 3)],
    ids=["syntax", "undefined", "filter"],
)
def test_a_broken_template_override_names_its_file_and_line(
    demo_site: Site, runner: CliRunner, template: str, line: int
) -> None:
    override = demo_site.root / "themes" / "default" / "templates" / "single.html"
    override.parent.mkdir(parents=True)
    override.write_text(template, encoding="utf-8")
    result = runner.invoke(main, ["build", "--site", str(demo_site.root), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"{override}:{line}:" in result.stderr
    assert "Traceback" not in result.output
    # only the posts use single.html: every other page was still built
    public = demo_site.output_dir
    assert (public / "index.html").is_file() and (public / "about" / "index.html").is_file()
    assert not (public / "posts" / "pour-over-basics" / "index.html").exists()


def test_a_broken_document_is_reported_and_skipped(demo_site: Site, runner: CliRunner) -> None:
    broken = demo_site.content_dir / "posts" / "broken.md"
    broken.write_text("---\ntitle: Broken\ndate: 2026-01-01\ntags: [a, b\n---\nText.\n", encoding="utf-8")
    result = runner.invoke(main, ["build", "--site", str(demo_site.root), "--quiet"])
    assert result.exit_code == 1, result.output
    assert re.search(r"content/posts/broken\.md:\d+: ", result.stderr), result.stderr
    assert "Traceback" not in result.output
    public = demo_site.output_dir
    assert (public / "posts" / "pour-over-basics" / "index.html").is_file()
    assert not (public / "posts" / "broken").exists()
    assert re.search(r"\d+ written, 0 unchanged, 0 removed", result.stdout)


def test_a_clean_build_exits_zero(demo_site: Site, runner: CliRunner) -> None:
    result = runner.invoke(main, ["build", "--site", str(demo_site.root), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (demo_site.output_dir / "index.html").is_file()
