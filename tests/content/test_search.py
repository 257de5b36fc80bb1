"""Full-text search: bm25 from the numpy arrays equals FTS5's own bm25() (scores, order, ties), through
writes, before the arrays exist, and in query results (totals, visibility)."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.corpus import NOUNS, VERBS, generate
from cms.config import Site
from cms.content.index import Index
from cms.content.model import Status
from cms.content.query import Page, parse_brackets, parse_query, run
from cms.content.search import FullText

NOW = datetime(2030, 1, 1, tzinfo=UTC)  # after the generated posts' dates, before the scheduled ones
WORDS = sorted(set(NOUNS + VERBS))
LOW_DF = 20  # "common" from 20 documents on: a few hundred posts then use the arrays


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "site"
    generate(root, 300, seed=7)
    return root


def _index(root: Path) -> Index:
    index = Index.load(Site.load(root), fill_search=True, background_search=False)
    index.search.common_df = LOW_DF
    assert index.search.build_arrays()
    return index


@pytest.fixture
def index(corpus_root: Path) -> Index:
    return _index(corpus_root)


def _queries(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    pairs = [" ".join(rng.sample(WORDS, 2)) for _ in range(n)]
    singles = [rng.choice(WORDS) for _ in range(n // 4)]
    triples = [" ".join(rng.sample(WORDS, 3)) for _ in range(n // 4)]
    prefixes = [w[: rng.randint(1, max(1, len(w) - 1))] for w in rng.sample(WORDS, n // 4)]
    # Case, repeated words, function words, digits, prefixes of one or two letters.
    odd = ["The Server", "cache cache", "the a", "server the", "s", "se", "the", "2", "x", "Cache  TEST!", "and or"]
    return pairs + singles + triples + prefixes + odd


def assert_same_ranking(search: FullText, text: str) -> None:
    """The arrays answer `text` with FTS5's ids in FTS5's order, and FTS5's scores."""
    by_arrays = search.scores(text, "arrays")
    by_fts5 = search.scores(text, "fts5")
    assert by_arrays is not None, f"the arrays did not answer {text!r}"
    assert by_fts5 is not None
    assert [i for i, _ in by_arrays] == [i for i, _ in by_fts5], text
    for (_, mine), (_, theirs) in zip(by_arrays, by_fts5, strict=True):
        assert math.isclose(mine, theirs, rel_tol=1e-12, abs_tol=0.0), (text, mine, theirs)


def test_arrays_rank_exactly_as_fts5(index: Index) -> None:
    search = index.search
    answered = 0
    texts = _queries(1, 120)
    for text in texts:
        if search.scores(text, "arrays") is None:  # a rare word (or prefix): FTS5's path
            assert search.scores(text) == search.scores(text, "fts5")
            continue
        assert_same_ranking(search, text)
        answered += 1
    assert answered > len(texts) * 0.9  # the arrays really answered (nearly all words here are common)
    assert search.ranked("cache server") == [i for i, _ in search.scores("cache server", "fts5") or []]


def test_rare_words_and_other_tokens_take_the_fts5_path(index: Index) -> None:
    search = index.search
    for text in ["zzzunknown", "server zzzunknown", "café", "serve_r", "cache ünïcode"]:
        assert search.scores(text, "arrays") is None, text
        assert search.scores(text) == search.scores(text, "fts5")
    rare = "serverzzz"  # one document: fewer than LOW_DF hits
    search.put("rare", "A rare word", "", "serverzzz cache server")
    assert search.scores(f"cache {rare}", "arrays") is None
    assert [i for i, _ in search.scores(f"cache {rare}") or []] == ["rare"]


def test_ties_are_broken_by_row_as_fts5_does() -> None:
    search = FullText(common_df=5)
    rows = [(f"d{i:03}", "Same title", "same excerpt", "cache server cache " * (1 + i % 3)) for i in range(60)]
    rows += [(f"e{i:03}", "Other", "", "cache servers") for i in range(10)]
    search.put_many(random.Random(3).sample(rows, len(rows)))
    assert search.build_arrays()
    for text in ["cache server", "cache", "same cache", "server", "serv", "cache cache"]:
        assert_same_ranking(search, text)
    scores = search.scores("cache server") or []
    assert len({s for _, s in scores}) < len(scores) / 4  # many ties really were there


def test_writes_keep_the_arrays_exact_and_equal_to_a_fresh_index(index: Index) -> None:
    search = index.search
    docs = sorted(index.docs.values(), key=lambda d: d.id)
    rng = random.Random(11)
    final = {d.id: (d.title, d.excerpt, d.body) for d in docs}
    for d in rng.sample(docs, 25):  # rewritten: other counts, a new term under a common prefix
        body = d.body + f" serverzzz{rng.randint(0, 9)} cache cache " + " ".join(rng.sample(WORDS, 5))
        search.put(d.id, d.title.upper(), d.excerpt, body)
        final[d.id] = (d.title.upper(), d.excerpt, body)
    for d in rng.sample(docs, 15):
        search.remove(d.id)
        final.pop(d.id)
    for i in range(10):  # new documents, new terms
        doc_id = f"new{i}"
        text = (
            f"Brand new {rng.choice(WORDS)}",
            "fresh excerpt",
            f"cachezzz server{i} " + " ".join(rng.sample(WORDS, 30)),
        )
        search.put(doc_id, *text)
        final[doc_id] = text
    assert search.arrays_ready
    fresh = FullText(common_df=LOW_DF)
    fresh.put_many((doc_id, *text) for doc_id, text in sorted(final.items()))
    assert fresh.build_arrays()
    texts = _queries(2, 60) + ["serverzzz", "server", "cachezzz server", "brand new", "fresh cache", "serverzzz5"]
    for text in texts:
        if search.scores(text, "arrays") is None:
            continue
        assert_same_ranking(search, text)
        # Same scores as a table built from the final documents (ties may sit in another row order there).
        mine = dict(search.scores(text) or [])
        theirs = dict(fresh.scores(text, "fts5") or [])
        assert mine.keys() == theirs.keys(), text
        assert all(math.isclose(mine[k], theirs[k], rel_tol=1e-12) for k in mine), text
    assert search.scores("serverzzz", "arrays") is not None


def test_removals_alone_keep_the_arrays_exact(index: Index) -> None:
    search = index.search
    for doc in random.Random(5).sample(sorted(index.docs.values(), key=lambda d: d.id), 40):
        search.remove(doc.id)
    for text in _queries(6, 40):
        if search.scores(text, "arrays") is not None:
            assert_same_ranking(search, text)
    assert_same_ranking(search, "server cache")


def test_writes_during_a_build_reach_the_new_arrays(corpus_root: Path) -> None:
    index = Index.load(Site.load(corpus_root), fill_search=True, background_search=False)
    search = index.search
    search.common_df = LOW_DF
    docs = sorted(index.docs.values(), key=lambda d: d.id)
    steps = search._build_steps()
    writes = iter(range(1000))
    for _ in steps:  # one write between every two steps of the build
        i = next(writes)
        doc = docs[i % len(docs)]
        if i % 3 == 2:
            search.remove(doc.id)
        else:
            search.put(doc.id, doc.title, doc.excerpt, f"{doc.body} cache server build{i}")
    assert search.arrays_ready and next(writes) > 3
    for text in _queries(3, 40):
        if search.scores(text, "arrays") is not None:
            assert_same_ranking(search, text)


def test_searches_before_the_arrays_use_fts5_then_build_them(corpus_root: Path) -> None:
    index = Index.load(Site.load(corpus_root), fill_search=True, background_search=False)
    search = index.search
    search.common_df = LOW_DF
    assert not search.arrays_ready
    assert search.scores("cache server", "arrays") is None
    expected = [i for i, _ in search.scores("cache server", "fts5") or []]
    assert search.ranked("cache server") == expected  # FTS5 answers, and a background build starts
    _wait_for_arrays(search)
    assert_same_ranking(search, "cache server")


def test_the_background_fill_builds_the_arrays(corpus_root: Path) -> None:
    index = Index.load(Site.load(corpus_root), fill_search=False)
    index.search.common_df = LOW_DF
    thread = index.search.fill_in_background((d.id, d.title, d.excerpt, d.body) for d in index.docs.values())
    thread.join(30)
    assert index.search.ready and index.search.arrays_ready
    assert_same_ranking(index.search, "server cache")


def test_a_large_batch_drops_the_arrays_until_rebuilt(index: Index) -> None:
    search = index.search
    rows = [(d.id, d.title, d.excerpt, d.body + " again") for d in index.docs.values()]
    assert len(rows) > 256  # more rows than the arrays carry
    search.put_many(rows)
    assert not search.arrays_ready
    assert search.scores("cache server", "arrays") is None
    assert search.ranked("cache server") == [i for i, _ in search.scores("cache server", "fts5") or []]
    _wait_for_arrays(search)  # (that search started a rebuild in the background)
    assert_same_ranking(search, "cache server")


def _wait_for_arrays(search: FullText) -> None:
    deadline = time.monotonic() + 30
    while not search.arrays_ready and time.monotonic() < deadline:
        time.sleep(0.01)
    assert search.arrays_ready


def _page(index: Index, params: dict[str, str]) -> Page:
    return run(index, parse_query(parse_brackets(list(params.items())), type_name="posts"), NOW)


def test_query_results_are_the_same_on_both_paths(index: Index) -> None:
    """Totals, order and visibility of search results do not depend on the path."""
    queries: list[dict[str, str]] = []
    for text in _queries(4, 30)[:40]:
        queries.append({"search": text})
        queries.append({"search": text, "page": "2", "per_page": "7"})
    queries += [
        {"search": "cache server", "status": "draft"},
        {"search": "cache server", "status": "any"},
        {"search": "cache", "sort": "title"},
        {"search": "server", "category": "engineering"},
        {"search": "the cache", "filters[data.rating][$gte]": "3"},
    ]
    answers = []
    for use_arrays in (True, False):
        index.search.use_arrays = use_arrays
        index.query_cache.clear()
        index.search._ranked.clear()
        answers.append([(p.total, [d.id for d in p.items]) for p in (_page(index, q) for q in queries)])
    assert answers[0] == answers[1]
    assert any(total > 100 for total, _ in answers[0])


@pytest.mark.parametrize("text", ["cache", "server cache", "the", "build tests", "re", "merge the queue"])
def test_search_results_are_the_visible_hits_in_rank_order(index: Index, text: str) -> None:
    hits = [i for i, _ in index.search.scores(text, "fts5") or []]
    visible = [i for i in hits if index.docs[i].type == "posts" and index.docs[i].status_at(NOW) == Status.PUBLISHED]
    pages = [_page(index, {"search": text, "per_page": "50", "page": str(n)}) for n in range(1, 9)]
    assert {p.total for p in pages} == {len(visible)}
    assert [d.id for p in pages for d in p.items] == visible[:400]
    assert len(visible) > 0


def test_search_totals_count_only_visible_documents(index: Index) -> None:
    hits = index.search.ranked("cache")
    visible = [i for i in hits if index.docs[i].type == "posts" and index.docs[i].status_at(NOW) == Status.PUBLISHED]
    page = _page(index, {"search": "cache", "per_page": "100"})
    assert page.total == len(visible) < len(hits)  # drafts and scheduled posts match but are not shown
    assert [d.id for d in page.items] == visible[:100]
    drafts = _page(index, {"search": "cache", "status": "draft", "per_page": "100"})
    assert drafts.total > 0 and all(d.status_at(NOW) == Status.DRAFT for d in drafts.items)
