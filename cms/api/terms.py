"""Taxonomies and authors over HTTP: categories (nested), tags, custom taxonomies, authors/users.

Each operation is declared once (cms/api/operations.py). The term operations are the same five for
categories, tags and `/taxonomies/{taxonomy}`: `_term_operations` declares them once per family, so
each route has its own declaration and operation id.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms.content.index import Index
from cms.content.limits import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from cms.content.store import TERM_READ_ONLY
from cms.errors import NotFound

from .http import json_response, services
from .operations import Answer, Call, Flag, Handler, Shape, operation, routes_of
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


# -- shapes ----------------------------------------------------------------------------------


class Term(Shape):
    """A taxonomy term with its count of published documents."""

    slug: str
    name: str
    description: str
    taxonomy: str
    parent: str | None
    post_count: int = Field(ge=0)
    url: str
    children: list[str | Term] | None = Field(
        None, description="Child slugs; with nested=true the child terms themselves"
    )


def _closed(schema: dict[str, Any]) -> None:
    """The published schema is closed, as the store is: a key that is not a setting is a 422.

    The keys a GET shows are documented, as ignored; the model itself stays open, so the store
    reports a misspelt key together with the other problems (an unknown parent and it in one 422)."""
    schema["additionalProperties"] = False
    properties = schema.setdefault("properties", {})
    for key in TERM_READ_ONLY:
        properties.setdefault(key, {"description": "Read-only (as a GET shows it): ignored"})


class TermInput(Shape):
    """A term's settings (only the keys sent change); what a GET shows besides is ignored; others: 422."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_closed)

    name: str | None = Field(
        None, description="Display name (required on create)", json_schema_extra={"maxLength": MAX_TITLE_CHARS}
    )
    slug: str | None = Field(
        None,
        description="On create; from the name when absent. A slug: lower-case (unicode) letters and digits with"
        " '-' or '_' inside, at most 200 UTF-8 bytes; 400 otherwise",
        json_schema_extra={"format": "slug"},
    )
    description: str | None = Field(None, json_schema_extra={"maxLength": MAX_DESCRIPTION_CHARS})
    parent: str | None = Field(None, description="Slug of an existing term (no cycles)")


class NewTerm(TermInput):
    """A term to create: its name is required."""

    # Not blank: the store finds no name in one made of spaces.
    name: str = Field(description="Display name", json_schema_extra={"maxLength": MAX_TITLE_CHARS, "pattern": r"\S"})


class Author(Shape):
    """An author (a term of the authors taxonomy, with its file's details)."""

    slug: str
    name: str
    role: Any
    website: Any
    avatar: Any
    bio: str
    post_count: int = Field(ge=0)
    url: str
    email: Any = Field(None, description="Only for admin keys")


class TermsQuery(Shape):
    nested: Flag = Field(False, description="Children as objects inside their parents; roots only at the top")
    order_by: Literal["name", "slug", "count"] = Field("name", description="Order (default name)")
    hide_empty: Flag = Field(False, description="Leave out terms without published documents")


# -- terms -----------------------------------------------------------------------------------

_ALIASES = {"category": "categories", "tag": "tags", "author": "authors", "user": "authors"}


def _taxonomy(call: Call, fixed: str | None) -> str:
    name = fixed or _ALIASES.get(call.path("taxonomy"), call.path("taxonomy"))
    known = call.services.site.taxonomy_names
    if name not in known:
        raise NotFound(f"no taxonomy {name!r}; known: {', '.join(known)}")
    return name


def _term_operations(fixed: str | None, singular: str, plural: str) -> list[Handler]:
    """The five term operations of one family: `/api/v1/<fixed>` or `/api/v1/taxonomies/{taxonomy}`."""
    base = f"/api/v1/{fixed}" if fixed else "/api/v1/taxonomies/{taxonomy}"
    one = base + "/{slug}"
    family = {} if fixed else {"taxonomy": "Taxonomy name (category and tag are aliases)"}
    slug = {**family, "slug": "Term slug"}
    noun = singular.lower()
    declare = partial(operation, tag="taxonomies")

    @declare(
        "GET",
        base,
        f"list{plural}",
        f"List {fixed or 'the terms of a taxonomy'}",
        scope="read",
        query=TermsQuery,
        path_params=family,
        ok=Answer(200, Term, "Every term, with live document counts", many=True),
    )
    async def list_terms(call: Call) -> Response:
        svc = call.services
        taxonomy = _taxonomy(call, fixed)
        query: TermsQuery = call.query
        counts = live_counts(call.request, taxonomy)
        children = _children(svc.index, taxonomy)
        base_url = svc.site.site.base_url
        items = [
            term_dict(svc.index, t, counts, children=children.get(t.slug, []), base_url=base_url)
            for t in svc.index.all_terms(taxonomy).values()
        ]
        if query.hide_empty:
            items = [i for i in items if i["post_count"]]
        if query.order_by == "count":
            items.sort(key=lambda i: (-i["post_count"], i["slug"]))
        else:
            items.sort(key=lambda i: (str(i[query.order_by]).casefold(), i["slug"]))
        if query.nested:
            by_slug = {i["slug"]: i for i in items}
            for item in items:
                item["children"] = [by_slug[c] for c in children.get(item["slug"], []) if c in by_slug]
            items = [i for i in items if not i["parent"] or i["parent"] not in by_slug]
        return json_response({"data": items, "pagination": {"total": len(items)}})

    @declare(
        "POST",
        base,
        f"create{singular}",
        f"Create a {noun}",
        scope="write",
        body=NewTerm,
        path_params=family,
        ok=Answer(201, Term, "The new term", headers=("Location",)),
        errors=(409,),
        example={"name": "Filter"},
    )
    async def create_term(call: Call) -> Response:
        svc = call.services
        taxonomy = _taxonomy(call, fixed)
        body: NewTerm = call.body
        values = body.model_dump(exclude_unset=True)
        term = await run_in_threadpool(lambda: svc.store.save_term(taxonomy, body.slug, values, creating=True))
        counts = live_counts(call.request, taxonomy)
        return json_response(
            {"data": term_dict(svc.index, term, counts, base_url=svc.site.site.base_url)},
            201,
            # A slug may be any unicode letters; a header holds ASCII: percent-encoded (RFC 3986).
            headers={"Location": f"/api/v1/taxonomies/{quote(taxonomy)}/{quote(term.slug)}"},
        )

    @declare(
        "GET",
        one,
        f"get{singular}",
        f"Get a {noun}",
        scope="read",
        path_params=slug,
        ok=Answer(200, Term, "The term"),
    )
    async def get_term(call: Call) -> Response:
        svc = call.services
        taxonomy = _taxonomy(call, fixed)
        term = svc.index.all_terms(taxonomy).get(call.path("slug"))
        if term is None:
            raise NotFound(f"no {taxonomy} term {call.path('slug')!r}")
        counts = live_counts(call.request, taxonomy)
        children = _children(svc.index, taxonomy).get(term.slug, [])
        return json_response(
            {"data": term_dict(svc.index, term, counts, children=children, base_url=svc.site.site.base_url)}
        )

    def update(method: str, verb: str) -> Handler:
        @declare(
            method,
            one,
            f"{verb}{singular}",
            f"Update a {noun} (PUT and PATCH both merge)",
            scope="write",
            body=TermInput,
            path_params=slug,
            ok=Answer(200, Term, "The updated term"),
            description="Writes the term's file (created when the term was only named by documents).",
            example={"description": "Paper and metal filters"},
        )
        async def update_term(call: Call) -> Response:
            svc = call.services
            taxonomy = _taxonomy(call, fixed)
            values = call.body.model_dump(exclude_unset=True)
            term = await run_in_threadpool(
                lambda: svc.store.save_term(taxonomy, call.path("slug"), values, creating=False)
            )
            counts = live_counts(call.request, taxonomy)
            return json_response({"data": term_dict(svc.index, term, counts, base_url=svc.site.site.base_url)})

        return update_term

    @declare(
        "DELETE",
        one,
        f"delete{singular}",
        f"Delete a {noun}'s file",
        scope="delete",
        path_params=slug,
        ok=Answer(204, None, "Deleted"),
        errors=(409,),
        description="409 while child terms name it as parent; documents keep naming it.",
    )
    async def delete_term(call: Call) -> Response:
        taxonomy = _taxonomy(call, fixed)
        await run_in_threadpool(lambda: call.services.store.delete_term(taxonomy, call.path("slug")))
        return Response(status_code=204)

    return [list_terms, create_term, get_term, update("PATCH", "update"), update("PUT", "replace"), delete_term]


# -- authors ---------------------------------------------------------------------------------


def _author_operations(base: str, plural: str, same: str) -> list[Handler]:
    """List and get authors under `/api/v1/<base>` (`users` is the seeds' name for authors)."""

    @operation(
        "GET",
        f"/api/v1/{base}",
        f"list{plural}",
        "List authors" + same,
        tag="authors",
        scope="read",
        ok=Answer(200, Author, "Every author", many=True),
    )
    async def list_authors(call: Call) -> Response:
        svc = call.services
        assert call.key is not None  # a scope was declared: the call has a key
        counts = live_counts(call.request, "authors")
        terms = sorted(svc.index.terms.get("authors", {}).values(), key=lambda t: t.name.casefold())
        email = call.key.can("admin")
        data = [author_dict(t, counts, with_email=email, base_url=svc.site.site.base_url) for t in terms]
        return json_response({"data": data, "pagination": {"total": len(data)}})

    @operation(
        "GET",
        f"/api/v1/{base}/{{slug}}",
        f"get{plural[:-1]}",
        "Get an author" + same,
        tag="authors",
        scope="read",
        path_params={"slug": "Author slug"},
        ok=Answer(200, Author, "The author"),
    )
    async def get_author(call: Call) -> Response:
        svc = call.services
        assert call.key is not None
        term = svc.index.terms.get("authors", {}).get(call.path("slug"))
        if term is None:
            raise NotFound(f"no author {call.path('slug')!r}")
        counts = live_counts(call.request, "authors")
        email = call.key.can("admin")
        return json_response({"data": author_dict(term, counts, with_email=email, base_url=svc.site.site.base_url)})

    return [list_authors, get_author]


def routes() -> list[Route]:
    return routes_of(
        *_term_operations("categories", "Category", "Categories"),
        *_term_operations("tags", "Tag", "Tags"),
        *_term_operations(None, "Term", "Terms"),
        *_author_operations("authors", "Authors", ""),
        *_author_operations("users", "Users", " (same as /authors)"),
    )
