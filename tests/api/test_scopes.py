"""Scope matrix: every (method, endpoint) x {no key, read, write, delete, admin} x {X-API-Key, Bearer}.

Write and delete include read; admin includes everything. A request refused for its scope must
also leave the target as it was: the refusal comes before any write.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from cms.api.app import api_routes
from cms.api.http import Services
from cms.api.operations import declared_operations

from .conftest import ENDPOINTS, OWN_TESTS, SCOPES, Endpoint, assert_error, client, prepare

CODES = {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}
CASES = [
    pytest.param(endpoint, scope, style, id=f"{endpoint.id} {scope or 'no-key'} {style}")
    for endpoint in ENDPOINTS
    for scope in (None, *SCOPES)
    for style in (("x-api-key",) if scope is None else ("x-api-key", "bearer"))
]


@pytest.fixture(scope="module")
def targets() -> dict[str, str]:
    """Targets kept across the cases of one endpoint: refused requests leave them as they were."""
    return {}


@pytest.mark.parametrize(("endpoint", "scope", "style"), CASES)
def test_scope_matrix(
    shared_app: Starlette,
    shared_tokens: dict[str, str],
    targets: dict[str, str],
    endpoint: Endpoint,
    scope: str | None,
    style: str,
) -> None:
    svc: Services = shared_app.state.services
    prepared = prepare(svc, endpoint, targets)
    token = shared_tokens[scope] if scope else None
    http = client(shared_app, token, bearer=style == "bearer")
    files_before = svc.index.generation
    response = http.request(endpoint.method, prepared.path, json=prepared.body)
    expected = endpoint.expected(scope)
    if expected == 200:
        assert 200 <= response.status_code < 300, response.text
        if endpoint.method != "GET":
            targets.pop(endpoint.id, None)  # deleted, trashed, restored, rotated...: make a new one
        return
    assert_error(response, expected, CODES[expected])
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert svc.index.generation == files_before, "a refused request changed the content"


def test_the_matrix_is_every_declared_operation_but_those_with_their_own_tests() -> None:
    """The matrix is derived from the declarations: an operation cannot be added without joining it,
    unless its resource's own test file covers its scopes."""
    here = Path(__file__).parent
    for op in declared_operations(api_routes()):
        if op.tag in OWN_TESTS:
            assert (here / OWN_TESTS[op.tag]).is_file()
            continue
        assert any(e.method == op.method and _matches(op.path, _shape(e.path)) for e in ENDPOINTS), op.operation_id


def _shape(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/"))


def _matches(template: str, shape: tuple[str, ...]) -> bool:
    parts = _shape(template)
    return len(parts) == len(shape) and all(p.startswith("{") or p == s for p, s in zip(parts, shape, strict=True))
