"""Every write through the store is one git commit, checked with the real `git` command.

The site is a copy of the demo in a fresh repository (tmp_path): each test reads what git itself
says (`git log`, `git show`, `git status --porcelain`), never the library that wrote it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cms.config import Site
from cms.content.index import Index
from cms.content.store import Store
from cms.history.actor import Actor, acting_as

KEY = Actor("deploy bot", "k_0123@example.com", "k_0123")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(demo_site: Site) -> Site:
    root = demo_site.root
    (root / ".gitignore").write_text(".cms/\npublic/\n")  # as `cms init` writes it: local state stays out
    config = root / "cms.toml"  # the bundled demo keeps commits out of the CMS's own repository
    config.write_text(config.read_text().replace("commit = false", "commit = true"))
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Ada Person")
    git(root, "config", "user.email", "ada@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the site as it was")
    return Site.load(root)


@pytest.fixture
def store(repo: Site) -> Store:
    return Store(repo, Index.load(repo, background_search=False))


def log(root: Path) -> list[str]:
    """`author name|subject` of each commit, newest first."""
    return git(root, "log", "--format=%an|%s").splitlines()


def test_each_write_is_one_commit_of_exactly_its_file(store: Store) -> None:
    root = store.site.root
    with acting_as(KEY):
        doc = store.create("posts", {"title": "Hello git", "content": "First."})
        store.update(doc, {"title": "Hello again"})
        store.set_status(store.index.get(doc.id), "published")
    assert log(root)[:3] == [
        "deploy bot|published posts/hello-git",
        "deploy bot|updated posts/hello-git",
        "deploy bot|created posts/hello-git",
    ]
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["content/posts/hello-git.md"]
    assert (
        git(root, "show", "HEAD:content/posts/hello-git.md").encode()
        == (root / "content/posts/hello-git.md").read_bytes()
    )
    assert git(root, "status", "--porcelain") == ""  # the git index knows the new blobs
    body = git(root, "log", "-1", "--format=%ae%n%cn%n%b")
    assert body.splitlines()[:3] == ["k_0123@example.com", "cms", "Key: k_0123"]


def test_a_rename_with_an_edit_is_one_commit(store: Store) -> None:
    root = store.site.root
    doc = store.create("posts", {"title": "Old name", "content": "x"})
    before = len(log(root))
    store.update(doc, {"slug": "new-name", "title": "New title"})
    assert len(log(root)) == before + 1
    assert log(root)[0].endswith("|renamed posts/old-name -> posts/new-name")
    changed = git(root, "show", "--no-renames", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(changed) == ["A\tcontent/posts/new-name.md", "D\tcontent/posts/old-name.md"]
    assert git(root, "status", "--porcelain") == ""


def test_a_delete_is_a_commit_and_leaves_git_clean(store: Store) -> None:
    root = store.site.root
    doc = store.create("posts", {"title": "Short lived", "content": "x"})
    store.delete(store.index.get(doc.id))
    assert log(root)[0].endswith("|deleted posts/short-lived")
    assert git(root, "ls-files", "content/posts/short-lived.md") == ""
    assert git(root, "status", "--porcelain") == ""


def test_without_a_key_the_author_is_gits_user(store: Store) -> None:
    store.create("posts", {"title": "From the CLI", "content": "x"})
    assert log(store.site.root)[0] == "Ada Person|created posts/from-the-cli"


def test_an_uncommitted_hand_edit_is_committed_first_as_its_own(store: Store) -> None:
    """A person's change is never folded into an API commit, nor attributed to a key."""
    root = store.site.root
    doc = store.create("posts", {"title": "Shared", "content": "Body."})
    path = root / "content" / doc.path
    path.write_bytes(path.read_bytes().replace(b"Body.", b"Body, edited by hand."))
    store.index.refresh([doc.path])
    with acting_as(KEY):
        store.update(store.index.get(doc.id), {"title": "Shared and renamed"})
    assert log(root)[:2] == ["deploy bot|updated posts/shared", "Ada Person|external edit posts/shared.md"]
    hand = git(root, "show", "HEAD~1:content/posts/shared.md")
    assert "edited by hand" in hand and "title: Shared\n" in hand
    assert "edited by hand" in git(root, "show", "HEAD:content/posts/shared.md")
    assert git(root, "status", "--porcelain") == ""


def test_other_uncommitted_and_staged_files_stay_out_of_the_commit(store: Store) -> None:
    root = store.site.root
    other = root / "content" / "pages" / "about.md"
    other.write_text(other.read_text() + "\nA hand edit.\n")
    staged = root / "content" / "posts" / "staged.md"
    staged.write_text("---\ntitle: Staged\n---\nx\n")
    git(root, "add", "content/posts/staged.md")
    store.create("posts", {"title": "Mine only", "content": "x"})
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["content/posts/mine-only.md"]
    status = git(root, "status", "--porcelain").splitlines()
    assert sorted(status) == [" M content/pages/about.md", "A  content/posts/staged.md"]


def test_a_commit_made_by_a_person_meanwhile_is_built_upon(store: Store) -> None:
    root = store.site.root
    store.create("posts", {"title": "First", "content": "x"})
    git(root, "commit", "-q", "--allow-empty", "-m", "a person's commit")
    store.create("posts", {"title": "Second", "content": "x"})
    subjects = [line.split("|", 1)[1] for line in log(root)[:3]]
    assert subjects == ["created posts/second", "a person's commit", "created posts/first"]
    git(root, "fsck", "--strict")


def test_history_off_commits_nothing(repo: Site) -> None:
    config = repo.root / "cms.toml"
    config.write_text(config.read_text().replace("commit = true", "commit = false"))
    site = Site.load(repo.root)
    store = Store(site, Index.load(site, background_search=False))
    before = log(site.root)
    store.create("posts", {"title": "Not committed", "content": "x"})
    assert log(site.root) == before
    assert git(site.root, "status", "--porcelain", "--", "content").strip() == "?? content/posts/not-committed.md"


def test_a_site_outside_git_writes_as_before(demo_site: Site) -> None:
    config = demo_site.root / "cms.toml"
    config.write_text(config.read_text().replace("commit = false", "commit = true"))
    demo_site = Site.load(demo_site.root)
    assert demo_site.history.commit
    store = Store(demo_site, Index.load(demo_site, background_search=False))
    assert store.history is None
    doc = store.create("posts", {"title": "No git here", "content": "x"})
    assert (demo_site.content_dir / doc.path).is_file()


def test_an_api_write_is_authored_by_its_key(repo: Site) -> None:
    from starlette.testclient import TestClient

    from cms.api.app import create_app

    app = create_app(repo, index=Index.load(repo, background_search=False))
    issued = app.state.services.keys.create("n8n workflow", ["write"])
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/posts", json={"title": "Via the API", "content": "x"}, headers={"X-API-Key": issued.token}
        )
    assert response.status_code == 201, response.text
    author = git(repo.root, "log", "-1", "--format=%an <%ae>%n%s%n%n%b").splitlines()
    host = urlsplit(repo.site.base_url).hostname
    assert author[0] == f"n8n workflow <{issued.key.id}@{host}>"
    assert author[1] == "created posts/via-the-api"
    assert f"Key: {issued.key.id}" in author


def test_a_held_git_index_lock_never_fails_the_write(store: Store) -> None:
    """A person's running `git` holds .git/index.lock: the commit is still made, the write stands."""
    root = store.site.root
    lock = root / ".git" / "index.lock"
    lock.write_bytes(b"")
    try:
        doc = store.create("posts", {"title": "While git runs", "content": "x"})
    finally:
        lock.unlink()
    assert (store.site.content_dir / doc.path).is_file()
    assert log(root)[0].endswith("|created posts/while-git-runs")
    assert git(root, "show", "HEAD:content/posts/while-git-runs.md").startswith("---")
