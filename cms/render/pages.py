"""The pages of the site: which outputs a build plans, what each shows and how each is signed.
From the documents: their pages, the lists (home, types, terms) with their feeds, the term pages,
the sitemap and search index, and the fixed pages. From files: the theme's static files, uploads,
and the redirect pages of old URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cms.config import Site
from cms.content.model import Document
from cms.content.parse import line_of_key
from cms.render.feeds import FEED_ITEMS, feeds, sitemap_and_search
from cms.render.output import digest
from cms.render.plan import ContentPlan, Planned
from cms.render.signature import Signatures, sign
from cms.render.theme import static_files
from cms.render.views import SiteView

T = TypeVar("T")

PUBLISHED_UPLOADS = (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".svg", ".pdf", ".mp4", ".webm", ".mp3")


def _fixed(value: T) -> Callable[[], T]:
    """A context or body known when planning (typed, unlike a lambda with a default argument)."""
    return lambda: value


def _page_url(base: str, number: int) -> str:
    return base if number == 1 else f"{base}page/{number}/"


def plan_content(s: SiteView, signatures: Signatures) -> ContentPlan:
    """The outputs made from documents, grouped by the documents each shows. `signatures` is the
    caller's (see `BuildCache`): a kept plan's groups sign with it again when they are re-planned."""
    site, content = s.site, ContentPlan()
    g = s.globals_sig
    common = s.common()

    def list_page(
        base: str,
        number: int,
        total: int,
        page_items: tuple[Document, ...],
        title: str,
        template: str,
        extra: dict[str, Any],
    ) -> list[Planned]:
        path = _page_url(base, number)

        def ctx() -> dict[str, Any]:
            return {
                **common,
                **extra,
                "title": title,
                "items": [s.view(d) for d in page_items],
                "canonical": s.base_url + path,
                "pagination": {
                    "page": number,
                    "total_pages": total,
                    "prev_url": _page_url(base, number - 1) if number > 1 else None,
                    "next_url": _page_url(base, number + 1) if number < total else None,
                },
            }

        term = extra.get("term")
        sig = signatures.of(
            g,
            template,
            path,
            title,
            number,
            total,
            tuple(term.items()) if term else None,
            tuple(s.sig(d) for d in page_items),
        )
        return [Planned(path, template, sig, ctx)]

    def list_outputs(base: str, items: list[Document], title: str, template: str, extra: dict[str, Any]) -> None:
        total = max(1, -(-len(items) // s.per_page))
        for number in range(1, total + 1):
            page_items = tuple(items[(number - 1) * s.per_page : number * s.per_page])
            content.add(
                list_page, (base, number, total, page_items, title, template, extra), (d.id for d in page_items)
            )

    def doc_page(
        doc: Document, newer: Document | None, older: Document | None, related: tuple[Document, ...]
    ) -> list[Planned]:
        ctype = s.index.types.get(doc.type)
        template = {"posts": "single.html", "pages": "page.html"}.get(doc.type) or (
            ctype.template if ctype and ctype.template else "entry.html"
        )
        author_term = s.terms["authors"].get(doc.author or "")
        sig = signatures.of(
            g,
            template,
            s.sig(doc),
            tuple(s.sig(d) for d in (newer, older, *related) if d),
            tuple((slug, s.term_name(t, slug)) for t in ("tags", "categories") for slug in s.terms_of(doc, t)),
            author_term.etag if author_term else None,
        )

        def ctx() -> dict[str, Any]:
            view = dict(s.view(doc))
            view["html"] = s.body(doc)
            json_ld = {
                "@context": "https://schema.org",
                "@type": "Article" if doc.type == "posts" else "WebPage",
                "headline": doc.title,
                "url": view["permalink"],
                "description": view["seo_description"],
                "datePublished": doc.published_at.isoformat() if doc.published_at else None,
                "dateModified": doc.updated_at.isoformat() if doc.updated_at else None,
                "author": {"@type": "Person", "name": view["author"]["name"]} if view["author"] else None,
            }
            return {
                **common,
                "page": view,
                "title": view["seo_title"],
                "canonical": view["permalink"],
                "newer": s.view(newer) if newer else None,
                "older": s.view(older) if older else None,
                "related": [s.view(r) for r in related],
                "json_ld": json_ld,
            }

        return [Planned(s.url_of(doc), template, sig, ctx, needs_html=(doc.id,))]

    list_outputs("/", s.posts, site.site.title, "index.html", {"is_home": True})

    position = {d.id: i for i, d in enumerate(s.posts)}
    for doc in s.docs:
        ctype = s.index.types.get(doc.type)
        if ctype is not None and not ctype.pages:
            continue
        siblings = s.by_type.get(doc.type, [])
        i = position.get(doc.id, -1)
        newer = siblings[i - 1] if i > 0 else None
        older = siblings[i + 1] if 0 <= i < len(siblings) - 1 else None
        related = tuple(s.related(doc)) if doc.type == "posts" else ()
        shown = (doc.id, *(d.id for d in (newer, older, *related) if d))
        content.add(doc_page, (doc, newer, older, related), shown)
        content.wanted_aliases += [(doc.id, alias) for alias in doc.aliases if alias != s.url_of(doc)]

    for type_name, docs in sorted(s.by_type.items()):
        ctype = s.index.types.get(type_name)
        if type_name in ("posts", "pages") or (ctype is not None and not ctype.pages):
            continue
        label = ctype.label if ctype and ctype.label else type_name.title()
        list_outputs(
            f"/{type_name}/", sorted(docs, key=lambda d: d.title.casefold()), label, "list.html", {"kind": "type"}
        )

    for taxonomy in (*site.taxonomy_names, "authors"):
        members = s.members[taxonomy]
        slugs = sorted((slug for slug, docs in members.items() if docs), key=str.casefold)
        for slug in slugs:
            term = s.term_view(taxonomy, slug)
            list_outputs(
                f"/{taxonomy}/{slug}/", members[slug], term["name"], "list.html", {"kind": taxonomy, "term": term}
            )
            if taxonomy == "categories":
                newest = tuple(members[slug][:FEED_ITEMS])
                title = f"{site.site.title}: {term['name']}"
                content.add(feeds, (s, f"/categories/{slug}/", newest, title, common), (d.id for d in newest))
        views = [s.term_view(taxonomy, slug) for slug in slugs]
        terms_page = Planned(
            f"/{taxonomy}/",
            "terms.html",
            sign(g, "terms", taxonomy, [(v["slug"], v["name"], v["count"]) for v in views]),
            _fixed(
                {
                    **common,
                    "terms": views,
                    "taxonomy": taxonomy,
                    "title": taxonomy.title(),
                    "canonical": f"{s.base_url}/{taxonomy}/",
                }
            ),
        )
        content.add(_fixed([terms_page]), (), ())  # counts and names: the site's structure

    newest = tuple(s.posts[:FEED_ITEMS])
    content.add(feeds, (s, "/", newest, site.site.title, common), (d.id for d in newest))
    content.add(sitemap_and_search, (s, common), None)
    content.add(_fixed(_fixed_pages(s, common)), (), ())
    return content


def _fixed_pages(s: SiteView, common: dict[str, Any]) -> list[Planned]:
    """Pages that show no document: the search page, the 404 page, robots.txt."""
    g = s.globals_sig
    return [
        Planned(
            "/search/",
            "search.html",
            sign(g, "search"),
            lambda: {**common, "title": "Search", "canonical": s.base_url + "/search/"},
        ),
        Planned(
            "/404.html",
            "404.html",
            sign(g, "404"),
            lambda: {**common, "title": "Not found", "canonical": s.base_url + "/404.html"},
        ),
        Planned(
            "/robots.txt",
            None,
            sign(g, "robots"),
            data=lambda: f"User-agent: *\nAllow: /\n\nSitemap: {s.base_url}/sitemap.xml\n".encode(),
        ),
    ]


def plan_files(s: SiteView, content: ContentPlan) -> list[Planned]:
    """The outputs planned anew at every build: the theme's static files, uploads, and the redirects
    of old URLs (which must not shadow any other output)."""
    site, out = s.site, []
    g = s.globals_sig
    common = s.common()
    s.problems = []
    for rel, path in static_files(site).items():
        data = path.read_bytes()
        out.append(Planned("/" + rel, None, sign("static", digest(data)), data=_fixed(data)))
    out += _uploads(site)

    # Aliases last: a page of the site always wins over an old URL that happens to equal its path.
    wanted = [(s.index.docs[i], alias) for i, alias in content.wanted_aliases if i in s.index.docs]
    taken = {_plain_key(p.path) for p in (*content.items, *out)} | {"_redirects"} if wanted else set()
    folders = {f for key in taken for f in _folders(key)}
    redirects: list[tuple[str, str]] = []
    for doc, alias in wanted:
        alias_path = alias if isinstance(alias, str) and alias.endswith((".html", "/")) else f"{alias}/"
        key = _site_key(alias_path)
        problem = _alias_problem(alias, key, taken, folders)
        if problem or key is None:
            s.problems.append(f"{site.paths.content}/{doc.path}:{_line_of(site, doc, 'aliases')}: {problem}")
            continue
        taken.add(key)
        folders.update(_folders(key))
        target = s.url_of(doc)
        redirects.append((alias, target))
        out.append(
            Planned(
                alias_path,
                "alias.html",
                sign(g, "alias", alias, target),
                _fixed({**common, "target": target, "canonical": s.base_url + target}),
            )
        )
    redirects.sort()
    out.append(
        Planned(
            "/_redirects",
            None,
            sign(g, redirects),
            data=lambda: "".join(f"{a} {t} 301\n" for a, t in redirects).encode(),
        )
    )
    return out


def _plain_key(path: str) -> str:
    """The output file of a site path the plan made itself (no checks: see `_site_key`)."""
    clean = path.lstrip("/")
    return clean + "index.html" if not clean or clean.endswith("/") else clean


def _site_key(path: str) -> str | None:
    """The output file of a site path (`/a/` -> `a/index.html`), None if it is no clean path inside the site."""
    clean = path.lstrip("/")
    if not clean or clean.endswith("/"):
        clean += "index.html"
    parts = clean.split("/")
    if any(p in ("", ".", "..") or p != p.strip() or any(c in p for c in "\\?#") for p in parts):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in clean):
        return None
    return clean


def _folders(key: str) -> list[str]:
    """The folders an output file lives in: `a/b/index.html` -> [`a`, `a/b`]."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _alias_problem(alias: object, key: str | None, taken: set[str], folders: set[str]) -> str | None:
    """Why an alias gets no redirect page (None: it is fine). `taken`: output files; `folders`: their folders."""
    if not isinstance(alias, str) or not alias.startswith("/") or alias.startswith("//"):
        return f"alias {alias!r} is not a site path (it must start with one /); skipped"
    if key is None:
        return f"alias {alias!r} is not allowed (.. or empty segments, \\, ?, # or control characters); skipped"
    if key in taken or key in folders or any(f in taken for f in _folders(key)):
        return f"alias {alias!r} is already the path of another output; skipped"
    return None


def _line_of(site: Site, doc: Document, key: str) -> int:
    """The line of `key:` in a document's file (1 when not found): for messages only."""
    try:
        text = (site.content_dir / doc.path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    return line_of_key(text, key)


def _uploads(site: Site) -> list[Planned]:
    """The media library's files (originals and derivatives, never the YAML sidecars) under /uploads/.

    Signed by size and mtime so an unchanged library costs a stat per file, not a read."""
    root = site.uploads_dir
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in PUBLISHED_UPLOADS:
            continue
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        st = path.stat()
        rel = path.relative_to(root).as_posix()
        out.append(
            Planned(
                f"/uploads/{rel}",
                None,
                sign("upload", rel, st.st_size, st.st_mtime_ns),
                data=path.read_bytes,
            )
        )
    return out
