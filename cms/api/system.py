"""Endpoints that need no key: health (index state) and the site's public settings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cms import __version__

from .http import json_response, only_params, query_params, services


async def health(request: Request) -> Response:
    svc = services(request)
    only_params(query_params(request), ())
    return json_response(
        {
            "data": {
                "status": "ok",
                "version": __version__,
                "documents": len(svc.index),
                "problems": len(svc.index.problems),
                "search_ready": svc.index.search.wait_ready(0),
                "generation": svc.index.generation,
            }
        }
    )


async def settings(request: Request) -> Response:
    svc = services(request)
    only_params(query_params(request), ())
    site = svc.site
    return json_response(
        {
            "data": {
                "title": site.site.title,
                "description": site.site.description,
                "base_url": site.site.base_url,
                "language": site.site.language,
                "timezone": site.site.timezone,
                "per_page": site.defaults.per_page,
                "max_per_page": site.defaults.max_per_page,
                "taxonomies": list(site.taxonomy_names),
                "content_types": sorted(svc.index.types),
            }
        }
    )


def routes() -> list[Route]:
    return [
        Route("/api/v1/health", health, methods=["GET"]),
        Route("/api/v1/settings", settings, methods=["GET"]),
    ]
