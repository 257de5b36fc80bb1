"""Full-text search over title, excerpt and body: SQLite FTS5 in memory, bm25 ranking, snippets.

Filling FTS5 for 10,000 long posts takes about a second, so the index fills it in a background
thread after a cold load; a search issued before it is ready waits for it (bounded).

Ranking is the costly part of a search that matches thousands of documents: FTS5 computes bm25()
row by row (~1.2 us per matching row, for every row even with LIMIT). So FTS5's postings are also
read into numpy arrays, from its own index (its tokenizer, no second one): per term, the rows
holding it and the term's column-weighted count in each. A search whose words each match at least
`common_df` rows is scored from them with bm25()'s exact arithmetic: the same scores and the same
order (ties by rowid, as on the FTS5 path). Anything else keeps the FTS5 path: a rare word (few
hits, where FTS5 is fast) or a word FTS5 may tokenize differently (a phrase, non-ASCII). Every
term is kept, not only the common ones, because the last word is a prefix: "server" also matches
"servers", "serverless", ... and an exact score needs all of them (they add ~3% of the postings).

The arrays are built after the background fill, or on the first search, in a background thread
(searches use FTS5 meanwhile); writes keep them exact (`_Arrays`) and a rebuild follows many.
"""

from __future__ import annotations

import bisect
import html
import itertools
import math
import re
import sqlite3
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cms.errors import BadRequest

_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 16
_READY_TIMEOUT_S = 30.0

COMMON_DF = 250  # rows a word must match to be ranked from the arrays (FTS5: ~2 us a hit, ~0.5 ms here)
_COLUMNS = ("title", "excerpt", "body")
_WEIGHTS = (10, 4, 1)  # bm25 column weights: title over excerpt over body
_BM25 = "bm25(fts, {})".format(", ".join(f"{w:.1f}" for w in _WEIGHTS))
_K1 = 1.2  # FTS5's bm25() constants (fts5_aux.c)
_B = 0.75
_VOCAB_SLICE = 2000  # terms listed per lock hold while building
_BATCH_INSTANCES = 1 << 15  # term instances read per lock hold while building (~6 ms)
_CODE_WEIGHT = np.array(_WEIGHTS, dtype=np.int64)
# One term's instances as `row * 4 + column` numbers in one string: a result row per instance
# would cost a Python tuple each (12 million at 10,000 posts).
_INSTANCES_SQL = (
    "SELECT count(*), group_concat(doc * 4 + CASE col {} END) FROM temp.fts_instances WHERE term = ?".format(
        " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(_COLUMNS))
    )
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: str
    rank: float  # bm25: lower is better


class _Arrays:
    """FTS5's postings as arrays, and the table's changes since they were read.

    Term i of the sorted `vocab` owns `docs[starts[i]:starts[i + 1]]` (rows ascending) and the
    same slice of `freq` (its weighted count per row). They hold rows up to `base_max` as FTS5 had
    them at build time; `alive` masks the rows deleted since, rows put since are in `extra`. The
    row count, each row's token count and their sum (bm25's N, D and avgdl) are kept exact, so
    scores are computed at query time and a write costs one document's terms, not a rebuild."""

    def __init__(self, base_max: int, sizes: dict[int, int]) -> None:
        self.base_max = base_max
        capacity = base_max + 1 + max(64, base_max // 4)
        self.size: Ints = np.zeros(capacity, dtype=np.int64)  # tokens in each row, all columns
        self.alive = np.zeros(capacity, dtype=np.bool_)
        rowids = np.fromiter(sizes.keys(), dtype=np.int64, count=len(sizes))
        self.size[rowids] = np.fromiter(sizes.values(), dtype=np.int64, count=len(sizes))
        self.alive[rowids] = True
        self.tokens = sum(sizes.values())  # over the alive rows
        self.vocab: list[str] = []
        self.starts: Ints = np.zeros(1, dtype=np.int64)
        self.docs: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.freq: npt.NDArray[np.integer] = np.zeros(0, dtype=np.int32)
        self.extra: dict[str, list[tuple[int, int]]] = {}  # term -> (row, weighted count) put since
        self.extra_terms: list[str] = []  # the same terms, sorted
        self.removed = 0
        self.puts = 0  # rows put since (each costs its terms in `extra`; removals only a mask bit)

    def note_put(self, rowid: int, counts: dict[str, int], size: int) -> None:
        if rowid >= len(self.alive):
            grown = rowid + 1 + max(64, rowid // 4)
            self.size = np.concatenate([self.size, np.zeros(grown - len(self.size), dtype=np.int64)])
            self.alive = np.concatenate([self.alive, np.zeros(grown - len(self.alive), dtype=np.bool_)])
        self.alive[rowid] = True
        self.size[rowid] = size
        self.tokens += size
        self.puts += 1
        for term, weighted in counts.items():
            rows = self.extra.get(term)
            if rows is None:
                rows = self.extra[term] = []
                bisect.insort(self.extra_terms, term)
            rows.append((rowid, weighted))

    def note_remove(self, rowid: int) -> None:
        if rowid < len(self.alive) and self.alive[rowid]:
            self.alive[rowid] = False
            self.tokens -= int(self.size[rowid])
            self.removed += 1

    def install(
        self, vocab: list[str], counts: list[Ints], docs: npt.NDArray[np.int32], freq: npt.NDArray[np.integer]
    ) -> None:
        """Take the postings read from FTS5: pairs per term (per batch of terms), rows, counts."""
        self.vocab = vocab
        self.starts = np.concatenate([np.zeros(1, dtype=np.int64), *counts]).cumsum()
        self.docs = docs
        self.freq = freq

    def postings(self, word: str, prefix: bool) -> tuple[Ints, Ints]:
        """Rows (ascending, alive) matching a term or a prefix, and the weighted count in each."""
        upper = word[:-1] + chr(ord(word[-1]) + 1)  # terms starting with `word` sort in [word, upper)
        lo = bisect.bisect_left(self.vocab, word)
        hi = bisect.bisect_left(self.vocab, upper) if prefix else lo + int(self.vocab[lo : lo + 1] == [word])
        docs: Ints = self.docs[self.starts[lo] : self.starts[hi]].astype(np.int64)
        freq: Ints = self.freq[self.starts[lo] : self.starts[hi]].astype(np.int64)
        at = bisect.bisect_left(self.extra_terms, word)
        until = bisect.bisect_left(self.extra_terms, upper) if prefix else at + int(word in self.extra)
        if until > at:  # rows put since the build
            more = np.array([pair for t in self.extra_terms[at:until] for pair in self.extra[t]], dtype=np.int64)
            docs, freq = np.concatenate([docs, more[:, 0]]), np.concatenate([freq, more[:, 1]])
        if self.removed or until > at:
            keep = self.alive[docs]
            docs, freq = docs[keep], freq[keep]
        if prefix and hi - lo + until - at > 1:  # several terms: sum per row (the phrase counts them all)
            summed = np.bincount(docs, weights=freq.astype(np.float64))
            docs = np.flatnonzero(summed)
            freq = summed[docs].astype(np.int64)
        return docs, freq

    @property
    def nbytes(self) -> int:
        extra = sum(len(v) for v in self.extra.values()) * 72  # a list slot and a tuple of two ints
        return self.size.nbytes + self.alive.nbytes + self.starts.nbytes + self.docs.nbytes + self.freq.nbytes + extra


class FullText:
    """An in-memory FTS5 table keyed by document id, its postings also in numpy arrays."""

    def __init__(self, common_df: int = COMMON_DF) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        tokenize = "tokenize = 'unicode61 remove_diacritics 2'"
        self._db.execute(f"CREATE VIRTUAL TABLE fts USING fts5(title, excerpt, body, {tokenize})")
        # FTS5's own views of its index, and a one-row scratch table to tokenize a document the same way.
        self._db.execute("CREATE VIRTUAL TABLE temp.fts_terms USING fts5vocab(main, fts, row)")
        self._db.execute("CREATE VIRTUAL TABLE temp.fts_instances USING fts5vocab(main, fts, instance)")
        self._db.execute(f"CREATE VIRTUAL TABLE temp.scratch USING fts5(title, excerpt, body, content='', {tokenize})")
        self._db.execute("CREATE VIRTUAL TABLE temp.scratch_instances USING fts5vocab(temp, scratch, instance)")
        self._rowids: dict[str, int] = {}
        self._id_of: npt.NDArray[np.object_] = np.full(64, None, dtype=object)  # rowid -> id (None: removed)
        self._next = 1
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ready.set()
        self._version = 0  # bumped by every change: invalidates the ranked-results cache
        self._ranked: dict[str, tuple[int, list[str]]] = {}
        self.common_df = common_df
        self.use_arrays = True  # False: always the FTS5 path, and no arrays are built
        self._arrays: _Arrays | None = None
        self._building: _Arrays | None = None

    # -- filling ---------------------------------------------------------------------------
    def fill_in_background(self, rows: Iterable[tuple[str, str, str, str]]) -> threading.Thread:
        """Insert (id, title, excerpt, body) rows in a daemon thread; searches wait for it.

        The same thread then builds the arrays (searches use FTS5 until they are ready)."""
        self._ready.clear()
        materialized = list(rows)

        def run() -> None:
            try:
                self.put_many(materialized)
            finally:
                self._ready.set()
            if len(self._rowids) >= self.common_df:
                self.build_arrays()

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
            self._note_puts(batch)

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
        if rowid >= len(self._id_of):
            self._id_of = np.concatenate([self._id_of, np.full(len(self._id_of), None, dtype=object)])
        self._id_of[rowid] = doc_id
        return rowid

    def _forget(self, doc_id: str) -> None:
        self._version += 1
        rowid = self._rowids.pop(doc_id, None)
        if rowid is not None:
            self._id_of[rowid] = None
            self._db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
            for arrays in (self._arrays, self._building):
                if arrays is not None:
                    arrays.note_remove(rowid)

    def _note_puts(self, batch: list[tuple[int, str, str, str]]) -> None:
        """Bring the arrays up to date with rows just inserted (caller holds the lock)."""
        limit = self._max_puts()  # past it, FTS5 answers until a rebuild
        if self._arrays is not None and self._arrays.puts + len(batch) > limit:
            self._arrays = None
        if self._building is not None and self._building.puts + len(batch) > limit:
            self._building = None  # (the build sees it and stops)
        targets = [a for a in (self._arrays, self._building) if a is not None]
        if not targets:
            return
        sizes = self._row_sizes([rowid for rowid, *_ in batch])
        for rowid, title, excerpt, body in batch:
            counts = self._tokenize(title, excerpt, body)
            for arrays in targets:
                arrays.note_put(rowid, counts, sizes[rowid])

    def _max_puts(self) -> int:
        """Rows put since the build that the arrays carry before they are dropped (a background
        rebuild starts at half: ~4 s of CPU at 10,000 posts, so not after every few writes)."""
        return max(256, len(self._rowids) // 40)

    def _tokenize(self, title: str, excerpt: str, body: str) -> dict[str, int]:
        """Term -> column-weighted count in one document, by FTS5's own tokenizer (the scratch table)."""
        db = self._db
        db.execute("INSERT INTO temp.scratch(rowid, title, excerpt, body) VALUES (1, ?, ?, ?)", (title, excerpt, body))
        rows = db.execute("SELECT term, col, count(*) FROM temp.scratch_instances GROUP BY term, col").fetchall()
        db.execute("INSERT INTO temp.scratch(scratch) VALUES ('delete-all')")
        weight = dict(zip(_COLUMNS, _WEIGHTS, strict=True))
        counts: dict[str, int] = {}
        for term, col, n in rows:
            counts[term] = counts.get(term, 0) + weight[col] * n
        return counts

    def _row_sizes(self, rowids: list[int] | None = None) -> dict[int, int]:
        """Tokens per row over all columns (bm25's D), from FTS5's docsize records."""
        if rowids is None:
            rows = self._db.execute("SELECT id, sz FROM fts_docsize").fetchall()
        else:
            marks = ",".join("?" * len(rowids))
            rows = self._db.execute(f"SELECT id, sz FROM fts_docsize WHERE id IN ({marks})", rowids).fetchall()  # noqa: S608
        return {rowid: sum(_varints(sz)) for rowid, sz in rows}

    def wait_ready(self, timeout: float = _READY_TIMEOUT_S) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Whether every document is in the table (False while the background fill runs)."""
        return self._ready.is_set()

    # -- arrays ----------------------------------------------------------------------------
    def build_arrays(self) -> bool:
        """Read FTS5's postings into numpy arrays; whether they were installed.

        About 4 s of CPU at 10,000 long posts (12 million term instances, read through fts5vocab).
        The lock is taken a step at a time (a slice of the vocabulary, a batch of terms: a few ms),
        so searches (on the FTS5 path meanwhile) and writes go on; writes reach these arrays too."""
        steps = self._build_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return bool(done.value)

    def _build_steps(self) -> Generator[None, None, bool]:
        """`build_arrays`, yielding between lock holds (where writes may come)."""
        db = self._db
        with self._lock:
            if not self.use_arrays or self._building is not None:
                return False
            arrays = _Arrays(self._next - 1, self._row_sizes())
            self._building = arrays
        listed: list[tuple[str, int, int]] = []  # (term, rows, instances), in FTS5's (bytewise) order
        while True:
            yield
            with self._lock:
                if self._building is not arrays:
                    return False
                after = listed[-1][0] if listed else ""
                sql = "SELECT term, doc, cnt FROM temp.fts_terms WHERE term > ? ORDER BY term LIMIT ?"
                rows = db.execute(sql, (after, _VOCAB_SLICE)).fetchall()
            if not rows:
                break
            listed.extend(rows)
        # Terms put since are in `extra`, terms gone since read as empty: rows up to base_max are
        # read as they are now, and `alive` masks the ones deleted since the build began.
        # Allocated once (no list of pieces to join: that doubled the peak): rows only leave a
        # term's postings since it was listed, or come after base_max, so the sum is a bound.
        size = sum(rows for _, rows, _ in listed)
        docs = np.empty(size, dtype=np.int32)
        freq: npt.NDArray[np.integer] = np.empty(size, dtype=np.uint16)
        filled = 0
        vocab: list[str] = []
        counts: list[Ints] = []
        at = 0
        while at < len(listed):
            yield
            batch: list[tuple[str, int, str]] = []
            instances = 0
            with self._lock:
                if self._building is not arrays:
                    return False
                while at < len(listed) and (not batch or instances + listed[at][2] <= _BATCH_INSTANCES):
                    n, packed = db.execute(_INSTANCES_SQL, (listed[at][0],)).fetchone()
                    batch.append((listed[at][0], n, packed or ""))
                    instances += listed[at][2]
                    at += 1
            per_term, rows_of, freq_of = _batch_postings(batch, arrays.base_max)
            vocab.extend(term for term, _, _ in batch)
            counts.append(per_term)
            if freq_of.dtype != freq.dtype and freq_of.dtype.itemsize > freq.dtype.itemsize:
                freq = freq.astype(freq_of.dtype)  # (a count past 65,535: only a freak document)
            docs[filled : filled + len(rows_of)] = rows_of
            freq[filled : filled + len(rows_of)] = freq_of
            filled += len(rows_of)
        # Lookups bisect in Python's string order; FTS5 lists terms bytewise: the same order for UTF-8.
        in_order = all(a < b for a, b in itertools.pairwise(vocab))
        yield
        with self._lock:
            if self._building is not arrays:
                return False
            self._building = None
            if not in_order:
                return False
            arrays.install(vocab, counts, docs[:filled], freq[:filled])
            self._arrays = arrays
        return True

    @property
    def arrays_ready(self) -> bool:
        """Whether searches of common words are ranked from the arrays."""
        return self._arrays is not None and self.use_arrays

    @property
    def arrays_nbytes(self) -> int:
        arrays = self._arrays
        return arrays.nbytes if arrays is not None else 0

    def _want_arrays(self) -> bool:
        """Whether to start a background build: none yet (or many changes since), and enough rows."""
        if not self.use_arrays or self._building is not None or len(self._rowids) < self.common_df:
            return False
        return self._arrays is None or self._arrays.puts * 2 > self._max_puts()

    # -- querying --------------------------------------------------------------------------
    def search(self, text: str) -> list[Hit]:
        """Every matching document, best first. All words must match (prefix match on the last)."""
        return [Hit(doc_id, float(i)) for i, doc_id in enumerate(self.ranked(text))]

    def ranked(self, text: str) -> list[str]:
        """Ids of every matching document, best first (bm25, title weighted over excerpt over body).

        Cached per query until the table changes: lists page through the same search."""
        query = to_fts_query(text)
        if not query:
            return []
        self.wait_ready()
        with self._lock:
            cached = self._ranked.get(query)
            if cached is not None and cached[0] == self._version:
                return cached[1]
            rowids = self._rank(text, "auto")
            assert rowids is not None  # (the FTS5 path always answers)
            result: list[str] = [doc_id for doc_id in self._id_of[rowids].tolist() if doc_id is not None]
            if len(self._ranked) > 256:
                self._ranked.clear()
            self._ranked[query] = (self._version, result)
            build = self._want_arrays()
        if build:
            threading.Thread(target=self.build_arrays, name="cms-fts-arrays", daemon=True).start()
        return result

    def scores(self, text: str, method: Literal["auto", "arrays", "fts5"] = "auto") -> list[tuple[str, float]] | None:
        """(id, bm25 score) of every matching document, best first, by the given path (uncached).

        None when `method` is "arrays" and they cannot answer this search (not built, rare word...)."""
        if not to_fts_query(text):
            return []
        self.wait_ready()
        with self._lock:
            scores: list[float] = []
            rowids = self._rank(text, method, scores)
            if rowids is None:
                return None
            listed = rowids.tolist() if isinstance(rowids, np.ndarray) else rowids
            return [(self._id_of[r], s) for r, s in zip(listed, scores, strict=True)]

    def _rank(self, text: str, method: str, scores: list[float] | None = None) -> Ints | list[int] | None:
        """Matching rows best first, their scores appended to `scores` if given (caller holds the lock).

        None when `method` is "arrays" and the arrays cannot answer."""
        if method != "fts5" and self.use_arrays and self._arrays is not None:
            ranked = self._rank_with_arrays(self._arrays, _TOKEN.findall(text)[:_MAX_TERMS])
            if ranked is not None:
                if scores is not None:
                    scores.extend(ranked[1].tolist())
                return ranked[0]
        if method == "arrays":
            return None
        query = to_fts_query(text)
        if scores is None:
            sql = f"SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY {_BM25}, rowid"  # noqa: S608
            return [r for (r,) in self._db.execute(sql, (query,))]
        sql = f"SELECT rowid, {_BM25} FROM fts WHERE fts MATCH ? ORDER BY {_BM25}, rowid"  # noqa: S608
        rows = self._db.execute(sql, (query,)).fetchall()
        scores.extend(s for _, s in rows)
        return [r for r, _ in rows]

    def _rank_with_arrays(self, arrays: _Arrays, words: list[str]) -> tuple[Ints, Floats] | None:
        """bm25 from the arrays exactly as FTS5's bm25() computes it (fts5_aux.c), or None when they
        should not answer: a word FTS5 may tokenize otherwise, or one matching few rows. Words are
        ANDed, each one phrase of one term; the last is a prefix."""
        if not words or not all(w.isascii() and w.isalnum() for w in words):
            return None  # (unicode61 makes an ASCII letters-and-digits word one token: its lowercase)
        phrases = []
        for i, word in enumerate(words):
            docs, freq = arrays.postings(word.lower(), prefix=i == len(words) - 1)
            if len(docs) < self.common_df:
                return None
            phrases.append((docs, freq))
        if len(phrases) == 1:
            matched = phrases[0][0]
        else:
            seen = np.zeros(len(arrays.alive), dtype=np.int32)
            for docs, _ in phrases:
                seen[docs] += 1
            matched = np.flatnonzero(seen == len(phrases))
        n_rows = len(self._rowids)
        avgdl = arrays.tokens / n_rows  # (two exact integers: the same double as FTS5's)
        size = arrays.size[matched].astype(np.float64)
        norm = _K1 * (1 - _B + _B * size / avgdl)
        score: Floats = np.zeros(len(matched), dtype=np.float64)
        for docs, freq in phrases:  # phrase by phrase, as FTS5 adds them up
            hits = len(docs)
            idf = math.log((n_rows - hits + 0.5) / (hits + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            dense = np.zeros(len(arrays.alive), dtype=np.float64)  # (a scatter and a gather: 3x a searchsorted)
            dense[docs] = freq
            f = dense[matched]
            score = score + idf * ((f * (_K1 + 1.0)) / (f + norm))
        rank = -1.0 * score
        order = _argsort_stable(rank)  # ties in rowid order, as on the FTS5 path
        return matched[order], rank[order]

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
            self._id_of[rowid]: html.escape(snip).replace("\x01", "<mark>").replace("\x02", "</mark>")
            for rowid, snip in rows
            if self._id_of[rowid] is not None
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


def _batch_postings(
    batch: list[tuple[str, int, str]], up_to: int
) -> tuple[Ints, npt.NDArray[np.int32], npt.NDArray[np.integer]]:
    """Pairs per term, then (row, weighted count) pairs term after term, rows ascending, from
    (term, instances, instances packed as `row * 4 + column`) keeping rows up to `up_to`."""
    joined = ",".join(packed for _, n, packed in batch if n)
    codes = np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(batch)), [n for _, n, _ in batch])
    rows = codes >> 2
    weights = _CODE_WEIGHT[codes & 3]
    keep = rows <= up_to
    rows, weights, owner = rows[keep], weights[keep], owner[keep]
    same_term = owner[1:] == owner[:-1]
    if bool(np.any(same_term & (rows[1:] < rows[:-1]))):  # (FTS5 lists a term's instances in row order)
        order = np.lexsort((rows, owner))
        rows, weights, owner = rows[order], weights[order], owner[order]
    firsts = np.flatnonzero(np.concatenate([[True], (rows[1:] != rows[:-1]) | (owner[1:] != owner[:-1])]))
    if len(rows) == 0:
        firsts = firsts[:0]
    freq = np.add.reduceat(weights, firsts) if len(firsts) else weights
    narrow = np.uint16 if len(freq) == 0 or int(freq.max()) < 1 << 16 else np.int32
    per_term = np.bincount(owner[firsts], minlength=len(batch)).astype(np.int64)
    return per_term, rows[firsts].astype(np.int32), freq.astype(narrow)


def _argsort_stable(values: Floats) -> Ints:
    """`np.argsort(values, kind="stable")`, faster: a quicksort (a quarter of the time at 7,000
    values), then the runs of equal values put back in index order."""
    order: Ints = np.argsort(values)
    ordered = values[order]
    tied = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(tied):
        at = np.union1d(tied, tied + 1)  # positions inside runs of equal values
        run = np.concatenate([[0], np.cumsum(ordered[at][1:] != ordered[at][:-1])])
        inside = order[at]
        order[at] = inside[np.lexsort((inside, run))]
    return order


def _varints(blob: bytes) -> list[int]:
    """SQLite varints (FTS5's docsize records): 7 bits a byte, high bit set on all but the last."""
    out = []
    value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            out.append(value)
            value = 0
    return out
