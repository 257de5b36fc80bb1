"""An ordinary client generator consumes /api/v1/openapi.json of a real `cms serve`, and its client works (issue 14).

openapi-python-client (pinned in the test extras) generates a client from the served document with its
default settings (no --config). It must:
- finish with exit code 0 and print no warning: a warning means an operation or a response it left out;
- give a client whose models parse the real server's answers: create a post, find it in the list, PATCH
  its title, trash it, delete it for good, then see the 404 — all through the generated functions and
  models, with `raise_on_unexpected_status` so an undocumented status code fails the test.

That the document is strict OpenAPI 3.1 is checked in tests/api/test_openapi.py
(`openapi_spec_validator.validate` picks OpenAPIV31SpecValidator from `openapi: 3.1.x`).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, copy_demo, create_key, launch

GENERATE_TIMEOUT_S = 300  # a hang guard: generating takes seconds, a busy shared machine may take longer
WARNING = re.compile(r"\b(warning|cannot|unable)\b", re.IGNORECASE)

pytestmark = pytest.mark.slow


@dataclass
class Generated:
    server: Server
    spec: Path
    returncode: int
    output: str  # the generator's stdout and stderr
    root: Path  # --output-path: the generated project


def _generator() -> str:
    """The test venv's openapi-python-client: next to sys.executable, else on PATH."""
    beside = Path(sys.executable).parent / "openapi-python-client"
    found = str(beside) if beside.exists() else shutil.which("openapi-python-client")
    assert found, f"openapi-python-client is installed neither beside {sys.executable} nor on PATH"
    return found


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """One server for the module, its document in spec.json and the client generated from it (not judged here)."""
    root = tmp_path_factory.mktemp("generated-client")
    site = copy_demo(root / "site")
    token = create_key(site, "admin")
    server = launch(site, root / "server.log", "--log-level", "warning")
    server.token = token
    try:
        answer = httpx.get(f"{server.base}/api/v1/openapi.json", timeout=10)
        assert answer.status_code == 200, answer.text[:500]
        spec = root / "spec.json"
        spec.write_bytes(answer.content)
        generator = _generator()
        # The generator's post hooks (ruff) are looked up on PATH: the venv's bin first, as in an activated venv.
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(generator).parent), os.environ.get("PATH", "")])}
        run = subprocess.run(
            [generator, "generate", "--path", str(spec), "--output-path", str(root / "client")],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=GENERATE_TIMEOUT_S,
        )
        sys.path.insert(0, str(root / "client"))
        yield Generated(server, spec, run.returncode, run.stdout + run.stderr, root / "client")
    finally:
        if str(root / "client") in sys.path:
            sys.path.remove(str(root / "client"))
        for name, module in list(sys.modules.items()):  # the generated package: no later test imports it
            if str(root / "client") in (getattr(module, "__file__", None) or ""):
                del sys.modules[name]
        code, _ = server.stop()
        assert code is not None, "cms serve ignored SIGINT and was killed"


def _warnings(output: str) -> list[str]:
    """The generator's warning lines, each with the line that follows a "WARNING parsing ..." (its reason)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    found: list[str] = []
    reason_of = -1
    for i, line in enumerate(lines):
        if i == reason_of:
            continue
        if WARNING.search(line):
            if line.startswith("WARNING parsing") and i + 1 < len(lines):
                reason_of = i + 1
                line = f"{line} -> {lines[i + 1][:300]}"
            found.append(line)
    return found


def _package(generated: Generated) -> ModuleType:
    """The generated package: the folder of the output holding client.py (named after the document's title)."""
    assert generated.returncode == 0, f"openapi-python-client exited with {generated.returncode}:\n{generated.output}"
    folders = sorted(path.parent.name for path in generated.root.glob("*/client.py"))
    assert len(folders) == 1, f"no single package with a client.py in {sorted(os.listdir(generated.root))}"
    return importlib.import_module(folders[0])


def _module(package: ModuleType, dotted: str) -> Any:
    """`package.<dotted>`, or a failure that lists what the generator wrote in that folder instead."""
    try:
        return importlib.import_module(f"{package.__name__}.{dotted}")
    except ModuleNotFoundError:
        folder = Path(package.__file__ or "").parent.joinpath(*dotted.split(".")[:-1])
        present = sorted(p.stem for p in folder.glob("*.py")) if folder.is_dir() else []
        pytest.fail(f"the generated client has no {dotted} (the operation was left out?); {folder.name}/: {present}")


def test_openapi_python_client_generates_the_client_without_a_warning(generated: Generated) -> None:
    assert generated.returncode == 0, f"openapi-python-client exited with {generated.returncode}:\n{generated.output}"
    warnings = _warnings(generated.output)
    assert not warnings, "openapi-python-client warned about the served document:\n" + "\n".join(warnings)


def test_the_generated_client_creates_lists_updates_and_deletes_a_post(generated: Generated) -> None:
    package = _package(generated)
    models = _module(package, "models")
    create_posts = _module(package, "api.posts.create_posts")
    list_posts = _module(package, "api.posts.list_posts")
    update_posts = _module(package, "api.posts.update_posts")
    delete_posts = _module(package, "api.posts.delete_posts")
    get_posts = _module(package, "api.posts.get_posts")
    server = generated.server
    title = "Generated client round trip"
    content = "Written by the *generated* client."

    # The default Authorization: Bearer <token>, which the server accepts as well as X-API-Key.
    with package.AuthenticatedClient(
        base_url=server.base, token=server.token, raise_on_unexpected_status=True, timeout=httpx.Timeout(30)
    ) as client:
        body = models.CreatePostsBody.from_dict({"title": title, "content": content, "status": "published"})
        created = create_posts.sync_detailed(client=client, body=body)
        assert created.status_code == 201, created.content[:500]
        assert isinstance(created.parsed, models.CreatePostsResponse201), created.parsed
        post = created.parsed.data
        assert isinstance(post, models.Posts)
        assert post.id and post.title == title and post.status.value == "published"
        assert post.content.strip() == content

        listed = list_posts.sync_detailed(client=client, per_page=100)
        assert listed.status_code == 200, listed.content[:500]
        assert isinstance(listed.parsed, models.ListPostsResponse200), listed.parsed
        assert listed.parsed.pagination.total >= 1
        found = [item for item in listed.parsed.data if item.id == post.id]
        assert len(found) == 1 and found[0].title == title, [item.id for item in listed.parsed.data]

        renamed = update_posts.sync_detailed(post.id, client=client, body=models.PostsInput(title="Renamed"))
        assert renamed.status_code == 200, renamed.content[:500]
        assert isinstance(renamed.parsed, models.UpdatePostsResponse200), renamed.parsed
        assert renamed.parsed.data.id == post.id
        assert renamed.parsed.data.title == "Renamed" and renamed.parsed.data.content.strip() == content

        trashed = delete_posts.sync_detailed(post.id, client=client)
        assert trashed.status_code == 200, trashed.content[:500]
        assert isinstance(trashed.parsed, models.DeletePostsResponse200), trashed.parsed
        assert trashed.parsed.data.id == post.id and trashed.parsed.data.status.value == "trash"

        gone = delete_posts.sync_detailed(post.id, client=client, permanent=True)
        assert gone.status_code == 204, gone.content[:500]
        assert gone.parsed is None

        missing = get_posts.sync_detailed(post.id, client=client)
        assert missing.status_code == 404, missing.content[:500]
        assert isinstance(missing.parsed, models.Error), missing.parsed
        assert missing.parsed.error.code and missing.parsed.error.message
