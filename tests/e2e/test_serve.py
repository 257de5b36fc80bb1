"""End to end against a real `cms serve`: the document lifecycle over HTTP, hand edits picked up by
the watcher, the access log, and a clean exit on Ctrl-C. The tests run in file order on one server;
the last one stops it."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.support import wait_until

from .conftest import Server

POSTS = "/api/v1/posts"


def test_document_lifecycle_over_http(server: Server) -> None:
    with server.client() as http:
        # create -> read
        created = http.post(POSTS, json={"title": "End to end", "content": "First words.\n"})
        assert created.status_code == 201, created.text
        doc_id = created.json()["data"]["id"]
        path = server.content / "posts/end-to-end.md"
        assert path.exists()
        read = http.get(f"{POSTS}/{doc_id}")
        assert read.status_code == 200 and read.json()["data"]["status"] == "draft"
        assert read.headers["ETag"] == created.headers["ETag"]

        # update with If-Match
        updated = http.patch(
            f"{POSTS}/{doc_id}", json={"title": "End to end, edited"}, headers={"If-Match": read.headers["ETag"]}
        )
        assert updated.status_code == 200, updated.text
        etag = updated.headers["ETag"]

        # a hand edit of the file: the watcher brings it to the index
        path.write_text(path.read_text().replace("First words.", "Edited by hand."))
        wait_until(
            lambda: "Edited by hand." in http.get(f"{POSTS}/{doc_id}").json()["data"]["content"],
            message="the hand edit did not reach the API",
        )
        assert http.get(f"{POSTS}/{doc_id}").headers["ETag"] != etag

        # the update based on the version before the hand edit is refused, and the hand edit survives
        stale = http.patch(f"{POSTS}/{doc_id}", json={"title": "Lost update"}, headers={"If-Match": etag})
        assert stale.status_code == 412 and stale.json()["error"]["code"] == "PRECONDITION_FAILED"
        assert "Edited by hand." in path.read_text() and "Lost update" not in path.read_text()

        # publish -> the list shows it
        published = http.post(f"{POSTS}/{doc_id}/publish")
        assert published.status_code == 200 and published.json()["data"]["status"] == "published"
        assert doc_id in {d["id"] for d in http.get(POSTS, params={"per_page": 100}).json()["data"]}

        # trash -> gone from the list, restore -> back
        assert http.delete(f"{POSTS}/{doc_id}").json()["data"]["status"] == "trash"
        assert doc_id not in {d["id"] for d in http.get(POSTS, params={"per_page": 100}).json()["data"]}
        assert http.post(f"{POSTS}/{doc_id}/restore").json()["data"]["status"] == "published"

        # permanent delete -> 404
        assert http.delete(f"{POSTS}/{doc_id}", params={"permanent": "true"}).status_code == 204
        assert not path.exists()
        gone = http.get(f"{POSTS}/{doc_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"


def test_hand_created_file_appears_in_the_list(server: Server) -> None:
    # How fast is bench/'s question (bench.index `watcher.median`); here: it appears, on a busy machine too.
    with server.client() as http:
        listed = lambda: "made-by-hand" in {d["slug"] for d in http.get(POSTS, params={"per_page": 100}).json()["data"]}  # noqa: E731
        assert not listed()
        (server.content / "posts/made-by-hand.md").write_text(
            "---\ntitle: Made by hand\ndate: 2026-01-10T10:00:00+01:00\n---\nWritten in an editor.\n"
        )
        wait_until(listed, message="a new file did not appear in the list")


def test_one_access_log_line_per_request_and_no_key_in_it(server: Server) -> None:
    marks = [f"/api/v1/posts/log-mark-{i}" for i in range(5)]
    with server.client() as http:
        for mark in marks:
            assert http.get(mark).status_code == 404
        # a key sent where it is not accepted (the query string) must not reach the log either
        assert httpx.get(f"{server.base}{POSTS}", params={"api_token": server.token}).status_code == 401

    def lines() -> list[str]:
        return [line for line in server.stderr().splitlines() if "log-mark-" in line]

    wait_until(lambda: len(lines()) >= len(marks), message=lambda: server.stderr()[-2000:])
    time.sleep(0.1)  # negative control after the positive wait: a duplicate line would come right after the first
    found = lines()
    assert sorted(re.search(r'"GET ([^"\s]+)', line).group(1) for line in found) == marks  # type: ignore[union-attr]
    assert all(" 404 " in line and "cms.access" in line for line in found)
    secret = server.token.split("_", 2)[2]
    assert server.token not in server.stderr() and secret not in server.stderr()


@pytest.mark.parametrize("body", [b'{"title": "x",', b"[]"], ids=["malformed", "array"])
def test_bad_json_is_answered_by_the_real_server(server: Server, body: bytes) -> None:
    with server.client() as http:
        response = http.post(POSTS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "BAD_REQUEST"


def test_server_stops_on_sigint_without_a_traceback(server: Server) -> None:
    code, _ = server.stop()  # None only if it ignored SIGINT for STOP_TIMEOUT_S and had to be killed
    assert code == 0, f"cms serve exited with {code} after SIGINT:\n{server.stderr()[-2000:]}"
    assert "Traceback" not in server.stderr()


def test_server_exit_status_after_sigint_is_0(server: Server) -> None:
    code, _ = server.stop()  # already stopped by the test above when the module runs in order
    assert code == 0, server.stderr()[-500:]
