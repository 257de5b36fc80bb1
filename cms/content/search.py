"""Full-text search over title, excerpt and body: SQLite FTS5 in memory, bm25 ranking, snippets.

Filling FTS5 for 10,000 long posts takes about a second, so the index fills it in a background
thread after a cold load; a search issued before it is ready waits for it (bounded).
"""

from __future__ import annotations

import html
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from cms.errors import BadRequest

_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 16
_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: str
    rank: float  # bm25: lower is better


class FullText:
    """An in-memory FTS5 table keyed by document id."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE fts USING fts5(title, excerpt, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        self._rowids: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._next = 1
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ready.set()
        self._version = 0  # bumped by every change: invalidates the ranked-results cache
        self._ranked: dict[str, tuple[int, list[str]]] = {}

    # -- filling ---------------------------------------------------------------------------
    def fill_in_background(self, rows: Iterable[tuple[str, str, str, str]]) -> threading.Thread:
        """Insert (id, title, excerpt, body) rows in a daemon thread; searches wait for it."""
        self._ready.clear()
        materialized = list(rows)

        def run() -> None:
            try:
                self.put_many(materialized)
            finally:
                self._ready.set()

        thread = threading.Thread(target=run, name="cms-fts-fill", daemon=True)
        thread.start()
        return thread

    def put_many(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        with self._lock:
            batch = []
            for doc_id, title, excerpt, body in rows:
                self._forget(doc_id)
                rowid = self._assign(doc_id)
                batch.append((rowid, title, excerpt, body))
            self._db.executemany("INSERT INTO fts(rowid, title, excerpt, body) VALUES (?, ?, ?, ?)", batch)

    def put(self, doc_id: str, title: str, excerpt: str, body: str) -> None:
        self.put_many([(doc_id, title, excerpt, body)])

    def remove(self, doc_id: str) -> None:
        with self._lock:
            self._forget(doc_id)

    def _assign(self, doc_id: str) -> int:
        self._version += 1
        rowid = self._next
        self._next += 1
        self._rowids[doc_id] = rowid
        self._ids[rowid] = doc_id
        return rowid

    def _forget(self, doc_id: str) -> None:
        self._version += 1
        rowid = self._rowids.pop(doc_id, None)
        if rowid is not None:
            del self._ids[rowid]
            self._db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))

    def wait_ready(self, timeout: float = _READY_TIMEOUT_S) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Whether every document is in the table (False while the background fill runs)."""
        return self._ready.is_set()

    # -- querying --------------------------------------------------------------------------
    def search(self, text: str) -> list[Hit]:
        """Every matching document, best first. All words must match (prefix match on the last)."""
        return [Hit(doc_id, float(i)) for i, doc_id in enumerate(self.ranked(text))]

    def ranked(self, text: str) -> list[str]:
        """Ids of every matching document, best first (bm25, title weighted over excerpt over body).

        Cached per query until the table changes: bm25 over thousands of hits is the costly part,
        and lists page through the same search."""
        query = to_fts_query(text)
        if not query:
            return []
        self.wait_ready()
        with self._lock:
            cached = self._ranked.get(query)
            if cached is not None and cached[0] == self._version:
                return cached[1]
            rows = self._db.execute(
                "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 10.0, 4.0, 1.0)", (query,)
            ).fetchall()
            ids = self._ids
            result = [ids[rowid] for (rowid,) in rows if rowid in ids]
            if len(self._ranked) > 256:
                self._ranked.clear()
            self._ranked[query] = (self._version, result)
        return result

    def snippets(self, text: str, doc_ids: Iterable[str], tokens: int = 16) -> dict[str, str]:
        """Snippets from SQLite (kept for callers without the documents; `snippet()` is cheaper)."""
        query = to_fts_query(text)
        wanted = [self._rowids[d] for d in doc_ids if d in self._rowids]
        if not query or not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid, snippet(fts, -1, char(1), char(2), '…', ?) FROM fts "  # noqa: S608
                f"WHERE fts MATCH ? AND rowid IN ({marks})",
                (tokens, query, *wanted),
            ).fetchall()
        # Marked with control characters, then escaped: a body's own HTML must not reach a client as markup.
        return {
            self._ids[rowid]: html.escape(snip).replace("\x01", "<mark>").replace("\x02", "</mark>")
            for rowid, snip in rows
            if rowid in self._ids
        }

    def __len__(self) -> int:
        return len(self._rowids)


def snippet(text: str, fields: Iterable[str], width: int = 90) -> str:
    """An HTML-escaped excerpt around the first match of the search words, matches in <mark>.

    Built in Python from the text the index already holds: SQLite's snippet() re-reads and
    re-tokenizes each body, which costs about a millisecond per document."""
    words = _TOKEN.findall(text)[:_MAX_TERMS]
    if not words:
        return ""
    alternatives = [re.escape(w) for w in words[:-1]] + [re.escape(words[-1]) + r"\w*"]
    pattern = re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)
    for field_text in fields:
        found = pattern.search(field_text)
        if found is None:
            continue
        start = max(0, found.start() - width // 3)
        end = min(len(field_text), start + width)
        if start > 0:  # begin at a word boundary
            space = field_text.find(" ", start, found.start())
            start = space + 1 if space != -1 else start
        piece = " ".join(field_text[start:end].split())
        marked = pattern.sub(lambda m: "\x01" + m.group(0) + "\x02", piece)
        escaped = html.escape(marked).replace("\x01", "<mark>").replace("\x02", "</mark>")
        return ("…" if start > 0 else "") + escaped + ("…" if end < len(field_text) else "")
    return ""


def to_fts_query(text: str) -> str:
    """A safe FTS5 query from what a person typed: words quoted, ANDed, the last one as a prefix."""
    if not isinstance(text, str):
        raise BadRequest("search must be a string")
    words = _TOKEN.findall(text)[:_MAX_TERMS]
    if not words:
        return ""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)
