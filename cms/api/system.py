"""Endpoints that need no key: health (index state) and the site's public settings.

Each operation is declared once (cms/api/operations.py), with the shape of its answer below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from starlette.responses import Response
from starlette.routing import Route

from cms import __version__

from .http import json_response
from .operations import Answer, Call, Shape, operation, routes_of

TAG = "system"


class Health(Shape):
    status: Literal["ok"]
    version: str
    documents: int
    problems: int = Field(description="Content files that could not be loaded cleanly")
    search_ready: bool
    generation: int = Field(description="Changes with every change of the index")


class Settings(Shape):
    """The site's public settings."""

    title: str
    description: str
    base_url: str
    language: str
    timezone: str
    per_page: int
    max_per_page: int
    taxonomies: list[str]
    content_types: list[str]


@operation(
    "GET",
    "/api/v1/health",
    "getHealth",
    "Health of the index",
    tag=TAG,
    scope=None,
    ok=Answer(200, Health, "Health of the index"),
)
async def health(call: Call) -> Response:
    index = call.services.index
    return json_response(
        {
            "data": {
                "status": "ok",
                "version": __version__,
                "documents": len(index),
                "problems": len(index.problems),
                "search_ready": index.search.wait_ready(0),
                "generation": index.generation,
            }
        }
    )


@operation(
    "GET",
    "/api/v1/settings",
    "getSettings",
    "Public site settings",
    tag=TAG,
    scope=None,
    ok=Answer(200, Settings, "Public site settings"),
)
async def settings(call: Call) -> Response:
    site = call.services.site
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
                "content_types": sorted(call.services.index.types),
            }
        }
    )


def routes() -> list[Route]:
    return routes_of(health, settings)
