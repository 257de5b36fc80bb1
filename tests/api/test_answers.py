"""Ready list answers (cms/api/answers.py): a repeated list request is answered from kept bytes, and
never with bytes that no longer hold: after a write, a hand edit, a passing publish moment, or for a
key of another standing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from cms.api.answers import MAX_BODY_BYTES, Answer, ReadyAnswers
from cms.api.http import Services
from cms.config import Site
from cms.content.index import Index

from .conftest import DRAFT, NOW, SCHEDULED, Clock, assert_error

POSTS = "/api/v1/posts"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def slugs(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["slug"] for d in response.json()["data"]]


def answer(body: bytes, generation: int = 1, hours: float = 1) -> Answer:
    return Answer(body, {"X-Total-Count": "1"}, generation, T0, T0 + timedelta(hours=hours))


# -- the store itself --------------------------------------------------------------------------


def test_an_answer_holds_for_its_generation_and_time_window_only() -> None:
    answers = ReadyAnswers()
    answers.put("k", answer(b"[1]"))
    assert answers.get("k", 1, T0 + timedelta(minutes=5)) == answer(b"[1]")
    assert answers.get("k", 1, T0 + timedelta(hours=1)) is None  # the window ends (exclusive)
    answers.put("k", answer(b"[1]"))
    assert answers.get("k", 1, T0 - timedelta(seconds=1)) is None  # before it was computed
    answers.put("k", answer(b"[1]"))
    assert answers.get("k", 2, T0) is None  # the index moved on
    assert len(answers) == 0


def test_a_newer_index_empties_the_store_and_an_older_answer_is_not_kept() -> None:
    answers = ReadyAnswers()
    answers.put("a", answer(b"a", generation=1))
    answers.put("b", answer(b"b", generation=2))
    assert len(answers) == 1 and answers.get("b", 2, T0) is not None
    answers.put("late", answer(b"late", generation=1))  # computed before the change, stored after
    assert answers.get("late", 1, T0) is None and len(answers) == 1


def test_the_store_is_bounded_by_bytes_least_recently_used_first() -> None:
    answers = ReadyAnswers(max_bytes=30)
    for name in "abc":
        answers.put(name, answer(name.encode() * 10))
    assert answers.get("a", 1, T0) is not None  # used: now the most recent
    answers.put("d", answer(b"d" * 10))
    assert answers.get("b", 1, T0) is None  # the least recently used went
    assert [answers.get(k, 1, T0) is not None for k in "acd"] == [True, True, True]
    answers.put("huge", answer(b"x" * (MAX_BODY_BYTES + 1)))
    assert answers.get("huge", 1, T0) is None and len(answers) == 3


# -- through the API ---------------------------------------------------------------------------


def test_a_repeated_list_is_answered_from_the_store_with_the_same_bytes(reader: TestClient, svc: Services) -> None:
    first = reader.get(POSTS, params={"per_page": 3, "page": 2})
    assert len(svc.answers) == 1
    again = reader.get(POSTS, params={"per_page": 3, "page": 2})
    assert again.content == first.content and again.headers["link"] == first.headers["link"]
    assert again.headers["x-total-count"] == first.headers["x-total-count"]
    assert again.headers["x-ratelimit-remaining"] != first.headers["x-ratelimit-remaining"]  # still counted


def test_an_api_write_shows_in_the_next_list(reader: TestClient, writer: TestClient) -> None:
    before = slugs(reader.get(POSTS))
    created = writer.post(
        POSTS, json={"title": "Fresh off the roaster", "content": "Still warm.", "status": "published"}
    )
    assert created.status_code == 201, created.text
    after = slugs(reader.get(POSTS))
    assert after[0] == created.json()["data"]["slug"] and after[1:] == before[: len(after) - 1]


def test_a_hand_edit_shows_in_the_next_list(reader: TestClient, site: Site, index: Index) -> None:
    titles = {d["slug"]: d["title"] for d in reader.get(POSTS, params={"per_page": 100}).json()["data"]}
    path = site.content_dir / "posts" / "pour-over-basics.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(titles["pour-over-basics"], "Pour-over, retitled by hand", 1), encoding="utf-8")
    index.refresh(["posts/pour-over-basics.md"])  # what the watcher does
    titles = {d["slug"]: d["title"] for d in reader.get(POSTS, params={"per_page": 100}).json()["data"]}
    assert titles["pour-over-basics"] == "Pour-over, retitled by hand"


def test_a_publish_moment_passing_shows_in_the_next_list(reader: TestClient, clock: Clock) -> None:
    assert SCHEDULED not in slugs(reader.get(POSTS))
    clock.now = datetime(2027, 1, 15, 7, 1, tzinfo=UTC)  # past the scheduled post's date; no index change
    assert slugs(reader.get(POSTS))[0] == SCHEDULED
    clock.now = NOW  # and the answer kept for the later moment does not leak back either
    assert SCHEDULED not in slugs(reader.get(POSTS))


def test_keys_of_another_standing_never_get_each_others_answers(
    reader: TestClient, writer: TestClient, anon: TestClient
) -> None:
    drafts = {"status": "draft"}
    assert DRAFT in slugs(writer.get(POSTS, params=drafts))
    assert_error(reader.get(POSTS, params=drafts), 403, "FORBIDDEN")
    assert_error(anon.get(POSTS, params=drafts), 401, "UNAUTHORIZED")
    every = {"status": "all", "per_page": 100}
    assert DRAFT in slugs(writer.get(POSTS, params=every))
    assert_error(reader.get(POSTS, params=every), 403, "FORBIDDEN")


def test_the_link_header_follows_the_host_asked_for(reader: TestClient) -> None:
    one = reader.get(POSTS, params={"per_page": 2}, headers={"Host": "one.example"})
    two = reader.get(POSTS, params={"per_page": 2}, headers={"Host": "two.example"})
    assert "//one.example/" in one.headers["link"] and "//two.example/" in two.headers["link"]
    assert one.content == two.content
