"""The bad-input matrix: each row is one hostile or broken request with the exact status and code it
must get. For every row nothing outside content/ and .cms/ changes, content/ itself stays as it was
(every row is refused), and no answer is a 5xx."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.app import api_routes
from cms.api.http import Services
from cms.config import Site

from .conftest import ENDPOINTS, PUBLISHED, Endpoint, assert_error, client, prepare, tree_digest

JSON = "application/json"
MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    name: str
    status: int
    code: str
    method: str = "POST"
    path: str = "/api/v1/posts"
    content: Any = None  # bytes, or a callable returning an iterator of bytes (a chunked body)
    json_body: Any = None
    content_type: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)


def post(**fields: Any) -> bytes:
    """A valid new post with `fields` merged in, as JSON bytes."""
    return json.dumps({"title": "Matrix", "content": "Body.", **fields}).encode()


def slug_row(name: str, slug: str) -> Row:
    return Row(f"slug {name}", 400, "BAD_REQUEST", content=post(slug=slug))


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    yield b'{"title": "'
    for _ in range(total // size):
        yield b"a" * size
    yield b'", "content": "x"}'


def deep_object(levels: int) -> bytes:
    return b'{"title": "t", "content": "c", "data": ' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"


ROWS = [
    # -- the body as JSON
    Row("malformed JSON", 400, "BAD_REQUEST", content=b'{"title": "x",'),
    Row("array where an object is expected", 400, "BAD_REQUEST", content=b'[{"title": "x", "content": "y"}]'),
    Row("a bare string", 400, "BAD_REQUEST", content=b'"title"'),
    Row("1,000-deep nesting", 400, "BAD_REQUEST", content=deep_object(1_000)),
    Row("100,000-deep nesting", 400, "BAD_REQUEST", content=b"[" * 100_000 + b"]" * 100_000),
    Row("40-deep nesting (over the depth cap)", 400, "BAD_REQUEST", content=deep_object(40)),
    Row("NaN literal", 400, "BAD_REQUEST", content=b'{"title": "t", "content": "c", "data": {"x": NaN}}'),
    Row("Infinity literal", 400, "BAD_REQUEST", content=b'{"title": "t", "content": "c", "data": {"x": Infinity}}'),
    Row("-Infinity literal", 400, "BAD_REQUEST", content=b'{"title": "t", "content": "c", "data": {"x": -Infinity}}'),
    Row("1e999 overflows to infinity", 400, "BAD_REQUEST", content=b'{"title": "t", "content": "c", "views": 1e999}'),
    Row(
        "5,000-digit integer",
        400,
        "BAD_REQUEST",
        content=b'{"title": "t", "content": "c", "views": ' + b"9" * 5000 + b"}",
    ),
    Row("duplicate keys", 400, "BAD_REQUEST", content=b'{"title": "a", "title": "b", "content": "c"}'),
    Row("empty body", 400, "BAD_REQUEST", content=b""),
    Row("whitespace body", 400, "BAD_REQUEST", content=b" \n "),
    Row("invalid UTF-8", 400, "BAD_REQUEST", content=b'{"title": "\xff", "content": "c"}'),
    Row("raw surrogate bytes", 400, "BAD_REQUEST", content=b'{"title": "\xed\xa0\x80", "content": "c"}'),
    Row("lone surrogate in title", 400, "BAD_REQUEST", content=b'{"title": "\\ud800", "content": "c"}'),
    Row("lone surrogate in slug", 400, "BAD_REQUEST", content=b'{"title": "t", "slug": "\\ud800", "content": "c"}'),
    Row(
        "lone surrogate in a data key",
        400,
        "BAD_REQUEST",
        content=b'{"title": "t", "content": "c", "data": {"\\udfff": 1}}',
    ),
    Row("lone surrogate in a tag", 400, "BAD_REQUEST", content=b'{"title": "t", "content": "c", "tags": ["\\ud800"]}'),
    # -- size and media type
    Row("50 MB body with Content-Length", 413, "PAYLOAD_TOO_LARGE", content=b'{"title": "' + b"a" * (50 * MB) + b'"}'),
    Row("50 MB chunked body without Content-Length", 413, "PAYLOAD_TOO_LARGE", content=lambda: _chunks(50 * MB)),
    Row("text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", content=post(), content_type="text/plain"),
    Row(
        "form encoded",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        content=b"title=x&content=y",
        content_type="application/x-www-form-urlencoded",
    ),
    Row("no Content-Type", 415, "UNSUPPORTED_MEDIA_TYPE", content=post(), content_type=None),
    # -- slugs that must never become a path
    slug_row("with a NUL byte", "a\x00b"),
    slug_row("../", "../etc"),
    slug_row("%2e%2e%2f", "%2e%2e%2fcms.toml"),
    slug_row("..%5c", "..%5ccms.toml"),
    slug_row("backslash", "..\\cms.toml"),
    slug_row("absolute path", "/etc/passwd"),
    slug_row("drive path", "C:\\x"),
    slug_row("U+2024 one-dot leader", "\u2024\u2024"),
    slug_row("U+FF0E full-width full stop", "\uff0e\uff0e"),
    slug_row("dot look-alike inside", "a\u2024md"),
    slug_row("trailing dot", "abc."),
    slug_row("trailing space", "abc "),
    slug_row("leading dot", ".hidden"),
    slug_row("con", "con"),
    slug_row("nul.md", "nul.md"),
    slug_row("com1", "com1"),
    slug_row("256-byte UTF-8", "é" * 128),
    slug_row("upper case", "Hello"),
    slug_row("NFD", unicodedata.normalize("NFD", "café")),
    Row("slug ../ on rename", 400, "BAD_REQUEST", "PATCH", f"/api/v1/posts/{PUBLISHED}", content=b'{"slug": "../x"}'),
    Row("slug con on rename", 400, "BAD_REQUEST", "PATCH", f"/api/v1/posts/{PUBLISHED}", content=b'{"slug": "con"}'),
    Row("term slug ../", 400, "BAD_REQUEST", path="/api/v1/categories", content=b'{"name": "x", "slug": "../x"}'),
    Row("type name ../", 400, "BAD_REQUEST", path="/api/v1/content-types", content=b'{"name": "../x"}'),
    Row("type name con", 400, "BAD_REQUEST", path="/api/v1/content-types", content=b'{"name": "con"}'),
    # -- paths
    Row("type ../ in the path", 400, "BAD_REQUEST", "GET", "/api/v1/content/..%2fposts", content_type=None),
    Row("type %2e%2e in the path", 400, "BAD_REQUEST", "GET", "/api/v1/content/%2e%2e/x", content_type=None),
    Row("type with NUL in the path", 400, "BAD_REQUEST", "GET", "/api/v1/content/posts%00", content_type=None),
    Row("ref ../ in the path", 404, "NOT_FOUND", "GET", "/api/v1/posts/..%2f..%2fcms.toml", content_type=None),
    Row("ref %2e%2e in the path", 404, "NOT_FOUND", "GET", "/api/v1/posts/%2e%2e", content_type=None),
    Row(
        "ref ..%5c in the path",
        404,
        "NOT_FOUND",
        "PATCH",
        "/api/v1/posts/..%5c..%5ccms.toml",
        content=b'{"title": "x"}',
    ),
    Row("ref with NUL in the path", 404, "NOT_FOUND", "DELETE", "/api/v1/posts/a%00b", content_type=None),
    Row("unknown endpoint", 404, "NOT_FOUND", "GET", "/api/v1/nothing-here", content_type=None),
    Row("method not allowed", 405, "METHOD_NOT_ALLOWED", "PUT", "/api/v1/health", content=b"{}"),
    # -- query strings
    Row("unknown query parameter", 400, "BAD_REQUEST", "GET", "/api/v1/posts?colour=red", content_type=None),
    Row("unknown query parameter on a write", 400, "BAD_REQUEST", path="/api/v1/posts?dry_run=1", content=post()),
    Row(
        "unknown filter operator",
        400,
        "BAD_REQUEST",
        "GET",
        "/api/v1/posts?filters[title][$regex]=.*",
        content_type=None,
    ),
    Row(
        "unknown logical operator",
        400,
        "BAD_REQUEST",
        "GET",
        "/api/v1/posts?filters[$xor][0][slug]=a",
        content_type=None,
    ),
    Row("filters without brackets", 400, "BAD_REQUEST", "GET", "/api/v1/posts?filters=title", content_type=None),
    Row(
        "filters nested too deep",
        400,
        "BAD_REQUEST",
        "GET",
        "/api/v1/posts?filters" + "[$not]" * 12 + "[slug]=a",
        content_type=None,
    ),
    Row("bad field name in sort", 400, "BAD_REQUEST", "GET", "/api/v1/posts?sort=ti!tle", content_type=None),
    Row("per_page over the maximum", 400, "BAD_REQUEST", "GET", "/api/v1/posts?per_page=101", content_type=None),
    Row("limit over the maximum", 400, "BAD_REQUEST", "GET", "/api/v1/posts?limit=1000", content_type=None),
    Row("page 0", 400, "BAD_REQUEST", "GET", "/api/v1/posts?page=0", content_type=None),
    Row("status unknown", 400, "BAD_REQUEST", "GET", "/api/v1/posts?status=hidden", content_type=None),
    Row("order sideways", 400, "BAD_REQUEST", "GET", "/api/v1/posts?order=sideways", content_type=None),
    Row("tag_mode some", 400, "BAD_REQUEST", "GET", "/api/v1/posts?tag=a&tag_mode=some", content_type=None),
    Row("term order_by typo", 400, "BAD_REQUEST", "GET", "/api/v1/categories?order_by=nmae", content_type=None),
    Row("nested maybe", 400, "BAD_REQUEST", "GET", "/api/v1/categories?nested=maybe", content_type=None),
    Row(
        "permanent maybe", 400, "BAD_REQUEST", "DELETE", f"/api/v1/posts/{PUBLISHED}?permanent=maybe", content_type=None
    ),
    Row(
        "search over 500 characters", 400, "BAD_REQUEST", "GET", "/api/v1/posts?search=" + "x" * 501, content_type=None
    ),
    Row("query string over 8 KiB", 414, "URI_TOO_LONG", "GET", "/api/v1/posts?search=" + "x" * 9000, content_type=None),
]


def _send(http: TestClient, row: Row) -> Any:
    headers = dict(row.headers)
    if row.content_type is not None:
        headers["Content-Type"] = row.content_type
    content = row.content() if callable(row.content) else row.content
    return http.request(row.method, row.path, content=content, headers=headers)


def _outside(site: Site) -> dict[str, str]:
    return tree_digest(site.root, skip=(site.paths.content, site.paths.state))


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input(shared_site: Site, shared_app: Starlette, shared_tokens: dict[str, str], row: Row) -> None:
    outside, content = _outside(shared_site), tree_digest(shared_site.content_dir)
    response = _send(client(shared_app, shared_tokens["admin"]), row)
    assert response.status_code < 500, response.text
    assert_error(response, row.status, row.code)
    assert _outside(shared_site) == outside, "a refused request changed files outside content/"
    assert tree_digest(shared_site.content_dir) == content, "a refused request changed content/"


def test_chunked_body_really_has_no_content_length(shared_app: Starlette, shared_tokens: dict[str, str]) -> None:
    http = client(shared_app, shared_tokens["admin"])
    response = http.post("/api/v1/posts", content=_chunks(2 * MB), headers={"Content-Type": JSON})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_unknown_query_parameter_names_it_and_the_accepted_ones(reader: TestClient) -> None:
    error = assert_error(reader.get("/api/v1/posts?colour=red"), 400, "BAD_REQUEST")
    assert "'colour'" in error["message"]
    assert error["details"]["parameter"] == "colour"
    assert "per_page" in error["details"]["accepted"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_every_endpoint_refuses_an_unknown_query_parameter(
    shared_app: Starlette, shared_tokens: dict[str, str], endpoint: Endpoint
) -> None:
    svc: Services = shared_app.state.services
    prepared = prepare(svc, endpoint)
    generation = svc.index.generation
    response = client(shared_app, shared_tokens["admin"]).request(
        endpoint.method, prepared.path + "?colour=red", json=prepared.body
    )
    error = assert_error(response, 400, "BAD_REQUEST")
    assert "colour" in error["message"]
    assert svc.index.generation == generation, "the write happened before the parameter was checked"


def test_lone_surrogate_never_reaches_a_file(
    shared_site: Site, shared_app: Starlette, shared_tokens: dict[str, str]
) -> None:
    before = tree_digest(shared_site.root, skip=(shared_site.paths.state,))
    http = client(shared_app, shared_tokens["admin"])
    for body in (b'{"name": "\\ud800"}', b'{"name": "ok", "description": "\\udc00"}'):
        response = http.post("/api/v1/categories", content=body, headers={"Content-Type": JSON})
        assert response.status_code in (400, 422), response.text
    assert tree_digest(shared_site.root, skip=(shared_site.paths.state,)) == before


def test_case_variant_of_a_slug_is_refused(writer: TestClient, site: Site) -> None:
    assert writer.post("/api/v1/posts", json={"title": "x", "content": "y", "slug": "hello"}).status_code == 201
    assert_error(writer.post("/api/v1/posts", json={"title": "x", "content": "y", "slug": "Hello"}), 400, "BAD_REQUEST")
    assert_error(writer.post("/api/v1/posts", json={"title": "x", "content": "y", "slug": "hello"}), 409, "CONFLICT")
    assert sorted(p.name for p in (site.content_dir / "posts").glob("hello*")) == ["hello.md"]


def test_title_case_variant_gets_a_numbered_slug(writer: TestClient) -> None:
    first = writer.post("/api/v1/posts", json={"title": "hello", "content": "y"}).json()["data"]
    second = writer.post("/api/v1/posts", json={"title": "Hello", "content": "y"}).json()["data"]
    assert (first["slug"], second["slug"]) == ("hello", "hello-2")


def test_nfd_twin_of_an_nfc_slug_is_refused(writer: TestClient, site: Site) -> None:
    nfc = unicodedata.normalize("NFC", "café")
    assert writer.post("/api/v1/posts", json={"title": "x", "content": "y", "slug": nfc}).status_code == 201
    nfd = unicodedata.normalize("NFD", "café")
    assert_error(writer.post("/api/v1/posts", json={"title": "x", "content": "y", "slug": nfd}), 400, "BAD_REQUEST")
    assert [p.name for p in (site.content_dir / "posts").glob("caf*")] == [f"{nfc}.md"]


def test_a_500_is_the_envelope_without_a_traceback(
    app: Starlette, admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(app.state.services.index, "get", boom)
    response = admin.get(f"/api/v1/posts/{PUBLISHED}")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "shadow" not in response.text and "Traceback" not in response.text
    assert set(error["details"]) == {"request_id"}


def test_errors_carry_security_headers(anon: TestClient) -> None:
    response = anon.get("/api/v1/posts")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Type"].startswith(JSON)


def test_a_405_allows_every_method_the_path_has(anon: TestClient) -> None:
    # RFC 9110: Allow lists every method the resource supports; Starlette named only the first route's.
    spec = anon.get("/api/v1/openapi.json").json()
    for path, item in spec["paths"].items():
        if "{" in path:
            continue  # concrete paths only: a template is not a request
        documented = {m.upper() for m in item}
        unsupported = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in documented)
        answer = anon.request(unsupported, path)
        assert answer.status_code == 405, (unsupported, path)
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed - {"HEAD"} == documented, path
        assert answer.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# -- the API beside the preview, as `cms serve` runs them ------------------------------------------


@pytest.fixture
def served(app: Starlette) -> Iterator[TestClient]:
    """A client of the app `cms serve` runs: the API with the preview's routes after its own."""
    from cms.serve import add_preview

    preview = add_preview(app, drafts=False)
    preview.rebuild()  # (what its thread does at start: the site pages exist)
    yield client(app)
    preview.stop()


def concrete(template: str) -> str:
    """A request path for a route's path template: every parameter filled with `z`."""
    return re.sub(r"\{[^}]+\}", "z", template)


def test_beside_the_preview_every_api_path_allows_what_the_api_declares(served: TestClient) -> None:
    # The preview's catch-all GET/HEAD route used to match every /api/ path: a GET on a POST-only
    # endpoint got the preview's 404, and every 405 of the API listed GET and HEAD in its Allow.
    declared: dict[str, set[str]] = {}
    for route in api_routes():
        declared.setdefault(concrete(route.path), set()).update(route.methods or ())
    assert "/api/v1/webhook/trigger" in declared and len(declared) > 40
    for path, methods in declared.items():
        assert ("HEAD" in methods) == ("GET" in methods), path
        for wrong in ("OPTIONS", *({"GET", "DELETE"} - methods)):
            answer = served.request(wrong, path)
            assert_error(answer, 405, "METHOD_NOT_ALLOWED")
            assert answer.headers["allow"] == ", ".join(sorted(methods)), (wrong, path)


def test_beside_the_preview_post_only_paths_answer_405_allow_post(served: TestClient) -> None:
    for method in ("OPTIONS", "DELETE", "GET", "HEAD"):
        answer = served.request(method, f"/api/v1/posts/{PUBLISHED}/publish")
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "POST", method
    assert_error(served.get("/api/v1/webhook/trigger"), 405, "METHOD_NOT_ALLOWED")
    assert served.get("/api/v1/webhook/trigger").headers["allow"] == "POST"


def test_beside_the_preview_unknown_api_paths_get_the_api_404(served: TestClient) -> None:
    for path in ("/api/v1/nope", "/api", "/api/", "/api/v1/posts/x/nope", "/api/v2/posts"):
        answer = served.get(path)
        assert_error(answer, 404, "NOT_FOUND")
        assert answer.json()["error"]["message"] == "no such endpoint", path


def test_beside_the_api_the_site_pages_are_the_preview_s(served: TestClient) -> None:
    page = served.get(f"/posts/{PUBLISHED}/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/_cms/livereload.js" defer></script>' in page.text
    assert served.head(f"/posts/{PUBLISHED}/").status_code == 200
    assert served.get("/").status_code == 200
    assert served.get("/_cms/livereload.js").headers["content-type"].startswith("text/javascript")
    for path in ("/nope/", "/apiary/", "/api-docs"):  # (only /api and what is under it is the API's)
        missing = served.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html"), path
    wrong = served.post(f"/posts/{PUBLISHED}/")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
