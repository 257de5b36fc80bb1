"""Signatures: a hash of everything an output shows, so a rebuild renders only outputs whose
signature changed. Signatures come from data, never from clocks, so the same input gives
byte-identical output."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

from cms import __version__
from cms.config import Site
from cms.content.model import Document
from cms.render.theme import template_digest

MAX_KNOWN = 200_000  # remembered signatures before `Signatures` starts again (a 10,000-post site signs ~12,000)


def sign(*parts: Any) -> str:
    """The signature of `parts`, by their text."""
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()


class Signatures:
    """`sign` of hashable parts, remembered from one build to the next of the same caller: a
    preview rebuild signs 10,000 pages whose parts did not change, and hashing their text again
    was a third of its planning. (Parts are strings, numbers, None and tuples of those, so equal
    keys have equal text, and a remembered signature is the one `sign` would give.)"""

    def __init__(self) -> None:
        self._known: dict[tuple[Hashable, ...], str] = {}

    def of(self, *parts: Hashable) -> str:
        found = self._known.get(parts)
        if found is None:
            if len(self._known) > MAX_KNOWN:
                self._known.clear()
            found = self._known[parts] = sign(*parts)
        return found


def globals_signature(site: Site, base_url: str, drafts: bool, pages: list[Document]) -> str:
    """What every output depends on: the code, the theme, the config, the menu."""
    return sign(
        __version__,
        template_digest(site),
        base_url,
        drafts,
        site.site,
        site.defaults,
        site.render,
        site.taxonomies,
        [(p.id, p.title, p.slug) for p in pages],
    )
