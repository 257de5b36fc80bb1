"""Commit latency of a write through the store, on a generated site in a git repository.

    python -m bench.history [--posts 2000 10000] [--writes 100]

For each size: a corpus (bench.corpus) in a fresh repository with one commit of everything, then
`--writes` title edits through `Store.update`, each one commit (libgit2, in-process); the same
edits with `[history] commit = false` (the bare write); and, as the peer a person would use, the
same edit written by hand and committed with the `git` command (`git add` + `git commit`).
Prints p50/p95 per write and the ratios. Targets (issue 15): commit p95 <= 30 ms at 2,000
documents and <= 60 ms at 10,000.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.corpus import generate
from cms.config import Site
from cms.content.index import Index
from cms.content.store import Store


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=600)


def repository(posts: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"bench-history-{posts}-"))
    generate(root, posts, seed=1)
    (root / ".gitignore").write_text(".cms/\npublic/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@localhost")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "corpus")
    return root


def store_writes(root: Path, writes: int, commit: bool) -> list[float]:
    """Milliseconds per `Store.update` of a title (one commit each when `commit`)."""
    config = root / "cms.toml"
    text = config.read_text().split("\n[history]")[0]
    config.write_text(text + f"\n[history]\ncommit = {'true' if commit else 'false'}\n")
    site = Site.load(root)
    store = Store(site, Index.load(site, background_search=False))
    docs = sorted((d for d in store.index.docs.values() if d.type == "posts"), key=lambda d: d.path)[:writes]
    times = []
    for n, doc in enumerate(docs):
        t = time.perf_counter()
        store.update(doc, {"title": f"{doc.title} ({'c' if commit else 'w'}{n})"})
        times.append((time.perf_counter() - t) * 1000)
    return times


def git_cli_writes(root: Path, writes: int) -> list[float]:
    """Milliseconds per hand edit committed with the git command: the peer."""
    files = sorted((root / "content" / "posts").glob("*.md"))[-writes:]
    times = []
    for n, path in enumerate(files):
        t = time.perf_counter()
        path.write_bytes(path.read_bytes() + f"\nedit {n}\n".encode())
        rel = path.relative_to(root).as_posix()
        git(root, "add", rel)
        git(root, "commit", "-q", "-m", f"edit {rel}", "--", rel)
        times.append((time.perf_counter() - t) * 1000)
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[2000, 10_000])
    parser.add_argument("--writes", type=int, default=100)
    args = parser.parse_args()
    for posts in args.posts:
        root = repository(posts)
        try:
            bare = store_writes(root, args.writes, commit=False)
            committed = store_writes(root, args.writes, commit=True)
            peer = git_cli_writes(root, args.writes)
        finally:
            shutil.rmtree(root)
        target = 30 if posts <= 2000 else 60
        print(f"{posts} documents, {args.writes} writes each")
        for name, times in (("write, no commit", bare), ("write + commit", committed), ("git CLI add+commit", peer)):
            print(f"  {name:<20} p50 {p(times, 50):7.2f} ms  p95 {p(times, 95):7.2f} ms")
        added = p(committed, 95) - p(bare, 95)
        print(
            f"  commit p95 {p(committed, 95):.1f} ms (target <= {target} ms: "
            f"{'ok' if p(committed, 95) <= target else 'OVER'}); the commit adds {added:.1f} ms at p95; "
            f"write + commit / git CLI: {p(committed, 50) / p(peer, 50):.2f}x at p50"
        )


if __name__ == "__main__":
    main()
