"""The two Markdown engines give the same HTML (demo posts, a generated corpus, each feature), and
pathological input (T15) renders in bounded time and memory without crashing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.corpus import generate
from cms.config import Site
from cms.content.index import Index
from cms.content.markdown import ENGINES, render_markdown
from tests.render import REPO

FAST, PYTHON = ENGINES
POLICIES = ("sanitize", "trust")


def both(text: str, policy: str = "sanitize") -> tuple[str, str]:
    return (
        render_markdown(text, raw_html=policy, engine=FAST),
        render_markdown(text, raw_html=policy, engine=PYTHON),
    )


# -- the demo site and a generated corpus --------------------------------------------------------------

DEMO = sorted(
    p.relative_to(REPO / "content").as_posix()
    for p in (REPO / "content").rglob("*.md")
    if p.parts[-2] in ("posts", "pages", "products")
)


@pytest.fixture(scope="module")
def demo_index() -> Index:
    return Index.load(Site.load(REPO), fill_search=False)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "rel",
    [rel for rel in DEMO],
)
def test_demo_documents_render_the_same_with_both_engines(demo_index: Index, rel: str, policy: str) -> None:
    assert len(DEMO) >= 25
    doc = demo_index.by_path_or_none(rel)
    assert doc is not None, rel
    fast, python = both(doc.body, policy)
    assert fast == python


def test_a_generated_corpus_renders_the_same_with_both_engines(tmp_path: Path) -> None:
    generate(tmp_path / "corpus", 50, seed=7)
    bodies = [p.read_text(encoding="utf-8").split("\n---\n", 1)[1] for p in (tmp_path / "corpus").rglob("posts/*.md")]
    assert len(bodies) == 50
    joined = "\n".join(bodies)
    assert "```python" in joined and "| --- |" in joined and "![" in joined and "\n> " in joined
    for body in bodies:
        for policy in POLICIES:
            fast, python = both(body, policy)
            assert fast == python


# -- feature by feature ------------------------------------------------------------------------------

FEATURES = {
    "table": (
        "| a | b | c |\n|:--|:-:|--:|\n| 1 | **2** | `3` |\n| x | y | z |\n",
        ["<table>", 'style="text-align:right"'],
    ),
    "strikethrough": ("This is ~~gone~~ now.\n", ["<s>gone</s>"]),
    "footnote": (
        "Text with a note[^1] and another[^n].\n\n[^1]: The first note.\n[^n]: The second\n    on two lines.\n",
        ['class="footnote-ref"', 'id="fn1"', 'href="#fnref1"'],
    ),
    "footnote_twice": ("Ref[^a] and again[^a].\n\n[^a]: Para one.\n\n    Para two.\n", ['id="fn1"']),
    "task_list": ("- [ ] open\n- [x] done\n", ['type="checkbox"', 'disabled="disabled"', "task-list-item"]),
    "task_list_open_only": ("- [ ] open\n- [ ] also open\n", ['type="checkbox"', 'disabled="disabled"']),
    "heading_ids": (
        "## Hello World\n\n### Hello World\n\n#### Ünïcödé & <b>tags</b>\n\n## `code` in heading\n",
        ['<h2 id="hello-world">', '<h3 id="hello-world-1">'],
    ),
    "heading_ids_h1_h5": ("# Top\n\n##### Deep\n", ["<h1", "<h5"]),
    "code_highlighting": (
        "```python\ndef f(x):\n    return x < 1 and '&'\n```\n\n"
        "```unknownlang\nplain <b>\n```\n\n~~~js\nconst a = 1;\n~~~\n",
        ['<pre><code class="language-python">', '<span class="k">def</span>', "plain &lt;b&gt;"],
    ),
    "inline": (
        'A *b* **c** `d` [e](https://e.example/) ![f](/g.png "t") <https://auto.example>\n\nhard  \nbreak\n',
        ["<em>b</em>", '<img src="/g.png" alt="f" title="t"', "hard<br"],
    ),
    "nesting": ("> quote\n> - list\n>   1. num\n>\n> ```bash\n> echo hi\n> ```\n", ["<blockquote>", "<ol>"]),
    "raw_html": ("<details><summary>S</summary>\n\nInner *md*\n\n</details>\n", ["<details>", "<em>md</em>"]),
    "entities": ("&copy; &amp; &#35; < > \" '\n", ["©", "&amp;", "#"]),
    "lists": ("1. one\n\n2. two\n\n   para\n3. three\n\n- a\n  - b\n", ["<ol>", "<ul>"]),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(FEATURES))
def test_each_feature_is_rendered_by_both_engines(name: str, policy: str) -> None:
    text, expected = FEATURES[name]
    for html in both(text, policy):
        for fragment in expected:
            assert fragment in html, (name, html)


@pytest.mark.parametrize(("name", "policy"), [(n, p) for n in sorted(FEATURES) for p in POLICIES])
def test_each_feature_gives_the_same_html_with_both_engines(name: str, policy: str) -> None:
    fast, python = both(FEATURES[name][0], policy)
    assert fast == python


# -- T15: pathological input ---------------------------------------------------------------------------

PATHOLOGICAL = {
    "nested_brackets": "'[' * 50_000",
    "star_a": "'*a' * 50_000",
    "nested_quotes": "'>' * 10_000 + ' x'",
    "nested_lists": "'- ' * 10_000 + 'x'",
    "less_than": "'<' * 50_000",
    "linkify_bait_at": "'a@' * 250_000",
    "linkify_bait_www": "'www.' * 100_000",
}
CPU_LIMIT_S = 2.0
RSS_LIMIT_MB = 100
# Each case runs in a child process (a crash there cannot take pytest down) and reports its CPU time
# (not wall time: other processes on a CI machine must not make this flaky) and its peak RSS growth
# (Linux: the peak is reset before each render through /proc/self/clear_refs).
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from cms.content.markdown import render_markdown

    def status(field):  # kB from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    engine, cases = sys.argv[1], json.loads(sys.argv[2])
    render_markdown("warm *up*", engine=engine)
    for name, expr in cases.items():
        text = eval(expr)
        print(json.dumps({"start": name}), flush=True)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets the peak (VmHWM) to the current RSS: the peak is then this render's
        rss = status("VmRSS")
        cpu = time.process_time()
        html = render_markdown(text, engine=engine)
        cpu = time.process_time() - cpu
        grown = max(0, status("VmHWM") - rss) / 1024
        print(json.dumps({"case": name, "cpu": cpu, "rss_mb": grown, "out": len(html)}), flush=True)
    """
)


@pytest.fixture(scope="module")
def pathological() -> dict[str, dict[str, dict[str, float]]]:
    """{engine: {case: {"cpu", "rss_mb", "out"}}}, both engines measured in parallel child processes."""
    children = {
        engine: subprocess.Popen(
            [sys.executable, "-c", CHILD, engine, json.dumps(PATHOLOGICAL)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for engine in ENGINES
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for engine, child in children.items():
        try:
            stdout, stderr = child.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        started = [line["start"] for line in lines if "start" in line]
        assert child.returncode == 0, f"{engine} crashed or hung on {started[-1] if started else '?'}: {stderr[-2000:]}"
        results[engine] = {line["case"]: line for line in lines if "case" in line}
    return results


@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
@pytest.mark.parametrize("engine", ENGINES)
def test_pathological_markdown_renders_in_bounded_time_and_memory(
    pathological: dict[str, dict[str, dict[str, float]]], engine: str, case: str
) -> None:
    measured = pathological[engine][case]
    assert measured["out"] > 0
    assert measured["rss_mb"] <= RSS_LIMIT_MB, measured
    assert measured["cpu"] <= CPU_LIMIT_S, measured


# -- highlighting after the sanitizer -------------------------------------------------------------
# Code blocks are highlighted after the raw-HTML policy ran (Pygments' spans are trusted; parsing them
# in the sanitizer was a third of its time). These show nothing unsafe gets in that way.


@pytest.mark.parametrize("engine", ENGINES)
def test_raw_html_dressed_as_a_code_block_is_highlighted_as_text(engine: str) -> None:
    text = '<pre><code class="language-html">&lt;script&gt;alert(1)&lt;/script&gt;</code></pre>\n'
    html = render_markdown(text, raw_html="sanitize", engine=engine)
    assert "<script" not in html and "&lt;" in html and '<span class="nt">' in html


@pytest.mark.parametrize("engine", ENGINES)
def test_a_fenced_block_is_highlighted_and_its_code_kept(engine: str) -> None:
    html = render_markdown('```python\nif a < b and c > "d":\n    pass\n```\n', engine=engine)
    assert '<pre><code class="language-python"><span class="k">if</span>' in html
    assert "&lt;" in html and "&gt;" in html and "<b" not in html.replace("<br", "")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_script_inside_a_code_block_stays_text_under_every_policy(engine: str) -> None:
    text = "```js\n</code></pre><script>alert(1)</script>\n```\n"
    for policy in ("sanitize", "trust"):
        html = render_markdown(text, raw_html=policy, engine=engine)
        assert "<script" not in html and "&lt;script&gt;" in html
