"""Schemathesis over every operation of /api/v1/openapi.json against a real `cms serve`, once per scope.

The in-process run (tests/api/test_schemathesis.py) fuzzes the app with an admin key; this one goes
through uvicorn, the real middleware stack and the real watcher, and asks the same questions with no
key and with a key of each scope (read, write, delete, admin). Every answer must:
- not be a server error;
- have a status code and a body the document promises for that operation (so every refusal a scope
  gets is documented);
- carry the error envelope `{"error": {"code", "message", ...}}` when it is a 4xx.

The server can reach only 127.0.0.1 (`[network] public_targets = false`): fuzzed webhook URLs and
`localize_images` bodies are refused before any connection, whatever address they name.
CMS_FUZZ_SERVE_EXAMPLES sets the examples per operation and scope (CI: 3); `python -m bench.fuzz`
runs the same test with many more and prints the figures.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Server, copy_demo, create_key, launch

EXAMPLES = int(os.environ.get("CMS_FUZZ_SERVE_EXAMPLES", "3"))
REPORT = os.environ.get("CMS_FUZZ_SERVE_REPORT")  # bench.fuzz: where to write the answers counted per scope
SCOPES = ("none", "read", "write", "delete", "admin")
# The server may reach nothing but loopback: a fuzzed webhook URL or image URL is never fetched.
CLOSED_NETWORK = '\n[network]\npublic_targets = false\nallowed_hosts = ["127.0.0.1"]\n'


def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer is the project's error envelope with a code and a message."""
    if not 400 <= response.status_code < 500:
        return None
    if not response.request.path_url.startswith(case.operation.path.split("{", 1)[0]):
        return None  # the client resolved a generated dot segment ("x/../0"): another path answered
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} without the error envelope: {response.text[:200]!r}"
    assert isinstance(error.get("code"), str) and error["code"], f"error without a code: {error!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"error without a message: {error!r}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    error_envelope,
]


@dataclass
class Keyring:
    """One key per scope; a key the fuzzer revoked, disabled or rotated is replaced by the CLI."""

    site: Path
    base: str
    tokens: dict[str, str] = field(default_factory=dict)
    replaced: int = 0

    def headers(self, scope: str) -> dict[str, str]:
        return {} if scope == "none" else {"X-API-Key": self.tokens[scope]}

    def mend(self, scope: str) -> None:
        """After a 401 with a key: if the key itself stopped working, make a new one for the scope."""
        if scope == "none":
            return
        status = httpx.get(f"{self.base}/api/v1/api-key/status", headers=self.headers(scope), timeout=10)
        if status.status_code == 401:
            self.tokens[scope] = create_key(self.site, scope)
            self.replaced += 1


@dataclass
class Fuzzed:
    server: Server
    keys: Keyring
    answers: dict[str, Counter[int]] = field(default_factory=dict)  # scope -> status -> count


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp("fuzz-serve")
    site = copy_demo(root / "site")
    with open(site / "cms.toml", "a", encoding="utf-8") as config:
        config.write(CLOSED_NETWORK)
    keys = Keyring(site, "")
    for scope in SCOPES[1:]:
        keys.tokens[scope] = create_key(site, scope)
    server = launch(site, root / "server.log", "--log-level", "warning")
    keys.base = server.base
    fuzz = Fuzzed(server, keys)
    try:
        yield fuzz
    finally:
        if REPORT:
            Path(REPORT).write_text(json.dumps({"answers": fuzz.answers, "keys_replaced": keys.replaced}))
        code, _ = server.stop()
        log = server.stderr()
        assert code is not None, "cms serve ignored SIGINT and was killed"
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def served_schema(fuzzed: Fuzzed) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed.server.base}/api/v1/openapi.json")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # As in tests/api/test_schemathesis.py: schemathesis 4.32 reads `node._nodeid`, gone in pytest 9.2.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("served_schema")


def _fuzz_with(scope: str) -> Any:
    """The fuzz test for one scope (schemathesis' lazy schemas take no pytest parametrization of their own)."""

    @pytest.mark.slow
    @pytest.mark.timeout(600 + 60 * EXAMPLES)
    @schema.parametrize()
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def test(case: Any, fuzzed: Fuzzed) -> None:
        response = case.call(headers=fuzzed.keys.headers(scope), timeout=30)
        fuzzed.answers.setdefault(scope, Counter())[response.status_code] += 1
        if response.status_code == 401 and scope != "none":
            fuzzed.keys.mend(scope)  # the fuzzer may have revoked its own key (admin may revoke any key)
        case.validate_response(response, checks=CHECKS)

    test.__name__ = test.__qualname__ = f"test_real_server_answers_as_documented_with_{scope}_key"
    return test


test_real_server_answers_as_documented_with_none_key = _fuzz_with("none")
test_real_server_answers_as_documented_with_read_key = _fuzz_with("read")
test_real_server_answers_as_documented_with_write_key = _fuzz_with("write")
test_real_server_answers_as_documented_with_delete_key = _fuzz_with("delete")
test_real_server_answers_as_documented_with_admin_key = _fuzz_with("admin")


def test_a_fuzzed_webhook_url_never_leaves_the_machine(fuzzed: Fuzzed) -> None:
    """The closed network the fuzz relies on: a public address is refused when the webhook is saved."""
    for url in ("http://93.184.215.14/hook", "http://[2606:4700:4700::1111]/hook"):
        answer = httpx.post(
            f"{fuzzed.server.base}/api/v1/webhooks",
            headers=fuzzed.keys.headers("admin"),
            json={"name": "outside", "url": url, "events": ["*"]},
            timeout=10,
        )
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and "public_targets" in error["details"]["url"][0]
