"""The one write path: validate -> atomic, checked, minimal-diff write -> index refresh -> events.

The API and the CLI call `Store` and nothing else writes into content/, so no caller can forget a
step. Each write happens under the document's cross-process lock and is computed from the file as
it is on disk at that moment, so a person's edit made a second ago is never lost: a PATCH lands on
top of it, and a client that sent `If-Match` for an older version gets 412.

    session.py    what every write shares: site, index, bus, clock, locks; events; rename journal, recovery
    input.py      API/CLI input -> frontmatter: aliases, limits, dates, lists, statuses
    documents.py  create, update (PATCH/PUT), status changes, rename, delete
    types.py      content type schemas (`_type.yaml`)
    terms.py      taxonomy terms
"""

from __future__ import annotations

from cms.content.store.input import READ_ONLY, STATUS_INPUTS
from cms.content.store.terms import TERM_READ_ONLY, TermWrites
from cms.content.store.types import TypeWrites

__all__ = ["READ_ONLY", "STATUS_INPUTS", "TERM_READ_ONLY", "Store"]


class Store(TypeWrites, TermWrites):
    """Writes documents, content types and taxonomy terms of one site.

    (`TypeWrites` builds on `DocumentWrites`, so all three kinds of writes share one session.)"""
