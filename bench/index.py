"""Index and query bench: `python -m bench.index --posts 10000 [--corpus DIR] [--repeat N]`.

Generates (or reuses) a corpus with `bench.corpus`, then measures, one figure per line
(`name: value unit`), and ends with a table of the figures that have a target:

- cold load: `Index.load(site, fill_search=False)` in a fresh subprocess (median of --repeat runs)
  and the peak RSS of that subprocess;
- full-text fill: `index.search.put_many` over every document;
- list queries: filtered + sorted + paginated shapes, each run with varying values;
- full-text queries: `search=<two common words>`, page 1, with snippets (FTS5's bm25 alone, the numpy
  arrays' build, then with them; then one post's text rewritten before each of 20 searches);
- watcher latency: hand edits until the index shows them (skipped without `cms.watch`).

Every loop is bounded and only local files are touched; the watcher edits a copy of the corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import corpus
from cms.config import Site
from cms.content.index import Index
from cms.content.query import parse_brackets, parse_query, run

BENCH_DIR = Path(__file__).resolve().parent
STAMP = ".bench-stamp.json"
QUERY_RUNS = 200
SEARCH_RUNS = 200
WATCH_EDITS = 50
WATCH_TIMEOUT_S = 5.0
WATCH_WARMUP_TIMEOUT_S = 15.0
Pairs = list[tuple[str, str]]


@dataclass
class Figure:
    """One measured number; `target` is an upper bound in the same unit (None: informational)."""

    name: str
    value: float
    unit: str
    target: float | None = None

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.value <= self.target

    def line(self) -> str:
        return f"{self.name}: {_fmt(self.value)} {self.unit}"


def _fmt(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def emit(figure: Figure, figures: list[Figure]) -> None:
    """Print a figure as soon as it is measured and keep it for the summary."""
    figures.append(figure)
    print(figure.line(), flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- corpus ------------------------------------------------------------------------------------


def _stamp(posts: int, seed: int) -> dict[str, object]:
    generator = hashlib.sha256(Path(corpus.__file__).read_bytes()).hexdigest()
    return {"posts": posts, "seed": seed, "generator": generator}


def prepare_corpus(root: Path, posts: int, seed: int) -> Path:
    """Reuse `root` when its stamp matches these arguments and this generator; else (re)generate it."""
    stamp_path = root / STAMP
    wanted = _stamp(posts, seed)
    if stamp_path.is_file():
        if json.loads(stamp_path.read_text(encoding="utf-8")) == wanted:
            print(f"corpus: reusing {root}", flush=True)
            return root
        shutil.rmtree(root)  # ours (it has our stamp) but stale
    elif root.exists() and any(root.iterdir()):
        raise SystemExit(f"error: {root} exists, is not empty and has no {STAMP}; pick another --corpus")
    started = time.perf_counter()
    # Generated beside the target and renamed into place, so an interrupted run leaves no half corpus.
    partial = root.parent / f".{root.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    corpus.generate(partial, posts, seed)
    (partial / STAMP).write_text(json.dumps(wanted), encoding="utf-8")
    if root.exists():
        root.rmdir()  # empty (checked above)
    partial.rename(root)
    print(f"corpus: generated {posts} posts in {root} in {time.perf_counter() - started:.1f} s", flush=True)
    return root


# -- cold load ---------------------------------------------------------------------------------

# Run in a fresh interpreter: OS caches are warm (earlier runs read the files), Python state is cold.
_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from cms.config import Site
from cms.content.index import Index
t1 = time.perf_counter()
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
site = Site.load(sys.argv[1])
t2 = time.perf_counter()
index = Index.load(site, fill_search=False, use_snapshot=sys.argv[2] == "1")
t3 = time.perf_counter()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"import_s": t1 - t0, "load_s": t3 - t2, "docs": len(index), "problems": len(index.problems),
                  "base_mb": base_kb / 1024, "peak_mb": peak_kb / 1024, "workers": index.load_stats.workers}))
"""


def _cold_load_once(root: Path, snapshot: bool = False) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), "1" if snapshot else "0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result: dict[str, float] = json.loads(out.stdout)
    result["process_s"] = time.perf_counter() - started
    return result


def bench_cold_load(root: Path, repeat: int, figures: list[Figure]) -> None:
    """Index.load(fill_search=False) in fresh subprocesses: median time, peak RSS."""
    runs = [_cold_load_once(root) for _ in range(repeat)]
    emit(Figure("cold_load.median", statistics.median(r["load_s"] for r in runs), "s", 1.5), figures)
    emit(Figure("cold_load.runs", len(runs), "runs"), figures)
    emit(Figure("cold_load.import_cms", statistics.median(r["import_s"] for r in runs), "s"), figures)
    emit(Figure("cold_load.process_total", statistics.median(r["process_s"] for r in runs), "s"), figures)
    emit(Figure("cold_load.peak_rss", max(r["peak_mb"] for r in runs), "MB", 250), figures)
    emit(Figure("cold_load.rss_before_load", max(r["base_mb"] for r in runs), "MB"), figures)
    emit(Figure("cold_load.docs", runs[0]["docs"], "docs"), figures)
    emit(Figure("cold_load.problems", runs[0]["problems"], "files"), figures)
    emit(Figure("cold_load.workers", runs[0]["workers"], "processes"), figures)
    # What `cms serve` and the CLI do: unchanged files come from the .cms/ snapshot (written by the
    # first of these runs, which parses everything), so a restart parses only what changed.
    shutil.rmtree(root / ".cms" / "index", ignore_errors=True)
    first = _cold_load_once(root, snapshot=True)
    restarts = [_cold_load_once(root, snapshot=True) for _ in range(repeat)]
    emit(Figure("snapshot_first_load", first["load_s"], "s"), figures)
    emit(Figure("snapshot_restart.median", statistics.median(r["load_s"] for r in restarts), "s", 1.5), figures)
    emit(Figure("snapshot_restart.peak_rss", max(r["peak_mb"] for r in restarts), "MB", 250), figures)


# -- in-process index and full text --------------------------------------------------------------


def load_index(root: Path, figures: list[Figure]) -> Index:
    """The index the query benches use (loaded in this process, full text filled separately)."""
    started = time.perf_counter()
    index = Index.load(Site.load(root), fill_search=False)
    emit(Figure("warm_load", time.perf_counter() - started, "s"), figures)
    return index


def bench_fts_fill(index: Index, figures: list[Figure]) -> None:
    """Time to insert every document into the in-memory FTS5 table."""
    rows = [(d.id, d.title, d.excerpt, d.body) for d in index.docs.values()]
    chars = sum(len(r[1]) + len(r[2]) + len(r[3]) for r in rows)
    started = time.perf_counter()
    index.search.put_many(rows)
    emit(Figure("fts_fill", time.perf_counter() - started, "s"), figures)
    emit(Figure("fts_fill.chars", chars / 1e6, "M chars"), figures)


# -- list queries --------------------------------------------------------------------------------


def _popular_tags(index: Index, n: int) -> list[str]:
    members = index.term_members("tags")
    return sorted(members, key=lambda t: (-len(members[t]), t))[:n]


def query_shapes(index: Index, rng: random.Random, runs: int) -> dict[str, list[Pairs]]:
    """Query-string pairs per shape, `runs` of each, with values varied so no answer is reused."""
    categories = sorted(index.all_terms("categories"))
    tags = _popular_tags(index, 40)
    words = corpus.NOUNS + corpus.ADJECTIVES  # the words titles are made of

    def category() -> Pairs:
        return [("category", rng.choice(categories)), ("sort", "-published_at"), ("page", str(rng.randint(1, 3)))]

    def rating() -> Pairs:
        page = str(rng.randint(1, 5))
        return [("filters[data.rating][$gte]", str(rng.randint(1, 5))), ("sort", "-published_at"), ("page", page)]

    def tags_all() -> Pairs:
        a, b = rng.sample(tags, 2)
        return [("tag", a), ("tag", b), ("tag_mode", "all"), ("sort", "title")]

    def or_contains() -> Pairs:
        return [
            ("filters[$or][0][title][$contains]", rng.choice(words)),
            ("filters[$or][1][tags][$contains]", rng.choice(tags)),
        ]

    def plain() -> Pairs:
        return [("sort", "-published_at"), ("page", str(rng.randint(1, 50)))]

    makers: dict[str, Callable[[], Pairs]] = {
        "category": category,
        "rating_gte": rating,
        "tags_all": tags_all,
        "or_contains": or_contains,
        "plain_sorted": plain,
    }
    return {name: [make() for _ in range(runs)] for name, make in makers.items()}


def _time_query(index: Index, pairs: Pairs) -> tuple[float, int]:
    started = time.perf_counter()
    page = run(index, parse_query(parse_brackets(pairs), type_name="posts"))
    return (time.perf_counter() - started) * 1000, page.total


def bench_queries(index: Index, rng: random.Random, runs: int, figures: list[Figure]) -> None:
    """Median and p95 per query shape, then overall."""
    everything: list[float] = []
    for name, queries in query_shapes(index, rng, runs).items():
        results = [_time_query(index, pairs) for pairs in queries]
        times = [t for t, _ in results]
        everything.extend(times)
        emit(Figure(f"query.{name}.median", statistics.median(times), "ms"), figures)
        emit(Figure(f"query.{name}.p95", percentile(times, 95), "ms"), figures)
        emit(Figure(f"query.{name}.avg_total", statistics.mean(n for _, n in results), "docs"), figures)
    emit(Figure("query.overall.median", statistics.median(everything), "ms", 2.0), figures)
    emit(Figure("query.overall.p95", percentile(everything, 95), "ms"), figures)


# -- full-text queries ---------------------------------------------------------------------------


def bench_search(index: Index, rng: random.Random, runs: int, figures: list[Figure]) -> None:
    """`search=<two common words>`, page 1 with snippets, each query a different pair: first on
    FTS5's bm25 alone (other pairs), then the arrays' build, then the figure, then writes."""
    words = sorted(set(corpus.NOUNS + corpus.VERBS))
    pairs = [f"{a} {b}" for a, b in (rng.sample(words, 2) for _ in range(runs))]
    own = random.Random(f"search-{len(pairs)}")  # the extra figures' draws leave `rng` as it was
    taken = set(pairs)
    others = [p for p in (" ".join(own.sample(words, 2)) for _ in range(3 * runs)) if p not in taken]
    index.search.wait_ready()
    search = index.search
    search.use_arrays = False  # (nor built in the background meanwhile)
    fts5 = [_time_query(index, [("search", text)])[0] for text in others[: runs // 2]]
    search.use_arrays = True
    emit(Figure("search.fts5_path.median", statistics.median(fts5), "ms"), figures)
    cpu, wall = time.process_time(), time.perf_counter()
    search.build_arrays()
    emit(Figure("search.arrays_build_s", time.process_time() - cpu, "s CPU"), figures)
    emit(Figure("search.arrays_build_wall", time.perf_counter() - wall, "s"), figures)
    emit(Figure("search.arrays_mb", search.arrays_nbytes / 1e6, "MB"), figures)
    emit(Figure("search.process_peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MB"), figures)
    results = [_time_query(index, [("search", text)]) for text in pairs]
    times = [t for t, _ in results]
    emit(Figure("search.median", statistics.median(times), "ms", 10.0), figures)
    emit(Figure("search.p95", percentile(times, 95), "ms"), figures)
    emit(Figure("search.avg_total", statistics.mean(n for _, n in results), "docs"), figures)
    updates = []
    for i, doc in enumerate(own.sample(sorted(index.docs.values(), key=lambda d: d.id), 20)):
        started = time.perf_counter()
        search.put(doc.id, doc.title, doc.excerpt, f"{doc.body}\n\nEdited {i}: {own.choice(words)}.")
        _time_query(index, [("search", others[runs // 2 + i])])
        updates.append((time.perf_counter() - started) * 1000)
    emit(Figure("search.update_then_query_ms", statistics.median(updates), "ms"), figures)


# -- watcher -------------------------------------------------------------------------------------


def _retitle(path: Path, new_title: str) -> str:
    """Rewrite the title line of a post in place (a hand edit); returns the post's id."""
    lines = path.read_text(encoding="utf-8").split("\n")
    doc_id = next(line[4:].strip() for line in lines if line.startswith("id: "))
    at = next(i for i, line in enumerate(lines) if line.startswith("title: "))
    lines[at] = f"title: {json.dumps(new_title)}"
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
    return doc_id


def _wait_title(index: Index, doc_id: str, title: str, timeout: float) -> float | None:
    """Seconds until the index shows `title` for `doc_id` (polled every 1 ms), None on timeout."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if index.docs.get(doc_id) is not None and index.docs[doc_id].title == title:
            return time.perf_counter() - started
        time.sleep(0.001)
    return None


def _edit_and_wait(index: Index, path: Path, title: str, timeout: float) -> float | None:
    started = time.perf_counter()
    doc_id = _retitle(path, title)
    if _wait_title(index, doc_id, title, timeout) is None:
        return None
    return time.perf_counter() - started


def bench_watcher(root: Path, rng: random.Random, edits: int, figures: list[Figure]) -> None:
    """Edit posts one at a time in a copy of the corpus; time until the watcher updates the index."""
    try:
        from cms.events.bus import Bus
        from cms.watch import Watcher
    except ImportError:
        print("watcher: skipped (cms.watch not available)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="cms-bench-watch-") as tmp:
        copy = Path(tmp) / "site"
        shutil.copytree(root, copy)
        site = Site.load(copy)
        index = Index.load(site, fill_search=True, background_search=False)
        watcher = Watcher(site, index, Bus())
        watcher.start()
        try:
            posts = sorted(p for p in (copy / "content" / "posts").glob("*.md"))
            edits = min(edits, len(posts) - 1)
            picked = rng.sample(posts, edits + 1)
            # One unmeasured edit first: the watcher may still be setting up its watches.
            if _edit_and_wait(index, picked[0], "Bench warm-up edit", WATCH_WARMUP_TIMEOUT_S) is None:
                print("watcher: failed (the warm-up edit never reached the index)", flush=True)
                return
            latencies: list[float] = []
            misses = 0
            for i, path in enumerate(picked[1:], 1):
                took = _edit_and_wait(index, path, f"Bench edit {i}: {path.stem}", WATCH_TIMEOUT_S)
                if took is None:
                    misses += 1
                else:
                    latencies.append(took * 1000)
        finally:
            watcher.stop()
    if latencies:
        emit(Figure("watcher.median", statistics.median(latencies), "ms", 200.0), figures)
        emit(Figure("watcher.p99", percentile(latencies, 99), "ms"), figures)
    emit(Figure("watcher.timeouts", misses, f"of {edits} edits"), figures)


# -- summary -------------------------------------------------------------------------------------


def print_summary(figures: list[Figure]) -> None:
    """A table of the figures that have a target."""
    rows = [f for f in figures if f.target is not None]
    width = max((len(f.name) for f in rows), default=10)
    print()
    print(f"{'figure':<{width}}  {'value':>12}  {'target':>12}  result")
    print(f"{'-' * width}  {'-' * 12}  {'-' * 12}  ------")
    for f in rows:
        value = f"{_fmt(f.value)} {f.unit}"
        target = f"<= {_fmt(f.target)} {f.unit}"  # type: ignore[arg-type]
        print(f"{f.name:<{width}}  {value:>12}  {target:>12}  {'ok' if f.ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000, help="number of posts in the corpus")
    parser.add_argument("--corpus", type=Path, help="site folder (default: bench/.corpus/posts-N)")
    parser.add_argument("--seed", type=int, default=1, help="corpus and query seed")
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process cold loads (median is printed)")
    args = parser.parse_args(argv)
    root = (args.corpus or BENCH_DIR / ".corpus" / f"posts-{args.posts}").resolve()
    prepare_corpus(root, args.posts, args.seed)
    rng = random.Random(args.seed)
    figures: list[Figure] = []
    print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, posts: {args.posts}", flush=True)
    bench_cold_load(root, max(1, args.repeat), figures)
    index = load_index(root, figures)
    bench_fts_fill(index, figures)
    bench_queries(index, rng, QUERY_RUNS, figures)
    bench_search(index, rng, SEARCH_RUNS, figures)
    del index
    bench_watcher(root, rng, WATCH_EDITS, figures)
    print_summary(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
