"""The serializer's cache of document JSON (cms/api/serialize.py): one entry per live document, so
a busy site's edits and deletes leave no bytes behind."""

from __future__ import annotations

from starlette.testclient import TestClient

from cms.api.http import Services

POSTS = "/api/v1/posts"


def test_edits_and_deletes_leave_one_entry_per_live_document(admin: TestClient, svc: Services) -> None:
    # Creates, several patches each (each a new ETag), then permanent deletes: what a busy API sees.
    cached_before = len(svc.serializer)
    for round_ in range(150):
        created = admin.post(POSTS, json={"title": f"Round {round_}", "content": "Text.", "status": "published"})
        assert created.status_code == 201, created.text
        doc_id = created.json()["data"]["id"]
        for n in range(3):
            patched = admin.patch(f"{POSTS}/{doc_id}", json={"title": f"Round {round_}, take {n}"})
            assert patched.status_code == 200, patched.text
            assert admin.get(f"{POSTS}/{doc_id}").json()["data"]["title"] == f"Round {round_}, take {n}"
        assert admin.delete(f"{POSTS}/{doc_id}", params={"permanent": "true"}).status_code == 204
    # 600 versions of 150 documents went through the cache; none of them is live now. Keyed by
    # (id, etag, status), all 600 stayed; now an edit replaces its document's entry and deleted
    # documents are swept past a small slack.
    assert len(svc.serializer) <= max(cached_before, len(svc.index)) + 256 + 1


def test_a_new_version_replaces_the_cached_bytes(admin: TestClient, svc: Services) -> None:
    created = admin.post(POSTS, json={"title": "First", "content": "Text.", "status": "published"})
    doc_id = created.json()["data"]["id"]
    size = len(svc.serializer)
    patched = admin.patch(f"{POSTS}/{doc_id}", json={"title": "Second"})
    assert patched.json()["data"]["title"] == "Second"
    assert admin.get(f"{POSTS}/{doc_id}").json()["data"]["title"] == "Second"
    assert len(svc.serializer) == size


def test_kept_json_holds_only_its_own_bytes(reader: TestClient, svc: Services) -> None:
    import tracemalloc

    doc = next(iter(svc.index.docs.values()))
    svc.serializer._cache.clear()
    tracemalloc.start()
    try:
        body = svc.serializer.full(doc, svc.clock())
        kept = sum(s.size for s in tracemalloc.take_snapshot().statistics("filename"))
    finally:
        tracemalloc.stop()
    # (orjson's own bytes kept their 8 KiB-or-more write buffer: several times a small document)
    assert kept < len(body) + 4096
