"""Markdown -> HTML: markdown-it-py (CommonMark + GFM tables, strikethrough, footnotes, task lists,
heading anchors), Pygments for fenced code, and a raw-HTML policy like Hugo's.

`raw_html`: "sanitize" (default) passes the rendered HTML through nh3 (ammonia) with an allowlist,
"escape" renders raw HTML as text, "trust" keeps it as written (for sites whose only authors have
commit access). markdown-it's own link validation (no javascript:/vbscript:/file:) stays on.
Rendering is the costly step of a build, so it sits behind this one function and highlighted
code blocks are cached by content.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight as _pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

RAW_HTML_POLICIES = ("sanitize", "escape", "trust")
ENGINES = ("markdown-it-pyrs", "markdown-it-py")

_FastMarkdownIt: Any
try:  # the compiled port of markdown-it: about 10x faster, the same CommonMark + GFM features
    from markdown_it_pyrs import MarkdownIt as _FastMarkdownIt
except ImportError:  # pragma: no cover - the package is a dependency; this keeps a broken wheel usable
    _FastMarkdownIt = None

_FAST_CODE = re.compile(r'<pre><code class="language-([\w+#.-]+)">(.*?)</code></pre>', re.DOTALL)
_FAST_ANCHOR = re.compile(
    r'<(h[1-6])><a aria-hidden="true" class="anchor" id="([^"]*)" href="#[^"]*">.*?</a>', re.DOTALL
)

_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "picture",
    "pre",
    "q",
    "s",
    "samp",
    "section",
    "small",
    "source",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
    "var",
    "video",
    "audio",
    "track",
}
_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href", "hreflang"},
    "abbr": {"title"},
    # No srcset: the sanitizer checks URL schemes in src and href only, not in srcset's list.
    "img": {"src", "alt", "width", "height", "loading", "decoding", "sizes"},
    "source": {"src", "type", "media", "sizes"},
    "input": {"type", "checked", "disabled"},
    "td": {"colspan", "rowspan", "style"},
    "th": {"colspan", "rowspan", "scope", "style"},
    "ol": {"start", "reversed"},
    "time": {"datetime"},
    "video": {"src", "controls", "poster", "width", "height"},
    "audio": {"src", "controls"},
    "track": {"src", "kind", "srclang", "label"},
    "details": {"open"},
}
_FORMATTER = HtmlFormatter(nowrap=True)  # markdown-it wraps it in <pre><code class="language-x">


@functools.lru_cache(maxsize=4096)
def highlight_code(code: str, lang: str) -> str | None:
    """Pygments HTML for a code block, None for an unknown language (cached: builds repeat blocks)."""
    lexer = _lexer(lang)
    return None if lexer is None else _pygments_highlight(code, lexer, _FORMATTER)


@functools.lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    """One lexer per language name: looking one up scans Pygments' registry (a fifth of a block's
    highlighting time), and a lexer keeps no state between `highlight` calls."""
    try:
        return get_lexer_by_name(lang, stripall=False)
    except ClassNotFound:
        return None


@functools.lru_cache(maxsize=4)
def _parser(raw_html: str) -> MarkdownIt:
    options: dict[str, Any] = {"html": raw_html != "escape", "linkify": False, "typographer": False}
    md = MarkdownIt("commonmark", options).enable(["table", "strikethrough"])
    md.use(footnote_plugin).use(tasklists_plugin).use(anchors_plugin, min_level=1, max_level=6, permalink=False)
    return md


@functools.lru_cache(maxsize=1)
def _fast_parser() -> Any:
    return _FastMarkdownIt("commonmark").enable_many(
        ["table", "strikethrough", "footnote", "tasklist", "heading_anchors"]
    )


def _fast_render(text: str) -> str:
    rendered: str = _fast_parser().render(text)
    rendered = _FAST_ANCHOR.sub(r'<\1 id="\2">', rendered)  # plain ids, like the Python engine's anchors
    # Task list boxes show state; they are not form controls (the Python engine marks them disabled too).
    return _FAST_TASK.sub(
        lambda m: (
            '<input class="task-list-item-checkbox"'
            + (' checked="checked"' if m.group(1) else "")
            + ' disabled="disabled" type="checkbox">'
        ),
        rendered,
    )


def _highlight_blocks(rendered: str) -> str:
    """Pygments HTML in place of each fenced block's escaped code (a language Pygments does not know
    stays as it is)."""

    def code(match: re.Match[str]) -> str:
        lang = match.group(1)
        out = highlight_code(html.unescape(match.group(2)), lang.lower())
        return f'<pre><code class="language-{lang}">{out}</code></pre>' if out is not None else match.group(0)

    return _FAST_CODE.sub(code, rendered)


_FAST_TASK = re.compile(r'<input class="task-list-item-checkbox" type="checkbox"( checked="")?(?: /)?>')
_DEEP_MARKERS = re.compile(r"^[ \t>*+\-\d.)]{120,}", re.MULTILINE)


def _pathological(text: str) -> bool:
    """Input for markdown-it-py rather than the compiled engine: text it handles badly (it has no
    nesting cap, and tens of thousands of `<` made it use half a gigabyte), and footnotes."""
    if "[^" in text:  # footnotes: the engines number repeated references differently; one output for all
        return True
    return text.count("<") > 5000 or text.count("[") > 5000 or bool(_DEEP_MARKERS.search(text))


def render_markdown(
    text: str, *, raw_html: str = "sanitize", highlight: bool = True, engine: str = "markdown-it-pyrs"
) -> str:
    """HTML for a Markdown body under the site's raw-HTML policy.

    Both engines give the same HTML for the features used here; the compiled one is the default
    because Markdown rendering is most of a build's time. "escape" needs the Python engine's
    `html=False` switch.
    """
    if raw_html not in RAW_HTML_POLICIES:
        raise ValueError(f"raw_html must be one of {RAW_HTML_POLICIES}")
    if (
        engine == "markdown-it-pyrs"
        and _FastMarkdownIt is not None
        and raw_html != "escape"
        and not _pathological(text)
    ):
        rendered = _fast_render(text)
    else:
        rendered = _parser(raw_html).render(text)
    if raw_html != "trust":
        # Sanitized before highlighting: Pygments' spans are safe (escaped code, class names) and
        # would triple the HTML the sanitizer has to parse in a code-heavy post.
        rendered = sanitize(rendered)
    return _highlight_blocks(rendered) if highlight else rendered


def sanitize(fragment: str) -> str:
    """Keep only an allowlist of tags, attributes and URL schemes (no scripts, handlers, javascript:)."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
        strip_comments=True,
        filter_style_properties={"text-align"},  # table alignment; nothing else of CSS gets through
    )
