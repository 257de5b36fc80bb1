"""The benchmark corpus: byte-identical for a seed, loads without problems, has the promised shape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.corpus import AUTHORS, CATEGORIES, N_TAG_FILES, generate
from cms.config import Site
from cms.content.index import Index
from cms.content.model import Status
from cms.content.names import is_id
from cms.content.ulid import id_time_ms

NOW = datetime(2030, 1, 1, tzinfo=UTC)  # after every ordinary post date, long before the scheduled ones


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(root: Path) -> Index:
    return Index.load(Site.load(root), fill_search=True, background_search=False)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Index:
    root = tmp_path_factory.mktemp("bench") / "site"
    generate(root, 300, seed=5)
    return _load(root)


def test_same_seed_writes_identical_trees(tmp_path: Path) -> None:
    generate(tmp_path / "a", 30, seed=3)
    generate(tmp_path / "b", 30, seed=3)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert len(first) == 1 + 1 + 30 + len(CATEGORIES) + N_TAG_FILES + len(AUTHORS)  # cms.toml, _type.yaml


def test_another_seed_writes_other_posts(tmp_path: Path) -> None:
    generate(tmp_path / "a", 30, seed=3)
    generate(tmp_path / "b", 30, seed=4)
    assert _tree(tmp_path / "a") != _tree(tmp_path / "b")


def test_refuses_a_folder_that_already_has_content(tmp_path: Path) -> None:
    generate(tmp_path, 3, seed=1)
    with pytest.raises(FileExistsError):
        generate(tmp_path, 3, seed=1)


def test_every_file_loads_without_problems(tmp_path: Path) -> None:
    generate(tmp_path, 30, seed=3)
    index = _load(tmp_path)
    assert index.problems == {}
    assert index.site.site.title == "Bench"
    assert len(index) == 30
    assert {d.type for d in index.docs.values()} == {"posts"}
    assert len(index.terms["categories"]) == len(CATEGORIES) == 20
    assert len(index.terms["authors"]) == len(AUTHORS) == 10
    assert len(index.terms["tags"]) == N_TAG_FILES
    assert any(term.parent for term in index.terms["categories"].values())
    assert len(index.search) == 30
    assert {f.name for f in index.types["posts"].fields} >= {"rating", "featured", "reading_level"}


def test_posts_name_known_terms_and_carry_ulids(large: Index) -> None:
    authors = set(large.terms["authors"])
    categories = set(large.terms["categories"])
    ids = [d.id for d in large.docs.values()]
    assert len(set(ids)) == len(ids) == 300
    for doc in large.docs.values():
        assert is_id(doc.id)
        assert doc.published_at is not None
        assert id_time_ms(doc.id) // 1000 == int(doc.published_at.timestamp())  # the id encodes the post date
        assert doc.author in authors
        assert set(doc.categories) <= categories and 1 <= len(doc.categories) <= 2
        assert 1 <= len(doc.tags) <= 6
    assert len(large.all_terms("tags")) > 50  # drawn from the pool of 200


def test_statuses_dates_and_custom_fields_are_spread(large: Index) -> None:
    docs = list(large.docs.values())
    statuses = [d.status_at(NOW) for d in docs]
    assert statuses.count(Status.DRAFT) >= 1
    scheduled = [d for d in docs if d.status_at(NOW) is Status.SCHEDULED]
    assert scheduled and all(d.published_at.year >= 2099 for d in scheduled)  # type: ignore[union-attr]
    ordinary = [d.published_at.year for d in docs if d not in scheduled]  # type: ignore[union-attr]
    assert min(ordinary) == 2021 and max(ordinary) == 2025
    assert any(d.updated_at != d.published_at for d in docs)
    assert {d.meta["rating"] for d in docs if "rating" in d.meta} == {1, 2, 3, 4, 5}
    assert {d.meta["featured"] for d in docs if "featured" in d.meta} == {True, False}
    assert any(d.excerpt_derived for d in docs) and any(not d.excerpt_derived for d in docs)


def test_bodies_use_the_markdown_real_posts_use(large: Index) -> None:
    for doc in large.docs.values():
        body = doc.body
        assert 250 <= doc.words <= 2_500, doc.path
        for marker in ("\n## ", "\n### ", "\n- ", "\n1. ", "\n```", "![", "\n> ", "](/posts/", "](https://", "`"):
            assert marker in body, (doc.path, marker)
    bodies = "".join(d.body for d in large.docs.values())
    for fence in ("```python", "```js", "```bash", "```json"):
        assert fence in bodies
    assert "\n| --- |" in bodies  # some posts have a table
