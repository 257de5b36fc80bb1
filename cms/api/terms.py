"""Taxonomies and authors over HTTP: categories (nested), tags, custom taxonomies, authors/users."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.content.index import Index
from cms.content.query import bool_param
from cms.errors import BadRequest, NotFound

from .http import json_response, only_params, query_params, read_json, require, services
from .serialize import author_dict, term_dict

_COUNT_TTL_S = 1.0  # counts depend on time (scheduled posts go live): recompute at most once a second


def live_counts(request: Request, taxonomy: str) -> dict[str, int]:
    """Published documents per term of a taxonomy, cached per index generation for a second."""
    svc = services(request)
    cache = svc.term_counts
    hit = cache.get(taxonomy)
    now_mono = time.monotonic()
    if hit and hit[0] == svc.index.generation and now_mono - hit[1] < _COUNT_TTL_S:
        return hit[2]
    now = svc.clock()
    counts = {slug: sum(1 for d in docs if d.is_live(now)) for slug, docs in svc.index.term_members(taxonomy).items()}
    cache[taxonomy] = (svc.index.generation, now_mono, counts)
    return counts


def _children(index: Index, taxonomy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for term in sorted(index.terms.get(taxonomy, {}).values(), key=lambda t: t.slug):
        if term.parent:
            out.setdefault(term.parent, []).append(term.slug)
    return out


def _taxonomy(request: Request) -> str:
    name: str = request.path_params.get("taxonomy") or request.scope["route_taxonomy"]
    aliases = {"category": "categories", "tag": "tags", "author": "authors", "user": "authors"}
    name = aliases.get(name, name)
    if name not in services(request).site.taxonomy_names:
        raise NotFound(f"no taxonomy {name!r}; known: {', '.join(services(request).site.taxonomy_names)}")
    return name


async def list_terms(request: Request) -> Response:
    svc = services(request)
    require(request, "read")
    taxonomy = _taxonomy(request)
    params = query_params(request)
    only_params(params, ("nested", "order_by", "hide_empty"))
    counts = live_counts(request, taxonomy)
    children = _children(svc.index, taxonomy)
    terms = svc.index.all_terms(taxonomy)
    order = params.get("order_by", "name")
    if order not in ("name", "slug", "count"):  # a typo must not quietly sort by name
        raise BadRequest(f"order_by must be name, slug or count, got {order!r}")
    hide_empty, nested = bool_param(params, "hide_empty"), bool_param(params, "nested")
    items = [
        term_dict(svc.index, t, counts, children=children.get(t.slug, []), base_url=svc.site.site.base_url)
        for t in terms.values()
    ]
    if hide_empty:
        items = [i for i in items if i["post_count"]]
    if order == "count":
        items.sort(key=lambda i: (-i["post_count"], i["slug"]))
    else:
        items.sort(key=lambda i: (str(i[order]).casefold(), i["slug"]))
    if nested:
        by_slug = {i["slug"]: i for i in items}
        for item in items:
            item["children"] = [by_slug[c] for c in children.get(item["slug"], []) if c in by_slug]
        items = [i for i in items if not i["parent"] or i["parent"] not in by_slug]
    return json_response({"data": items, "pagination": {"total": len(items)}})


async def get_term(request: Request) -> Response:
    svc = services(request)
    require(request, "read")
    taxonomy = _taxonomy(request)
    only_params(query_params(request), ())
    slug = request.path_params["slug"]
    term = svc.index.all_terms(taxonomy).get(slug)
    if term is None:
        raise NotFound(f"no {taxonomy} term {slug!r}")
    counts = live_counts(request, taxonomy)
    data = term_dict(
        svc.index, term, counts, children=_children(svc.index, taxonomy).get(slug, []), base_url=svc.site.site.base_url
    )
    return json_response({"data": data})


async def create_term(request: Request) -> Response:
    svc = services(request)
    require(request, "write")
    taxonomy = _taxonomy(request)
    only_params(query_params(request), ())
    body = await read_json(request)
    slug = body.get("slug")
    term = await run_in_threadpool(lambda: svc.store.save_term(taxonomy, slug, body, creating=True))
    counts = live_counts(request, taxonomy)
    return json_response(
        {"data": term_dict(svc.index, term, counts, base_url=svc.site.site.base_url)},
        201,
        headers={"Location": f"/api/v1/taxonomies/{taxonomy}/{term.slug}"},
    )


async def update_term(request: Request) -> Response:
    svc = services(request)
    require(request, "write")
    taxonomy = _taxonomy(request)
    only_params(query_params(request), ())
    body = await read_json(request)
    slug = request.path_params["slug"]
    term = await run_in_threadpool(lambda: svc.store.save_term(taxonomy, slug, body, creating=False))
    counts = live_counts(request, taxonomy)
    return json_response({"data": term_dict(svc.index, term, counts, base_url=svc.site.site.base_url)})


async def delete_term(request: Request) -> Response:
    svc = services(request)
    require(request, "delete")
    taxonomy = _taxonomy(request)
    only_params(query_params(request), ())
    slug = request.path_params["slug"]
    await run_in_threadpool(lambda: svc.store.delete_term(taxonomy, slug))
    return Response(status_code=204)


async def list_authors(request: Request) -> Response:
    svc = services(request)
    key = require(request, "read")
    only_params(query_params(request), ())
    counts = live_counts(request, "authors")
    terms = sorted(svc.index.terms.get("authors", {}).values(), key=lambda t: t.name.casefold())
    data = [author_dict(t, counts, with_email=key.can("admin"), base_url=svc.site.site.base_url) for t in terms]
    return json_response({"data": data, "pagination": {"total": len(data)}})


async def get_author(request: Request) -> Response:
    svc = services(request)
    key = require(request, "read")
    only_params(query_params(request), ())
    term = svc.index.terms.get("authors", {}).get(request.path_params["slug"])
    if term is None:
        raise NotFound(f"no author {request.path_params['slug']!r}")
    counts = live_counts(request, "authors")
    return json_response(
        {"data": author_dict(term, counts, with_email=key.can("admin"), base_url=svc.site.site.base_url)}
    )


def _fixed(taxonomy: str, endpoint: Any) -> Any:
    async def wrapped(request: Request) -> Response:
        request.scope["route_taxonomy"] = taxonomy
        return await endpoint(request)  # type: ignore[no-any-return]

    wrapped.__name__ = f"{endpoint.__name__}_{taxonomy}"
    return wrapped


def routes() -> list[Route]:
    out: list[Route] = []
    for taxonomy in ("categories", "tags"):
        base = f"/api/v1/{taxonomy}"
        out += [
            Route(base, _fixed(taxonomy, list_terms), methods=["GET"]),
            Route(base, _fixed(taxonomy, create_term), methods=["POST"]),
            Route(base + "/{slug}", _fixed(taxonomy, get_term), methods=["GET"]),
            Route(base + "/{slug}", _fixed(taxonomy, update_term), methods=["PATCH", "PUT"]),
            Route(base + "/{slug}", _fixed(taxonomy, delete_term), methods=["DELETE"]),
        ]
    out += [
        Route("/api/v1/taxonomies/{taxonomy}", list_terms, methods=["GET"]),
        Route("/api/v1/taxonomies/{taxonomy}", create_term, methods=["POST"]),
        Route("/api/v1/taxonomies/{taxonomy}/{slug}", get_term, methods=["GET"]),
        Route("/api/v1/taxonomies/{taxonomy}/{slug}", update_term, methods=["PATCH", "PUT"]),
        Route("/api/v1/taxonomies/{taxonomy}/{slug}", delete_term, methods=["DELETE"]),
        Route("/api/v1/authors", list_authors, methods=["GET"]),
        Route("/api/v1/authors/{slug}", get_author, methods=["GET"]),
        Route("/api/v1/users", list_authors, methods=["GET"]),
        Route("/api/v1/users/{slug}", get_author, methods=["GET"]),
    ]
    return out
