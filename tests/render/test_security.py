"""T14: XSS and template injection in rendered output, and T24: build safety and determinism.

T14: over a hundred payloads go into every field a theme shows (title, summary, seo_*, tags,
categories, author and term files, custom fields, the site title) and into bodies; the build, the
API's `?render=html` and the preview are parsed with html.parser and must hold 0 executable sinks.
T24: hostile aliases, slugs and symlinks never make the build write outside its output folder,
and two builds of the same input are byte-identical.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.app import create_app
from cms.auth import Keys
from cms.cli import main
from cms.config import Site
from cms.content.index import Index
from cms.content.markdown import render_markdown
from cms.events.bus import Bus
from cms.preview import CSP, Preview
from cms.render.output import tree_digest
from cms.state import State
from tests.render import ATOM, CONTENT_ENCODED, NOW, audit, build_site, json_ld_blocks, parse_html

# -- payloads --------------------------------------------------------------------------------------

HTML_VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<script src=/static/../../evil.js></script>",
    "<img src=x onerror=alert(1)>",
    "<img src=x oNeRrOr=alert(1)//",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><a xlink:href='javascript:alert(1)'><text>x</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<iframe src=javascript:alert(1)></iframe>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<base href=javascript:alert(1)//>",
    "</title><script>alert(1)</script>",
    "</script><script>alert(1)</script>",
    "</textarea><script>alert(1)</script>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    '" onmouseover="alert(1)',
    "' onfocus='alert(1)' autofocus='",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="jav\tascript:alert(1)">x</a>',
    '<a href=" \x0b javascript:alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="DATA:text/html,<script>alert(1)</script>">x</a>',
    '<form action="javascript:alert(1)"><button>x</button></form>',
    "<button formaction=javascript:alert(1)>x</button>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<body onload=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<xss onpointerenter=alert(1)>x</xss>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<style>@import 'javascript:alert(1)';</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<img src=x srcset='javascript:alert(1) 1x'>",
    "<!--<script>alert(1)//-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\u2028\u2029</script><script>alert(1)</script>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
]
TEMPLATE_VECTORS = [
    "{{ 7*7 }}",
    "{% raw %}{{ 7*7 }}{% endraw %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.items() }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "{{ site.title|safe }}",
    "${7*7} #{7*7} <%= 7*7 %>",
    "{# comment #}{{ 7*7 }}",
]
MD_VECTORS = [  # bodies only: Markdown's own ways to make a link
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](java&#09;script:alert(1))",
    "[x](javascript&#58;alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "![x](data:text/html,alert)",
    "<javascript:alert(1)>",
    "[x][evil]\n\n[evil]: javascript:alert(1)",
    "[x](<javascript:alert(1)>)",
    '[x](https://ok.example "a\\" onmouseover=\\"alert(1)")',
    '[x](https://ok.example/"onmouseover="alert(1))',
]


def _payloads() -> list[str]:
    """Every vector, its case-swapped twin (filters that match on case), and wrapped variants."""
    out: list[str] = []
    for vector in HTML_VECTORS + TEMPLATE_VECTORS + MD_VECTORS:
        for variant in (vector, vector.swapcase(), f"Title {vector} end"):
            if variant not in out:
                out.append(variant)
    return out


PAYLOADS = _payloads()
ALERT = "alert"


def test_there_are_enough_payloads() -> None:
    assert len(PAYLOADS) >= 100
    assert len(set(PAYLOADS)) == len(PAYLOADS)


def _y(value: object) -> str:
    """A YAML value: JSON is valid YAML for strings, lists and mappings."""
    return json.dumps(value)


def write_hostile_site(
    root: Path, *, raw_html: str = "sanitize", payloads: list[str] = PAYLOADS, bodies: bool = True
) -> Site:
    """A site whose every shown field holds a payload (and every body too, unless `bodies` is False)."""
    content = root / "content"
    for folder in ("posts", "pages", "notes", "authors", "categories", "tags"):
        (content / folder).mkdir(parents=True)
    site_title = "Site </title><script>alert(1)</script> {{ 7*7 }}"
    (root / "cms.toml").write_text(
        f"[site]\ntitle = {_y(site_title)}\ndescription = {_y(chr(34) + '><svg onload=alert(1)>')}\n"
        f'base_url = "https://example.test"\ntimezone = "UTC"\n\n[render]\nraw_html = "{raw_html}"\n',
        encoding="utf-8",
    )
    (content / "authors" / "evil.md").write_text(
        f"---\nname: {_y(payloads[0])}\nrole: {_y(payloads[1])}\n---\n{payloads[2]}\n",
        encoding="utf-8",  # bio: text
    )
    (content / "categories" / "evil-cat.md").write_text(
        f"---\nname: {_y(payloads[3])}\ndescription: {_y(payloads[4])}\n---\n", encoding="utf-8"
    )
    (content / "tags" / "evil-tag.md").write_text(
        f"---\nname: {_y(payloads[5])}\ndescription: {_y(payloads[6])}\n---\n", encoding="utf-8"
    )
    (content / "pages" / "evil-page.md").write_text(
        f"---\ntitle: {_y(payloads[7])}\nsummary: {_y(payloads[8])}\n---\n{payloads[9] if bodies else 'Text.'}\n",
        encoding="utf-8",
    )
    cycle = itertools.cycle(payloads)
    for i, payload in enumerate(payloads):
        others = [next(cycle) for _ in range(6)]
        meta = {
            "title": payload,
            "date": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "summary": others[0],
            "seo_title": others[1],
            "seo_description": others[2],
            "tags": [others[3], "evil-tag", "plain"],
            "categories": ["evil-cat", others[4]],
            "author": "evil",
            "featured_image": others[5],
            "flavor": payload,
        }
        front = "".join(f"{key}: {_y(value)}\n" for key, value in meta.items())
        vector = MD_VECTORS[i % len(MD_VECTORS)]
        body = f"# {payload}\n\n{payload}\n\n> {others[0]}\n\n- {others[1]}\n\n`{payload}`\n\n{vector}\n"
        body = body if bodies else "Plain text.\n"
        (content / "posts" / f"p-{i:03d}.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    for i in range(0, len(payloads), 4):  # custom fields of a type with no schema: four payloads a note
        a, b, c, d = (payloads[(i + k) % len(payloads)] for k in range(4))
        note = {
            "title": a,
            "flavor": a,
            "nested": {"k": b, "list": [c]},
            "listy": [c, d],
            "gallery": [{"src": d, "alt": b}],
        }
        front = "".join(f"{key}: {_y(value)}\n" for key, value in note.items())
        body = f"{a}\n" if bodies else "Plain text.\n"
        (content / "notes" / f"n-{i:03d}.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return Site.load(root)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, Path]:
    site = write_hostile_site(tmp_path_factory.mktemp("hostile"))
    index, result = build_site(site, site.root / "public")
    assert result.ok, result.errors[:5]
    assert len([d for d in index.docs.values() if d.type == "posts"]) == len(PAYLOADS)
    return site, site.root / "public"


def known_issue(problem: str) -> bool:
    """No sink is excused any more (srcset was, until the sanitizer stopped allowing it)."""
    return False


def sinks_in_tree(out: Path) -> dict[str, list[str]]:
    """Executable sinks per output file: HTML pages and the HTML inside feed entries."""
    found: dict[str, list[str]] = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".html":
            problems = audit(parse_html(path.read_text(encoding="utf-8")))
        elif path.suffix == ".xml":
            root = ET.parse(path).getroot()  # well-formed whatever the titles hold
            fragments = [e.text or "" for e in root.iter() if e.tag in (CONTENT_ENCODED, ATOM + "content")]
            problems = [p for f in fragments for p in audit(parse_html(f))]
        elif path.suffix == ".json":
            json.loads(path.read_bytes())
            continue
        else:
            continue
        problems = [p for p in problems if not known_issue(p)]
        if problems:
            found[rel] = problems
    return found


# -- T14: the build ----------------------------------------------------------------------------------


def test_no_executable_sink_in_any_output(hostile: tuple[Site, Path]) -> None:
    _, out = hostile
    assert len(list(out.rglob("*.html"))) > 2 * len(PAYLOADS)
    assert sinks_in_tree(out) == {}


def test_the_audit_catches_what_it_looks_for() -> None:
    """Negative control: every kind of sink the audit claims to find, it finds."""
    for html in [
        "<script>x()</script>",
        '<script src="https://evil.example/x.js"></script>',
        '<script src="/static/x.js">inline()</script>',
        '<p onclick="x()">',
        '<a href=" JaVa&#x09;Script:x()">',
        '<a href="vbscript:x">',
        '<img src="data:text/html,x">',
        '<iframe srcdoc="x"></iframe>',
        '<img srcset="/a.png 1x, javascript:x 2x">',
        '<meta http-equiv="refresh" content="0;url=javascript:x">',
        '<div style="background:url(javascript:x)">',
    ]:
        assert audit(parse_html(html)), html
    ok = '<script src="/static/theme.js" defer></script><script type="application/ld+json">{}</script>'
    assert audit(parse_html(ok)) == []


@pytest.mark.parametrize("engine", ["markdown-it-pyrs", "markdown-it-py"])
def test_the_sanitizer_keeps_script_urls_out_of_srcset(engine: str) -> None:
    html = render_markdown("<img src=x srcset='javascript:alert(1) 1x, data:text/html,x 2x'>", engine=engine)
    assert audit(parse_html(html)) == [], html


def test_template_syntax_in_content_is_printed_literally(hostile: tuple[Site, Path]) -> None:
    _, out = hostile
    for payload in ("{{ 7*7 }}", "{% raw %}{{ 7*7 }}{% endraw %}", "{% for x in range(3) %}{{ x }}{% endfor %}"):
        i = PAYLOADS.index(payload)
        text = (out / "posts" / f"p-{i:03d}" / "index.html").read_text(encoding="utf-8")
        page = parse_html(text)
        assert page.find("h1")[0].text.strip() == payload
        prose = page.has_class("prose")[0].text
        assert payload in prose and "49" not in prose
        assert json.loads(json_ld_blocks(text)[0])["headline"] == payload
    home = parse_html((out / "index.html").read_text(encoding="utf-8"))
    assert home.title == "Site </title><script>alert(1)</script> {{ 7*7 }}"


def test_json_ld_cannot_end_its_script_element(hostile: tuple[Site, Path]) -> None:
    _, out = hostile
    i = PAYLOADS.index("</script><script>alert(1)</script>")
    text = (out / "posts" / f"p-{i:03d}" / "index.html").read_text(encoding="utf-8")
    blocks = json_ld_blocks(text)
    assert len(blocks) == 1
    assert "\\u003c/script\\u003e" in blocks[0]
    data = json.loads(blocks[0])
    assert data["headline"] == PAYLOADS[i] and data["@type"] == "Article"
    for path in out.rglob("*.html"):  # and no other block anywhere holds a raw < or >
        for block in json_ld_blocks(path.read_text(encoding="utf-8")):
            assert "<" not in block and ">" not in block, path
            assert json.loads(block)["@type"]


def test_feeds_stay_well_formed_and_escaped(hostile: tuple[Site, Path]) -> None:
    _, out = hostile
    rss = ET.parse(out / "feed.xml").getroot()
    titles = [t.text for t in rss.iter("title")]
    assert any(t and "<script>" in t for t in titles)  # the title, as text: escaped in the XML bytes
    raw = (out / "feed.xml").read_text(encoding="utf-8")
    assert "<script>" not in raw and "&lt;script&gt;" in raw


@pytest.mark.parametrize("policy", ["escape", "sanitize"])
def test_raw_html_policies_that_protect(policy: str, tmp_path: Path) -> None:
    site = write_hostile_site(tmp_path / "site", raw_html=policy, payloads=PAYLOADS[:40])
    _, result = build_site(site, tmp_path / "out")
    assert result.ok
    assert sinks_in_tree(tmp_path / "out") == {}
    page = (tmp_path / "out" / "posts" / "p-000" / "index.html").read_text(encoding="utf-8")
    if policy == "escape":  # raw HTML shows as text
        assert "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in page


def test_trust_passes_raw_html_from_bodies_only(tmp_path: Path) -> None:
    """With `trust`, a body's raw HTML is kept as written; every frontmatter field is still escaped."""
    site = write_hostile_site(tmp_path / "site", raw_html="trust", payloads=PAYLOADS[::3], bodies=False)
    marker = "window.trustedMarker = 1"
    (site.content_dir / "posts" / "trusted.md").write_text(
        f"---\ntitle: Trusted\ndate: 2026-02-01T00:00:00Z\n---\n<script>{marker}</script>\n\n"
        '<div onclick="trustedMarker()">raw</div>\n',
        encoding="utf-8",
    )
    _, result = build_site(site, tmp_path / "out")
    assert result.ok
    trusted = audit(parse_html((tmp_path / "out" / "posts" / "trusted" / "index.html").read_text(encoding="utf-8")))
    assert any(marker in p for p in trusted) and any("onclick" in p for p in trusted), "trust keeps raw HTML"
    sinks = sinks_in_tree(tmp_path / "out")
    # the trusted body is also in the feeds; nothing else anywhere
    assert set(sinks) == {"posts/trusted/index.html", "feed.xml", "atom.xml"}
    assert all("trustedMarker" in p for problems in sinks.values() for p in problems)


# -- T14: the API and the preview --------------------------------------------------------------------


@pytest.fixture
def api(hostile: tuple[Site, Path], tmp_path: Path) -> Iterator[tuple[TestClient, Index]]:
    site, _ = hostile
    index = Index.load(site, fill_search=False)
    state = State(tmp_path / "state")
    app: Starlette = create_app(site, index=index, state=state, clock=lambda: NOW)
    token = Keys(state, lambda: NOW).create("reader", ["read"]).token
    with TestClient(app, headers={"X-API-Key": token}) as client:
        yield client, index
    state.close()


def test_api_render_html_has_no_sinks(api: tuple[TestClient, Index]) -> None:
    client, index = api
    seen = 0
    for page in range(1, 20):
        response = client.get("/api/v1/posts", params={"render": "html", "per_page": 100, "page": page})
        assert response.status_code == 200, response.text
        items = response.json()["data"]
        if not items:
            break
        for item in items:
            assert [p for p in audit(parse_html(item["html"])) if not known_issue(p)] == [], item["title"]
            seen += 1
    assert seen == len(PAYLOADS)
    doc = index.get("p-000", "posts")
    one = client.get(f"/api/v1/posts/{doc.id}", params={"render": "html"})
    assert one.status_code == 200 and audit(parse_html(one.json()["data"]["html"])) == []


def test_api_sanitizes_for_non_admin_keys_even_when_the_site_trusts_html(tmp_path: Path) -> None:
    site = write_hostile_site(tmp_path / "site", raw_html="trust", payloads=PAYLOADS[:12])
    index = Index.load(site, fill_search=False)
    state = State(tmp_path / "state")
    try:
        app = create_app(site, index=index, state=state, clock=lambda: NOW)
        token = Keys(state, lambda: NOW).create("reader", ["read"]).token
        with TestClient(app, headers={"X-API-Key": token}) as client:
            doc = index.get("p-000", "posts")
            html = client.get(f"/api/v1/posts/{doc.id}", params={"render": "html"}).json()["data"]["html"]
        assert audit(parse_html(html)) == []
    finally:
        state.close()


def test_the_preview_serves_no_sinks_and_a_strict_policy(tmp_path: Path) -> None:
    payloads = [*PAYLOADS[:19], "{{ 7*7 }}"]
    site = write_hostile_site(tmp_path / "site", payloads=payloads)
    index = Index.load(site, fill_search=False)
    preview = Preview(site, index, Bus())
    preview.rebuild()
    app = Starlette(routes=preview.routes())
    with TestClient(app) as client:
        for rel in ("/", "/posts/p-000/", "/posts/p-019/", "/notes/n-004/", "/tags/evil-tag/", "/nope/"):
            response = client.get(rel)
            assert response.status_code == (404 if rel == "/nope/" else 200), rel
            assert response.headers["content-security-policy"] == CSP
            assert "script-src" not in CSP and "'unsafe-inline'" not in CSP.split("style-src")[0]
            page = parse_html(response.text)
            assert audit(page) == [], rel
            assert page.find("script", src="/_cms/livereload.js"), rel


# -- T24: build safety and determinism ------------------------------------------------------------

EVIL = f"evil-{uuid.uuid4().hex[:12]}"
HOSTILE_ALIASES = [
    "/../../etc/x",
    f"../../../../../../../../tmp/{EVIL}",
    f"/../../../../../../../../tmp/{EVIL}-2/",
    "/a/../../b",
    "/a/./../../../c/",
    "C:\\Windows\\evil",
    "C:/Windows/evil",
    "\\\\server\\share\\x",
    "/a\\..\\..\\..\\b",
    "/x\x00y/",
    "//evil.example/x",
    "/ok/%2e%2e/%2e%2e/x/",
    "/feed.xml",
    "/posts/hostile/",
    "/static/style.css",
    "/fine/old-url/",
]
HOSTILE_SLUGS = ["../../../tmp/" + EVIL + "-slug", "/etc/passwd", "C:\\evil", "..", "con", "a/../../b"]


def tree_state(root: Path, skip: set[Path]) -> dict[str, str]:
    """sha256 of every file under root (links by their target), leaving out the folders in `skip`."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if Path(folder, d) not in skip)
        for name in files:
            path = Path(folder, name)
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            found[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


@pytest.fixture
def t24(tmp_path: Path) -> Site:
    root = tmp_path / "site"
    site = write_hostile_site(root, payloads=PAYLOADS[:12])
    posts = site.content_dir / "posts"
    (posts / "hostile.md").write_text(
        f"---\ntitle: Hostile aliases\ndate: 2026-03-01T00:00:00Z\naliases: {_y(HOSTILE_ALIASES)}\n---\nText.\n",
        encoding="utf-8",
    )
    for i, slug in enumerate(HOSTILE_SLUGS):
        (posts / f"slug-{i}.md").write_text(
            f"---\ntitle: Slug {i}\nslug: {_y(slug)}\ndate: 2026-03-0{i + 2}T00:00:00Z\n---\nText.\n",
            encoding="utf-8",
        )
    # symlinks inside content/ that lead out of it: never read
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.md").write_text("---\ntitle: SECRET-FILE\n---\nSECRET-FILE body\n", encoding="utf-8")
    (outside / "folder" / "inner.md").write_text("---\ntitle: SECRET-DIR\n---\nSECRET-DIR\n", encoding="utf-8")
    (posts / "linked.md").symlink_to(outside / "secret.md")
    (posts / "linked-folder").symlink_to(outside / "folder", target_is_directory=True)
    (site.content_dir / "linked-type").symlink_to(outside / "folder", target_is_directory=True)
    return site


def test_hostile_paths_never_write_outside_the_output_folder(t24: Site, tmp_path: Path) -> None:
    out = t24.root / "public"
    skip = {out, t24.state_dir}
    before = tree_state(tmp_path, skip)
    etc_x = Path("/etc/x").exists()
    _, result = build_site(t24, out)
    after = tree_state(tmp_path, skip)
    assert after == before, "files changed outside the output folder"
    assert not any(Path("/tmp").glob(f"{EVIL}*"))
    assert Path("/etc/x").exists() == etc_x
    assert all(p.resolve().is_relative_to(out) for p in out.rglob("*"))
    # the build went on and named every refused alias with its file and line
    assert (out / "posts" / "hostile" / "index.html").is_file()
    assert (out / "fine" / "old-url" / "index.html").is_file()
    refused = [e for e in result.errors if e.startswith("content/posts/hostile.md:4: alias ")]
    # all but /ok/%2e%2e/%2e%2e/x/ (literal folder names), /fine/old-url/ and the post's own path
    assert len(refused) == len(HOSTILE_ALIASES) - 3, result.errors
    assert len(result.errors) == len(refused)
    redirects = (out / "_redirects").read_text(encoding="utf-8").splitlines()
    assert redirects == ["/fine/old-url/ /posts/hostile/ 301", "/ok/%2e%2e/%2e%2e/x/ /posts/hostile/ 301"]
    # slugs are made safe by the index: each post has one page, inside the output folder
    for i in range(len(HOSTILE_SLUGS)):
        pages = [p for p in (out / "posts").glob("*/index.html") if f"Slug {i}" in p.read_text(encoding="utf-8")]
        assert len(pages) >= 1, i
    text = "\n".join(p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file())
    assert "SECRET" not in text


def test_hostile_input_builds_byte_identically(t24: Site, tmp_path: Path) -> None:
    build_site(t24, tmp_path / "a")
    build_site(t24, tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    _, again = build_site(t24, tmp_path / "a")
    assert again.written == [] and again.removed == []


def test_the_cli_reports_hostile_aliases_and_exits_1(t24: Site) -> None:
    result = CliRunner().invoke(main, ["build", "--site", str(t24.root), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "content/posts/hostile.md:4: alias '/../../etc/x' is not allowed" in result.stderr
    assert "Traceback" not in result.output


def test_symlinks_in_the_output_folder_are_not_followed(t24: Site, tmp_path: Path) -> None:
    out = t24.root / "public"
    victim = tmp_path / "victim"
    (victim / "posts").mkdir(parents=True)
    (victim / "file.html").write_text("victim", encoding="utf-8")
    out.mkdir()
    (out / "posts").symlink_to(victim / "posts", target_is_directory=True)
    (out / "index.html").symlink_to(victim / "file.html")
    (out / "robots.txt").symlink_to(victim / "robots.txt")  # dangling: must not be created through
    before = tree_state(tmp_path, {out, t24.state_dir})
    _, result = build_site(t24, out)
    assert tree_state(tmp_path, {out, t24.state_dir}) == before
    assert list((victim / "posts").iterdir()) == []
    assert (victim / "file.html").read_text(encoding="utf-8") == "victim"
    assert not (victim / "robots.txt").exists()
    assert any("symbolic link" in e for e in result.errors)
    assert (out / "feed.xml").is_file() and (out / "search" / "index.html").is_file()  # the rest was built
    # --clean does not remove (or follow) them either
    _, result = build_site(t24, out, clean=True)
    assert (out / "posts").is_symlink() and (out / "index.html").is_symlink()
    assert tree_state(tmp_path, {out, t24.state_dir}) == before
