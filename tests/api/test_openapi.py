"""GET /api/v1/openapi.json and GET /api/docs: a valid, complete and accurate contract, and its offline page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette
from starlette.routing import Match, Route
from starlette.testclient import TestClient

from cms.api.docschema import field_schema
from cms.api.openapi import DOCS_CSP, spec_path
from cms.api.operations import declared
from cms.config import Site
from cms.content.model import FIELD_TYPES, Field
from cms.content.query import PARAMS
from cms.state import State
from tests.api.conftest import assert_error
from tests.support import DEMO_DRAFTS, DEMO_SCHEDULED

METHODS = ("get", "put", "post", "patch", "delete")
PUBLIC = {
    ("/api/v1/health", "get"),
    ("/api/v1/settings", "get"),
    ("/api/v1/openapi.json", "get"),
    ("/api/docs", "get"),
}


def _spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]


def _params(spec: dict[str, Any], path: str, method: str, where: str = "query") -> set[str]:
    return {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p["in"] == where}


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]  # type: ignore[no-any-return]


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource("urn:spec", resource)
    rooted = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_rebase(schema)}
    return Draft202012Validator(rooted, registry=registry, format_checker=FormatChecker())


def _rebase(node: Any) -> Any:
    """`#/components/...` refs pointing into the spec registered as urn:spec."""
    if isinstance(node, dict):
        return {k: ("urn:spec" + v if k == "$ref" and v.startswith("#/") else _rebase(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _response_schema(spec: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    response = spec["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def _conforms(spec: dict[str, Any], path: str, method: str, response: Any) -> None:
    schema = _response_schema(spec, path, method, str(response.status_code))
    errors = sorted(_validator(spec, schema).iter_errors(response.json()), key=str)
    assert not errors, f"{method.upper()} {path} -> {response.status_code}: {errors[0].message} at {errors[0].path}"


# -- validity and coverage ----------------------------------------------------------------


def test_the_spec_is_valid_openapi_3_1_and_needs_no_key(anon: TestClient) -> None:
    spec = _spec(anon)
    assert spec["openapi"].startswith("3.1.")
    validate_openapi(spec)


# Routes outside the API: the site's uploaded files, served like its pages.
NOT_API = {"/uploads/{path:path}"}


def test_every_route_of_the_app_is_declared_and_in_the_spec(app: Starlette, anon: TestClient) -> None:
    """Each API route has one declaration (cms/api/operations.py), and that declaration is in the spec."""
    spec = _spec(anon)
    undeclared, missing = [], []
    for route in app.routes:
        assert isinstance(route, Route)
        if not route.include_in_schema:
            assert route.path in NOT_API, f"{route.path} left out of the API's document"
            continue
        op = declared(route.endpoint)
        if op is None:
            undeclared.append(f"{route.methods} {route.path}")
            continue
        assert route.methods == {op.method} | ({"HEAD"} if op.method == "GET" else set())
        if op.method.lower() not in spec["paths"].get(spec_path(route.path), {}):
            missing.append(f"{op.method} {route.path}")
    assert not undeclared, f"routes without a declaration: {undeclared}"
    assert not missing, f"routes missing from the spec: {missing}"
    assert {r.path for r in app.routes if isinstance(r, Route) and not r.include_in_schema} == NOT_API


def test_every_operation_of_the_spec_is_a_route(app: Starlette, anon: TestClient) -> None:
    spec = _spec(anon)
    unserved = []
    for path, method, op in _operations(spec):
        assert not op.get("x-undocumented"), f"{method.upper()} {path} has no description in cms/api/openapi.py"
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        scope = {"type": "http", "path": concrete, "method": method.upper(), "root_path": ""}
        if not any(route.matches(scope)[0] is Match.FULL for route in app.routes):  # type: ignore[attr-defined]
            unserved.append(f"{method.upper()} {path}")
    assert not unserved, f"spec operations no route serves: {unserved}"


def test_operation_ids_are_unique_and_tags_declared(anon: TestClient) -> None:
    spec = _spec(anon)
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    declared = {t["name"] for t in spec["tags"]}
    for path, method, op in _operations(spec):
        assert op["tags"] and set(op["tags"]) <= declared, f"{method} {path}"
        assert op["summary"]


def test_path_parameters_are_declared(anon: TestClient) -> None:
    spec = _spec(anon)
    for path, method, _ in _operations(spec):
        assert set(re.findall(r"\{([^}]+)\}", path)) == _params(spec, path, method, "path"), f"{method} {path}"


# -- security -----------------------------------------------------------------------------


def test_security_schemes_and_per_operation_requirements(anon: TestClient) -> None:
    spec = _spec(anon)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {**schemes["ApiKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert "ApiTokenQuery" not in schemes  # api.allow_query_token is off on this site
    for path, method, op in _operations(spec):
        if (path, method) in PUBLIC:
            assert op["security"] == [], f"{method} {path} needs no key"
            continue
        names = [next(iter(req), None) for req in op["security"]]
        assert names[:2] == ["ApiKeyHeader", "Bearer"], f"{method} {path}"
        assert "401" in op["responses"] and "429" in op["responses"]
        if op["x-scope"] != "any":
            assert op["security"][0]["ApiKeyHeader"] == [op["x-scope"]]
            assert "403" in op["responses"]


def test_public_types_allow_anonymous_reads(make_site: Any) -> None:
    from cms.api.app import create_app

    site: Site = make_site(
        {"content/posts/a.md": "---\ntitle: A\n---\nBody\n"},
        config='[site]\ntitle = "T"\n[api]\npublic_types = ["posts"]\nallow_query_token = true\n',
    )
    state = State(site.state_dir)
    try:
        spec = _spec(TestClient(create_app(site, state=state)))
    finally:
        state.close()
    assert {} in spec["paths"]["/api/v1/posts"]["get"]["security"]
    assert {} in spec["paths"]["/api/v1/posts/{ref}"]["get"]["security"]
    assert {} not in spec["paths"]["/api/v1/pages"]["get"]["security"]
    assert {} not in spec["paths"]["/api/v1/posts"]["post"]["security"]
    assert spec["components"]["securitySchemes"]["ApiTokenQuery"]["in"] == "query"


# -- parameters ---------------------------------------------------------------------------


def test_query_parameters_are_the_ones_each_handler_accepts(anon: TestClient) -> None:
    spec = _spec(anon)
    listing = set(PARAMS) | {"render"}
    for path in ("/api/v1/posts", "/api/v1/pages", "/api/v1/content", "/api/v1/content/{type}"):
        assert _params(spec, path, "get") == listing, path
    assert _params(spec, "/api/v1/posts/{ref}", "get") == {"fields", "render"}
    assert _params(spec, "/api/v1/posts/by-slug/{slug}", "get") == {"fields", "render"}
    assert _params(spec, "/api/v1/posts/{ref}", "delete") == {"permanent"}
    assert _params(spec, "/api/v1/posts/{ref}", "delete", "header") == {"If-Match"}
    assert _params(spec, "/api/v1/posts/{ref}", "get", "header") == {"If-None-Match"}
    assert _params(spec, "/api/v1/content-types/{name}", "delete") == {"force"}
    assert _params(spec, "/api/v1/categories", "get") == {"nested", "order_by", "hide_empty"}
    assert _params(spec, "/api/v1/audit", "get") == {"page", "per_page", "action", "key_id"}
    filters = next(p for p in spec["paths"]["/api/v1/posts"]["get"]["parameters"] if p["name"] == "filters")
    assert filters["style"] == "deepObject"


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("/api/v1/posts", {"page": "1", "status": "draft", "filters[title]": "x", "render": "html", "seed": "3"}),
        ("/api/v1/posts/pour-over-basics", {"fields": "title", "render": "html"}),
        ("/api/v1/categories", {"nested": "true", "order_by": "count", "hide_empty": "1"}),
        ("/api/v1/audit", {"page": "1", "per_page": "5", "action": "posts", "key_id": "x"}),
    ],
)
def test_declared_parameters_are_accepted_and_others_refused(
    admin: TestClient, path: str, values: dict[str, str]
) -> None:
    spec = _spec(admin)
    template = path if path in spec["paths"] else "/api/v1/posts/{ref}"
    declared = _params(spec, template, "get")
    assert {k.split("[")[0] for k in values} <= declared
    assert admin.get(path, params=values).status_code == 200
    assert_error(admin.get(path, params={"bogus": "1"}), 400, "BAD_REQUEST")
    assert "400" in spec["paths"][template]["get"]["responses"]


def test_an_unknown_query_parameter_is_a_documented_400(admin: TestClient) -> None:
    spec = _spec(admin)
    for path, method, op in _operations(spec):
        if method != "get" or path == "/uploads/{path}":  # a file route ignores its query string
            continue
        values = {p["name"]: p.get("example") or "x" for p in op.get("parameters", []) if p["in"] == "path"}
        url = path
        for name, value in values.items():
            url = url.replace("{" + name + "}", str(value))
        response = admin.get(url, params={"zz_unknown": "1"})
        assert str(response.status_code) in op["responses"], f"GET {url}: {response.status_code} undocumented"
        if response.status_code != 404:  # a path that names nothing may answer 404 first
            assert_error(response, 400, "BAD_REQUEST")


def test_if_match_is_required_where_the_site_requires_it(make_site: Any) -> None:
    from cms.api.app import create_app

    site: Site = make_site(config='[site]\ntitle = "T"\n[api]\nrequire_if_match = true\n')
    state = State(site.state_dir)
    try:
        spec = _spec(TestClient(create_app(site, state=state)))
    finally:
        state.close()
    for method in ("put", "patch", "delete"):
        op = spec["paths"]["/api/v1/posts/{ref}"][method]
        assert next(p for p in op["parameters"] if p["name"] == "If-Match")["required"] is True
        assert "428" in op["responses"]
    publish = spec["paths"]["/api/v1/posts/{ref}/publish"]["post"]
    assert next(p for p in publish["parameters"] if p["name"] == "If-Match")["required"] is False


# -- bodies and responses -----------------------------------------------------------------


def test_a_custom_types_fields_appear_typed(anon: TestClient) -> None:
    spec = _spec(anon)
    data = _schema(spec, "ProductsInput")["properties"]["data"]
    assert data["additionalProperties"] is False
    props = data["properties"]
    assert props["price"] == {**props["price"], "type": "number", "minimum": 0}
    assert props["sku"] == {**props["sku"], "type": "string", "maxLength": 32, "minLength": 1}
    assert props["in_stock"]["type"] == ["boolean", "null"] and props["in_stock"]["default"] is True
    assert props["weight_grams"] == {**props["weight_grams"], "type": ["integer", "null"], "minimum": 0}
    assert props["roast"]["enum"] == ["light", "medium", "dark", None]
    assert props["origin"]["type"] == ["string", "null"]
    assert "type" not in props["gallery"]  # json: anything
    # Responses carry the same types; the create body requires what has no default.
    assert _schema(spec, "Products")["properties"]["data"]["properties"]["price"]["type"] == "number"
    assert _schema(spec, "Products")["properties"]["type"] == {"const": "products"}
    create = spec["paths"]["/api/v1/content/products"]["post"]["requestBody"]["content"]["application/json"]
    refinement = create["schema"]
    assert refinement["properties"]["data"]["required"] == ["price", "sku"]
    assert create["example"]["data"] == {"price": 0, "sku": "example"}
    put = spec["paths"]["/api/v1/content/products/{ref}"]["put"]["requestBody"]["content"]["application/json"]
    assert put["schema"]["properties"]["data"]["required"] == ["price", "sku"]
    for suffix in ("", "/{ref}", "/by-slug/{slug}", "/{ref}/publish", "/{ref}/unpublish", "/{ref}/restore"):
        assert f"/api/v1/content/products{suffix}" in spec["paths"]


def test_the_base_fields_of_an_input(anon: TestClient) -> None:
    spec = _spec(anon)
    props = _schema(spec, "PostsInput")["properties"]
    expected = {
        "title",
        "content",
        "slug",
        "excerpt",
        "status",
        "published_at",
        "expires_at",
        "tags",
        "categories",
        "author",
        "featured_image",
        "seo_title",
        "seo_description",
        "aliases",
        "data",
        "localize_images",
    }
    assert set(props) == expected
    assert props["status"]["enum"] == ["draft", "published", "scheduled", "trash"]
    assert props["published_at"]["format"] == "date-time"
    assert props["title"]["maxLength"] == 500 and props["seo_description"]["maxLength"] == 160
    assert _schema(spec, "PostsInput")["properties"]["data"].get("additionalProperties") is not False


@pytest.mark.parametrize("ftype", sorted(FIELD_TYPES))
def test_each_field_type_maps_to_json_schema(ftype: str) -> None:
    expected = {
        "text": {"type": ["string", "null"]},
        "markdown": {"type": ["string", "null"]},
        "image": {"type": ["string", "null"]},
        "reference": {"type": ["string", "array", "null"], "items": {"type": "string"}},
        "number": {"type": ["number", "null"]},
        "integer": {"type": ["integer", "null"]},
        "boolean": {"type": ["boolean", "null"]},
        "date": {"type": ["string", "null"], "format": "date"},
        "datetime": {"type": ["string", "null"], "format": "date-time"},
        "select": {"enum": ["a", "b", None]},
        "tags": {"type": ["array", "string", "null"], "items": {"type": "string"}},
        "list": {"type": ["array", "null"], "items": {"type": "string"}},
        "json": {},
    }
    options = ("a", "b") if ftype == "select" else ()
    assert field_schema(Field("f", ftype, options=options)) == expected[ftype]


def test_field_limits_and_required(anon: TestClient) -> None:
    schema = field_schema(Field("n", "integer", required=True, min=1, max=9, label="N", help="how many"))
    assert schema == {"type": "integer", "minimum": 1, "maximum": 9, "title": "N", "description": "how many; required"}
    assert field_schema(Field("t", "text", max_length=3))["maxLength"] == 3
    assert field_schema(Field("l", "list", max_length=2, required=True)) == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 2,
        "minItems": 1,
        "description": "required",
    }


def test_a_documents_json_has_exactly_the_documented_fields(admin: TestClient) -> None:
    spec = _spec(admin)
    post = admin.get("/api/v1/posts/pour-over-basics").json()["data"]
    assert set(post) == set(_schema(spec, "Posts")["required"])


def test_real_answers_conform_to_their_schemas(admin: TestClient) -> None:
    spec = _spec(admin)
    for path, template in [
        ("/api/v1/health", "/api/v1/health"),
        ("/api/v1/settings", "/api/v1/settings"),
        ("/api/v1/posts?status=any&per_page=100", "/api/v1/posts"),
        ("/api/v1/posts?fields=title,data.x,-id&search=coffee", "/api/v1/posts"),
        ("/api/v1/pages?render=html", "/api/v1/pages"),
        ("/api/v1/content?per_page=100", "/api/v1/content"),
        ("/api/v1/content/products?status=any", "/api/v1/content/products"),
        ("/api/v1/content/products/kenya-kiambu-aa", "/api/v1/content/products/{ref}"),
        ("/api/v1/posts/pour-over-basics", "/api/v1/posts/{ref}"),
        ("/api/v1/categories?nested=true", "/api/v1/categories"),
        ("/api/v1/tags", "/api/v1/tags"),
        ("/api/v1/categories/espresso", "/api/v1/categories/{slug}"),
        ("/api/v1/authors", "/api/v1/authors"),
        ("/api/v1/users/mara-okafor", "/api/v1/users/{slug}"),
        ("/api/v1/content-types", "/api/v1/content-types"),
        ("/api/v1/content-types/posts", "/api/v1/content-types/{name}"),
        ("/api/v1/api-keys", "/api/v1/api-keys"),
        ("/api/v1/api-key/status", "/api/v1/api-key/status"),
        ("/api/v1/webhooks", "/api/v1/webhooks"),
        ("/api/v1/posts/nope", "/api/v1/posts/{ref}"),
        ("/api/v1/posts?page=0", "/api/v1/posts"),
    ]:
        _conforms(spec, template, "get", admin.get(path))
    created = admin.post(
        "/api/v1/content/products", json={"title": "Filter papers", "data": {"price": 4.5, "sku": "CC-FP"}}
    )
    assert created.status_code == 201, created.text
    _conforms(spec, "/api/v1/content/products", "post", created)
    invalid = admin.post("/api/v1/content/products", json={"title": "X", "data": {"price": "free"}})
    _conforms(spec, "/api/v1/content/products", "post", invalid)
    key = admin.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read"], "with_secret": True})
    _conforms(spec, "/api/v1/api-keys", "post", key)
    _conforms(spec, "/api/v1/audit", "get", admin.get("/api/v1/audit"))


# -- the spec follows the content types ---------------------------------------------------


def test_changing_a_type_through_the_api_changes_the_spec(admin: TestClient) -> None:
    before = admin.get("/api/v1/openapi.json")
    assert admin.get("/api/v1/openapi.json").content == before.content  # cached, stable
    grind = {"name": "grind", "type": "select", "options": ["fine", "coarse"], "required": True}
    current = admin.get("/api/v1/content-types/products").json()["data"]["fields"]
    response = admin.patch("/api/v1/content-types/products", json={"fields": [*current, grind]})
    assert response.status_code == 200, response.text
    spec = _spec(admin)
    assert _schema(spec, "ProductsInput")["properties"]["data"]["properties"]["grind"]["enum"] == ["fine", "coarse"]
    create = spec["paths"]["/api/v1/content/products"]["post"]["requestBody"]["content"]["application/json"]
    assert "grind" in create["schema"]["properties"]["data"]["required"]

    fields = [{"name": "starts", "type": "datetime", "required": True}, {"name": "seats", "type": "integer", "min": 1}]
    assert admin.post("/api/v1/content-types", json={"name": "events", "fields": fields}).status_code == 201
    spec = _spec(admin)
    assert "/api/v1/content/events/{ref}" in spec["paths"]
    props = _schema(spec, "EventsInput")["properties"]["data"]["properties"]
    assert props["starts"] == {"type": "string", "format": "date-time", "minLength": 1, "description": "required"}
    assert props["seats"]["minimum"] == 1
    assert any(t["name"] == "events" for t in spec["tags"])

    assert admin.delete("/api/v1/content-types/events").status_code == 204
    assert "/api/v1/content/events" not in _spec(admin)["paths"]


def test_type_names_never_replace_shared_schemas(admin: TestClient) -> None:
    for name in ("term", "media-item", "document"):
        assert admin.post("/api/v1/content-types", json={"name": name}).status_code == 201
    spec = _spec(admin)
    validate_openapi(spec)
    assert "post_count" in _schema(spec, "Term")["properties"]
    assert "checksum" in _schema(spec, "MediaItem")["properties"]
    assert _schema(spec, "Document")["properties"]["type"] == {"type": "string"}
    assert _schema(spec, "Term2")["properties"]["type"] == {"const": "term"}
    assert _schema(spec, "MediaItem2")["properties"]["type"] == {"const": "media-item"}
    assert _schema(spec, "Document2")["properties"]["type"] == {"const": "document"}
    assert "Term2Input" in spec["components"]["schemas"]


# -- nothing private in the spec ----------------------------------------------------------


def test_no_secrets_or_file_system_paths_in_the_spec(
    admin: TestClient, site: Site, state: State, tokens: dict[str, str]
) -> None:
    issued = admin.post("/api/v1/api-keys", json={"name": "bot", "scopes": ["write"], "with_secret": True}).json()
    hook = admin.post(
        "/api/v1/webhooks", json={"name": "h", "url": "https://93.184.216.34/hook", "secret": "s" * 24}
    ).json()
    text = admin.get("/api/v1/openapi.json").text
    secrets = [*tokens.values(), issued["data"]["key"], issued["data"]["secret"], "s" * 24]
    secrets.append(state.secret("key-pepper").hex())
    for secret in secrets:
        assert secret not in text
    assert hook["data"]["id"] not in text
    for path in (str(site.root), str(site.content_dir), str(site.state_dir), str(site.root.parent)):
        assert path not in text
    assert not re.search(r"(/home/|/tmp/|/var/|[A-Z]:\\\\|\.cms/)", text)
    assert "mara@" not in text
    # Only published documents lend their slugs as examples: drafts stay unnamed.
    for draft in (*DEMO_DRAFTS, DEMO_SCHEDULED):
        assert draft not in text


def test_the_openapi_endpoint_refuses_unknown_parameters(anon: TestClient) -> None:
    assert_error(anon.get("/api/v1/openapi.json?x=1"), 400, "BAD_REQUEST")
    assert_error(anon.get("/api/docs?x=1"), 400, "BAD_REQUEST")


# -- the docs page ------------------------------------------------------------------------


def test_the_docs_page_is_self_contained(anon: TestClient) -> None:
    response = anon.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert DOCS_CSP == (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    html = response.text
    # Nothing is loaded or linked from elsewhere: no src, no stylesheet link, no CSS import or url().
    assert not re.search(r"<(script|img|iframe|link|source|video|audio)\b[^>]*\s(src|href|srcset)=", html)
    assert not re.search(r"@import|url\(", html)
    assert not re.search(r"(href|action|formaction)=[\"']?(https?:)?//", html)
    # Absolute URLs appear only as text inside request examples, on reserved example domains.
    hosts = set(re.findall(r"https?://([^/\s\"'<&]+)", html))
    assert all(re.fullmatch(r"([a-z0-9-]+\.)*example\.(org|com|net)", h) for h in hosts), hosts


def test_the_docs_page_lists_every_endpoint_by_tag(anon: TestClient) -> None:
    spec = _spec(anon)
    html = anon.get("/api/docs").text
    for tag in spec["tags"]:
        assert f'id="tag-{tag["name"].replace("/", "-")}"' in html
    for path, method, op in _operations(spec):
        assert f'id="op-{op["operationId"]}"' in html, f"{method} {path}"
        assert f"<span class=path>{path}</span>" in html
    assert "If-Match" in html and "ProductsInput" in html and "sku" in html


def test_the_docs_page_escapes_what_it_shows(admin: TestClient) -> None:
    body = {"name": "notes", "label": "<script>alert(1)</script>", "description": "<img src=x onerror=alert(1)>"}
    assert admin.post("/api/v1/content-types", json=body).status_code == 201
    html = admin.get("/api/docs").text
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
