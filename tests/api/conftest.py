"""Fixtures layered site -> index -> app -> clients (one TestClient per key scope), and the table of
every API endpoint that the scope matrix and the unknown-parameter sweep share.

The clock is fixed at 2026-11-24 12:00 UTC so the demo site's dated posts keep their statuses:
`winter-blend-2027` is scheduled; `grinder-buying-guide` and `home-roasting-first-steps` are drafts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.app import api_routes, create_app
from cms.api.http import Services
from cms.api.operations import ANY_KEY, Operation, declared_operations
from cms.auth import Keys
from cms.config import Site
from cms.content.index import Index
from cms.state import State
from tests.support import DEMO_DRAFTS, DEMO_NOW, DEMO_PUBLISHED, DEMO_SCHEDULED, Clock

NOW = DEMO_NOW
SCOPES = ("read", "write", "delete", "admin")
IMAGE = "images/hero.jpg"  # a file under the test site's uploads/
DRAFT = DEMO_DRAFTS[0]
SCHEDULED = DEMO_SCHEDULED
PUBLISHED = DEMO_PUBLISHED


def unlimited(site: Site) -> Site:
    """The site with rate limits out of the way: these tests send hundreds of requests a minute."""
    api = dataclasses.replace(
        site.api, rate_limit_per_minute=10**9, rate_limit_per_day=10**9, failed_auth_per_minute=10**9
    )
    return dataclasses.replace(site, api=api)


def with_upload(site: Site) -> Site:
    """Give the site one upload, so featured_image has something to point at."""
    image = site.uploads_dir / IMAGE
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return site


@pytest.fixture
def site(demo_site: Site) -> Site:
    return unlimited(with_upload(demo_site))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def index(site: Site) -> Index:
    return Index.load(site, background_search=False)


def fast_state(folder: Path) -> State:
    """The site's state database without an fsync per commit: durability has its own tests."""
    st = State(folder)
    st._db.execute("PRAGMA synchronous=OFF")
    return st


@pytest.fixture
def state(site: Site) -> Iterator[State]:
    st = fast_state(site.state_dir)
    yield st
    st.close()


@pytest.fixture
def app(site: Site, index: Index, state: State, clock: Clock) -> Starlette:
    return create_app(site, index=index, state=state, clock=clock)


@pytest.fixture
def svc(app: Starlette) -> Services:
    return app.state.services  # type: ignore[no-any-return]


@pytest.fixture
def key_store(state: State, clock: Clock) -> Keys:
    return Keys(state, clock)


@pytest.fixture
def tokens(key_store: Keys) -> dict[str, str]:
    """One token per scope: {"read": "cms_...", "write": ..., "delete": ..., "admin": ...}."""
    return {scope: key_store.create(f"{scope} key", [scope]).token for scope in SCOPES}


def client(app: Starlette, token: str | None = None, *, bearer: bool = False) -> TestClient:
    """A client sending `token` as X-API-Key (or as a Bearer token); a 500 comes back as a response."""
    headers = {}
    if token is not None:
        headers = {"Authorization": f"Bearer {token}"} if bearer else {"X-API-Key": token}
    return TestClient(app, headers=headers, raise_server_exceptions=False)


@pytest.fixture
def anon(app: Starlette) -> TestClient:
    return client(app)


@pytest.fixture
def reader(app: Starlette, tokens: dict[str, str]) -> TestClient:
    return client(app, tokens["read"])


@pytest.fixture
def writer(app: Starlette, tokens: dict[str, str]) -> TestClient:
    return client(app, tokens["write"])


@pytest.fixture
def deleter(app: Starlette, tokens: dict[str, str]) -> TestClient:
    return client(app, tokens["delete"])


@pytest.fixture
def admin(app: Starlette, tokens: dict[str, str]) -> TestClient:
    return client(app, tokens["admin"])


# -- assertions ------------------------------------------------------------------------------


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under root by relative path, leaving out the top-level entries in `skip`."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file():
            continue
        out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


# -- every endpoint, with a fresh target per request -------------------------------------------

_serial = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """One (method, path) of the API and the least scope it needs (None: no key at all).

    `{post}`, `{page}`, `{product}` (published), `{trashed}`, `{trashed_page}`, `{trashed_product}`,
    `{type}`, `{category}`, `{tag}` and `{key}` in the path are replaced by an object created for the
    request (see `prepare`), and `{n}` in the body by a serial number, so bodies never collide.
    """

    method: str
    path: str
    scope: str | None
    body: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def expected(self, scope: str | None) -> int:
        """The status class (200, 401, 403 or 404) a key with `scope` (None: no key) gets."""
        if self.scope is None:
            return 200
        if scope is None:
            return 401
        implied = {"read": {"read"}, "write": {"read", "write"}, "delete": {"read", "delete"}, "admin": set(SCOPES)}
        if self.scope in implied[scope]:
            return 200
        return 403  # the scope is checked first: a read key learns nothing of the target


@dataclass
class Prepared:
    path: str
    body: dict[str, Any] | None = field(default=None)


def prepare(svc: Services, endpoint: Endpoint, reuse: dict[str, str] | None = None) -> Prepared:
    """Create the endpoint's target objects and fill in its path and body.

    With `reuse`, the path made for an endpoint is kept there and given again until the caller
    drops it (after a request that may have used the target up succeeded).
    """
    n = next(_serial)
    body = None
    if endpoint.body is not None:
        body = {k: v.replace("{n}", str(n)) if isinstance(v, str) else v for k, v in endpoint.body.items()}
    if reuse is not None and endpoint.id in reuse:
        return Prepared(reuse[endpoint.id], body)
    store = svc.store
    makers: dict[str, Callable[[], str]] = {
        "post": lambda: store.create("posts", {"title": f"Target {n}", "content": "x", "status": "published"}).id,
        "trashed": lambda: store.create("posts", {"title": f"Trashed {n}", "content": "x", "status": "trash"}).id,
        "page": lambda: store.create("pages", {"title": f"Page {n}", "content": "x", "status": "published"}).id,
        "trashed_page": lambda: store.create("pages", {"title": f"Page {n}", "content": "x", "status": "trash"}).id,
        "product": lambda: (
            store.create("products", {"title": f"Product {n}", "price": 5, "sku": f"T-{n}", "status": "published"}).id
        ),
        "trashed_product": lambda: (
            store.create("products", {"title": f"Product {n}", "price": 5, "sku": f"T-{n}", "status": "trash"}).id
        ),
        "type": lambda: store.save_type(f"type{n}", {"fields": [{"name": "x"}]}, creating=True).name,
        "category": lambda: store.save_term("categories", None, {"name": f"Category {n}"}, creating=True).slug,
        "tag": lambda: store.save_term("tags", None, {"name": f"Tag {n}"}, creating=True).slug,
        "key": lambda: svc.keys.create(f"target {n}", ["read"]).key.id,
    }
    path = endpoint.path
    for name, make in makers.items():
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", make())
    if reuse is not None:
        reuse[endpoint.id] = path
    return Prepared(path, body)


POST_BODY = {"title": "New {n}", "content": "Body."}
PRODUCT_BODY = {"title": "Product {n}", "content": "", "price": 9.5, "sku": "NEW-{n}"}
# Tested elsewhere, with what they need: webhooks (a receiver), media (images), the document itself.
OWN_TESTS = {"webhooks": "test_webhooks_api.py", "media": "test_media_api.py", "meta": "test_openapi.py"}
# A write to a term, a type or a key gets a fresh one from `prepare`; a read names one of the demo's.
_TARGETS = {
    "/api/v1/categories/{slug}": ("/api/v1/categories/brewing", "/api/v1/categories/{category}"),
    "/api/v1/tags/{slug}": ("/api/v1/tags/pour-over", "/api/v1/tags/{tag}"),
    "/api/v1/taxonomies/{taxonomy}/{slug}": (
        "/api/v1/taxonomies/categories/brewing",
        "/api/v1/taxonomies/categories/{category}",
    ),
    "/api/v1/taxonomies/{taxonomy}": ("/api/v1/taxonomies/categories", "/api/v1/taxonomies/tags"),
    "/api/v1/authors/{slug}": ("/api/v1/authors/mara-okafor", None),
    "/api/v1/users/{slug}": ("/api/v1/users/jonas-lindqvist", None),
    "/api/v1/content-types/{name}": ("/api/v1/content-types/products", "/api/v1/content-types/{type}"),
}
# Bodies whose declared example would collide when sent once per scope.
_UNIQUE_BODIES = {
    "/api/v1/content-types": {"name": "made{n}", "fields": [{"name": "x"}]},
    "/api/v1/categories": {"name": "Category made {n}"},
    "/api/v1/tags": {"name": "Tag made {n}"},
    "/api/v1/taxonomies/{taxonomy}": {"name": "Term made {n}"},
    "/api/v1/api-keys": {"name": "made {n}", "scopes": ["read"]},
}
_DOCUMENTS = {  # family -> (type in the path, target, trashed target, a published slug)
    "posts": ("posts", "{post}", "{trashed}", PUBLISHED),
    "pages": ("pages", "{page}", "{trashed_page}", "about"),
    "{type}": ("products", "{product}", "{trashed_product}", "kenya-kiambu-aa"),
}


def _endpoint(op: Operation) -> Endpoint:
    """The declared operation made concrete: a path with targets and a body that never collides."""
    path, body = op.path, op.example
    scope = "read" if op.scope == ANY_KEY else op.scope  # any key: the least scope is enough
    if op.content_type is not None:
        type_name, target, trashed, slug = _DOCUMENTS[op.content_type]
        path = path.replace("{type}", type_name).replace("{slug}", slug)
        path = path.replace("{ref}", trashed if path.endswith("/restore") else target)
        if op.method in ("POST", "PUT") and op.body is not None:
            body = PRODUCT_BODY if type_name == "products" else POST_BODY
        elif op.method == "PATCH":
            body = {"price": 11} if type_name == "products" else {"title": "Patched {n}"}
        return Endpoint(op.method, path, scope, body)
    if path in _TARGETS:
        read, write = _TARGETS[path]
        path = read if op.method == "GET" or write is None else write
    path = path.replace("{id}", "{key}")  # api-keys: a key made for the request
    if op.method == "POST" and op.path in _UNIQUE_BODIES:
        body = _UNIQUE_BODIES[op.path]
    return Endpoint(op.method, path, scope, body)


# Every declared operation, made concrete: a new operation joins every test that iterates these.
ENDPOINTS = tuple(_endpoint(op) for op in declared_operations(api_routes()) if op.tag not in OWN_TESTS)


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One demo site for a whole module whose tests each create what they change (see `prepare`)."""
    import shutil

    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("shared") / "demo"
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "cms.toml", root / "cms.toml")
    return unlimited(with_upload(Site.load(root)))


@pytest.fixture(scope="module")
def shared_app(shared_site: Site) -> Iterator[Starlette]:
    st = fast_state(shared_site.state_dir)
    clock = Clock()
    yield create_app(shared_site, index=Index.load(shared_site, background_search=False), state=st, clock=clock)
    st.close()


@pytest.fixture(scope="module")
def shared_tokens(shared_app: Starlette) -> dict[str, str]:
    keys: Keys = shared_app.state.services.keys
    return {scope: keys.create(f"{scope} key", [scope]).token for scope in SCOPES}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability has its own tests (tests/reliability); here an fsync per write only costs time."""
    monkeypatch.setattr("os.fsync", lambda fd: None)
