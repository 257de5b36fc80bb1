"""POST/GET/PATCH/DELETE /api/v1/media and GET /uploads/...: over the app, with real images."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.api.http import Services
from cms.events.bus import Event
from tests.media import images

from .conftest import assert_error, client

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _close_library(app: Starlette) -> Iterator[None]:
    yield
    library = app.state.services.media
    if library is not None:
        library.close()


@pytest.fixture
def events(svc: Services) -> list[Event]:
    seen: list[Event] = []
    svc.bus.subscribe(seen.append)
    return seen


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def upload(c: TestClient, data: bytes, name: str = "photo.jpg", **fields: str) -> Any:
    return c.post("/api/v1/media", files={"image": (name, data, "image/jpeg")}, data=fields)


def upload_json(c: TestClient, body: dict[str, Any]) -> Any:
    return c.post("/api/v1/media", content=json.dumps(body), headers={"Content-Type": "application/json"})


def test_multipart_upload_answers_201_with_every_url(writer: TestClient, svc: Services, events: list[Event]) -> None:
    data = images.jpeg((1200, 800), orientation=6, gps=True)
    r = upload(writer, data, "Hero Shot.jpg", alt="The roastery", folder="2026/05")
    assert r.status_code == 201, r.text
    item = r.json()["data"]
    assert r.headers["Location"] == f"/api/v1/media/{item['id']}"
    base = "https://cinder-and-crema.example/uploads/2026/05/"
    assert item["url_orig"] == base + "hero-shot.jpg"
    assert item["url_avif"] == base + "hero-shot.avif" and item["url_webp"] == base + "hero-shot.webp"
    assert item["path"] == "2026/05/hero-shot.avif"
    assert item["variants"] == {
        "480": {"avif": base + "hero-shot-480w.avif", "webp": base + "hero-shot-480w.webp"},
    }
    assert (item["width"], item["height"]) == (800, 1200)
    assert item["mime_type"] == "image/jpeg" and item["size"] == len(data) and item["alt"] == "The roastery"
    assert item["caption"] == "" and item["credit"] == "" and item["created_at"].endswith("Z")
    assert (svc.site.uploads_dir / "2026/05/hero-shot.jpg").read_bytes() == data
    assert [(e.name, e.key, e.source) for e in events] == [("media.uploaded", item["id"], "api")]
    assert events[0].data["media"]["id"] == item["id"]


def test_json_base64_upload(writer: TestClient) -> None:
    data = images.png_alpha((300, 200))
    r = upload_json(writer, {"filename": "logo.png", "data": base64.b64encode(data).decode(), "alt_text": "Logo"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["mime_type"] == "image/png" and r.json()["data"]["alt"] == "Logo"
    as_url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert (
        upload_json(writer, {"filename": "logo.png", "data": as_url}).json()["data"]["url_orig"].endswith("logo-2.png")
    )


def test_the_file_field_name_works_too(writer: TestClient) -> None:
    r = writer.post("/api/v1/media", files={"file": ("a.webp", images.webp((64, 64)), "image/webp")})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["url_orig"].endswith("/a.orig.webp")


BAD = [
    ("gif", lambda: images.animated("GIF"), "anim.gif", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("php named jpg", lambda: images.PHP, "photo.jpg", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("svg", lambda: images.SVG, "logo.svg", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("bomb", images.bomb_png, "bomb.png", 422, "VALIDATION_ERROR"),
    ("truncated", images.truncated_jpeg, "cut.jpg", 422, "VALIDATION_ERROR"),
    ("animated webp", lambda: images.animated("WEBP"), "anim.webp", 422, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("name", "make", "filename", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_refusals_leave_uploads_unchanged(
    writer: TestClient, svc: Services, events: list[Event], name: str, make: Any, filename: str, status: int, code: str
) -> None:
    before = snapshot(svc.site.uploads_dir)
    data = make()
    assert_error(upload(writer, data, filename), status, code)
    assert_error(upload_json(writer, {"filename": filename, "data": base64.b64encode(data).decode()}), status, code)
    assert snapshot(svc.site.uploads_dir) == before
    assert events == []


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.jpg", "data": "not base64!!"},
        {"filename": "a.jpg", "data": "QUJD=QUJD"},
        {"filename": "a.jpg", "data": "data:image/png,raw"},
    ],
)
def test_bad_json_bodies_are_400(writer: TestClient, svc: Services, body: dict[str, Any]) -> None:
    before = snapshot(svc.site.uploads_dir)
    assert_error(upload_json(writer, body), 400, "BAD_REQUEST")
    assert snapshot(svc.site.uploads_dir) == before


def test_an_unknown_field_of_a_json_upload_is_a_422_naming_it(writer: TestClient, svc: Services) -> None:
    before = snapshot(svc.site.uploads_dir)
    error = assert_error(upload_json(writer, {"data": "QUJD", "extra": 1, "alt": 5}), 422, "VALIDATION_ERROR")
    assert error["details"] == {"extra": ["is not a known setting"], "alt": ["must be a string"]}
    assert snapshot(svc.site.uploads_dir) == before


def test_missing_data_or_file_is_422(writer: TestClient) -> None:
    assert_error(upload_json(writer, {"filename": "a.jpg"}), 422, "VALIDATION_ERROR")
    assert_error(writer.post("/api/v1/media", data={"alt": "x"}, files={}), 415, "UNSUPPORTED_MEDIA_TYPE")
    r = writer.post("/api/v1/media", files={"alt": (None, "x"), "folder": (None, "y")})
    assert_error(r, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("folder", ["../../etc", "/abs", "a/../../b", "..", "C:\\x"])
def test_folders_outside_uploads_are_400(writer: TestClient, svc: Services, folder: str) -> None:
    before = snapshot(svc.site.uploads_dir)
    assert_error(upload(writer, images.jpeg((64, 64)), folder=folder), 400, "BAD_REQUEST")
    assert snapshot(svc.site.uploads_dir) == before
    assert not (svc.site.root / "etc").exists()


def test_duplicate_name_gets_suffix(writer: TestClient) -> None:
    first = upload(writer, images.jpeg((64, 64)), "cup.jpg", folder="x").json()["data"]
    second = upload(writer, images.jpeg((64, 64)), "cup.jpg", folder="x").json()["data"]
    assert first["url_orig"].endswith("/x/cup.jpg") and second["url_orig"].endswith("/x/cup-2.jpg")


def test_over_10_mb_is_413_without_files(writer: TestClient, svc: Services) -> None:
    before = snapshot(svc.site.uploads_dir)
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (11 * 1000 * 1000)
    assert_error(upload(writer, big), 413, "PAYLOAD_TOO_LARGE")
    # Just under the body limit but over the file limit: refused after reading, still 413.
    assert_error(upload(writer, big[: 10 * MIB + 1000]), 413, "PAYLOAD_TOO_LARGE")
    encoded = base64.b64encode(big[: 10 * MIB + 10]).decode()
    assert_error(upload_json(writer, {"filename": "a.jpg", "data": encoded}), 413, "PAYLOAD_TOO_LARGE")
    assert_error(
        upload_json(writer, {"filename": "a.jpg", "data": encoded + "A" * (2 * MIB)}), 413, "PAYLOAD_TOO_LARGE"
    )
    assert snapshot(svc.site.uploads_dir) == before


def test_oversized_body_without_content_length_is_cut_off(writer: TestClient) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        boundary = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n\r\n"
        yield boundary
        for _ in range(40):  # up to 40 MiB, if nobody stopped reading
            sent += MIB
            yield b"\x00" * MIB

    r = writer.post("/api/v1/media", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_1001_parts_is_400(writer: TestClient) -> None:
    body = (
        b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(1001))
        + b"--b--\r\n"
    )
    r = writer.post("/api/v1/media", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert_error(r, 400, "BAD_REQUEST")


def test_two_files_is_400_as_the_form_says(writer: TestClient, anon: TestClient) -> None:
    spec = anon.get("/api/v1/openapi.json").json()
    form = spec["paths"]["/api/v1/media"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["oneOf"] == [{"required": ["image"]}, {"required": ["file"]}]  # exactly one file field
    r = writer.post(
        "/api/v1/media",
        files=[("image", ("a.jpg", images.jpeg((8, 8)), "image/jpeg")), ("file", ("b.jpg", b"x", "image/jpeg"))],
    )
    assert_error(r, 400, "BAD_REQUEST")


def test_scopes(app: Starlette, anon: TestClient, reader: TestClient, writer: TestClient, deleter: TestClient) -> None:
    assert_error(upload(anon, images.jpeg((8, 8))), 401, "UNAUTHORIZED")
    assert_error(upload(reader, images.jpeg((8, 8))), 403, "FORBIDDEN")
    item = upload(writer, images.jpeg((8, 8))).json()["data"]
    assert_error(anon.get("/api/v1/media"), 401, "UNAUTHORIZED")
    assert reader.get("/api/v1/media").status_code == 200
    assert reader.get(f"/api/v1/media/{item['id']}").status_code == 200
    assert_error(reader.patch(f"/api/v1/media/{item['id']}", json={"alt": "x"}), 403, "FORBIDDEN")
    assert_error(writer.delete(f"/api/v1/media/{item['id']}"), 403, "FORBIDDEN")
    assert deleter.delete(f"/api/v1/media/{item['id']}").status_code == 204


def test_list_paginates_and_filters(writer: TestClient, reader: TestClient) -> None:
    ids = [upload(writer, images.jpeg((32, 32)), f"p{i}.jpg", alt=f"cup {i}").json()["data"]["id"] for i in range(3)]
    logo = upload(writer, images.png_alpha((32, 32)), "logo.png", folder="brand/2026").json()["data"]["id"]
    r = reader.get("/api/v1/media", params={"per_page": 2})
    assert r.status_code == 200
    body = r.json()
    assert [i["id"] for i in body["data"]] == [logo, ids[2]]
    assert body["pagination"] == {
        "total": 4,
        "page": 1,
        "per_page": 2,
        "total_pages": 2,
        "has_next": True,
        "has_prev": False,
    }
    assert r.headers["X-Total-Count"] == "4" and 'rel="next"' in r.headers["Link"]
    assert [i["id"] for i in reader.get("/api/v1/media?page=2&per_page=2").json()["data"]] == [ids[1], ids[0]]
    assert [i["id"] for i in reader.get("/api/v1/media?folder=brand").json()["data"]] == [logo]
    assert [i["id"] for i in reader.get("/api/v1/media?mime_type=image/png").json()["data"]] == [logo]
    assert [i["id"] for i in reader.get("/api/v1/media?search=CUP 1").json()["data"]] == [ids[1]]
    assert [i["id"] for i in reader.get("/api/v1/media?search=p2.jpg").json()["data"]] == [ids[2]]
    assert_error(reader.get("/api/v1/media?sort=name"), 400, "BAD_REQUEST")
    assert_error(reader.get("/api/v1/media?per_page=1000"), 400, "BAD_REQUEST")
    assert_error(reader.get("/api/v1/media?page=0"), 400, "BAD_REQUEST")
    assert_error(reader.get("/api/v1/media/01ZZZZZZZZZZZZZZZZZZZZZZZZ"), 404, "NOT_FOUND")


def test_patch_alt_caption_credit(writer: TestClient, svc: Services) -> None:
    item = upload(writer, images.jpeg((32, 32)), "cup.jpg", folder="cups").json()["data"]
    r = writer.patch(f"/api/v1/media/{item['id']}", json={"alt_text": "A cup", "caption": "yes", "credit": "Mara"})
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["alt"], r.json()["data"]["caption"], r.json()["data"]["credit"]) == (
        "A cup",
        "yes",
        "Mara",
    )
    sidecar = (svc.site.uploads_dir / "cups/cup.yaml").read_text()
    assert 'alt: "A cup"\n' in sidecar and 'caption: "yes"\n' in sidecar  # the file's own quoting kept
    assert writer.get(f"/api/v1/media/{item['id']}").json()["data"]["alt"] == "A cup"
    assert_error(writer.patch(f"/api/v1/media/{item['id']}", json={"width": 3}), 422, "VALIDATION_ERROR")
    assert_error(writer.patch(f"/api/v1/media/{item['id']}", json={"alt": ["x"]}), 422, "VALIDATION_ERROR")


def test_delete_refuses_while_a_post_uses_the_image(
    writer: TestClient, deleter: TestClient, svc: Services, events: list[Event]
) -> None:
    before = snapshot(svc.site.uploads_dir)
    item = upload(writer, images.jpeg((1000, 600)), "cover.jpg").json()["data"]
    post = writer.post("/api/v1/posts", json={"title": "Uses it", "content": "x", "featured_image": item["path"]})
    assert post.status_code == 201, post.text
    inline = writer.post(
        "/api/v1/posts", json={"title": "Inline", "content": f"![c](/uploads/{item['path'][:-5]}-480w.webp)"}
    )
    error = assert_error(deleter.delete(f"/api/v1/media/{item['id']}"), 409, "CONFLICT")
    listed = {d["id"] for d in error["details"]["documents"]}
    assert listed == {post.json()["data"]["id"], inline.json()["data"]["id"]}
    assert deleter.delete(f"/api/v1/media/{item['id']}?force=true").status_code == 204
    assert snapshot(svc.site.uploads_dir) == before
    assert_error(deleter.get(f"/api/v1/media/{item['id']}"), 404, "NOT_FOUND")
    assert [e.name for e in events if e.name.startswith("media.")] == ["media.uploaded", "media.deleted"]
    # The query is read before the item is looked up: a bad flag is a 400 whatever the item.
    assert_error(deleter.delete(f"/api/v1/media/{item['id']}?force=maybe"), 400, "BAD_REQUEST")


# -- /uploads/ -----------------------------------------------------------------------------------


def test_uploads_are_served_with_sniffed_types_and_cache_headers(writer: TestClient, anon: TestClient) -> None:
    item = upload(writer, images.jpeg((600, 400)), "cup.jpg", folder="cups").json()["data"]
    avif = anon.get("/uploads/cups/cup.avif")
    assert avif.status_code == 200
    assert avif.headers["content-type"] == "image/avif"
    assert avif.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert avif.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(avif.content)).format == "AVIF"
    webp = anon.get("/uploads/cups/cup-480w.webp")
    assert webp.headers["content-type"] == "image/webp" and "immutable" in webp.headers["cache-control"]
    orig = anon.get(item["url_orig"].removeprefix("https://cinder-and-crema.example"))
    assert orig.headers["content-type"] == "image/jpeg" and orig.headers["cache-control"] == "public, max-age=3600"
    etag = orig.headers["etag"]
    again = anon.get("/uploads/cups/cup.jpg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert anon.head("/uploads/cups/cup.avif").headers["content-length"] == str(len(avif.content))


@pytest.mark.parametrize(
    "path",
    [
        "/uploads/cups/cup.yaml",
        "/uploads/cups/notes.txt",
        "/uploads/cups/script.jpg",
        "/uploads/%2e%2e/cms.toml",
        "/uploads/cups/%2e%2e/%2e%2e/cms.toml",
        "/uploads/..%2fcms.toml",
        "/uploads/cups/link.jpg",
        "/uploads/.cms-tmp-abc.jpg",
        "/uploads/cups",
        "/uploads/",
        "/uploads/cups/missing.avif",
    ],
)
def test_sidecars_non_images_and_path_tricks_are_404(
    writer: TestClient, anon: TestClient, svc: Services, path: str
) -> None:
    upload(writer, images.jpeg((64, 64)), "cup.jpg", folder="cups")
    folder = svc.site.uploads_dir / "cups"
    (folder / "notes.txt").write_text("hello")
    (folder / "script.jpg").write_bytes(images.PHP)
    (folder / "link.jpg").symlink_to(folder / "cup.jpg")
    (svc.site.uploads_dir / ".cms-tmp-abc.jpg").write_bytes(images.jpeg((8, 8)))
    r = anon.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert b"cup.jpg" not in r.content and b"[site]" not in r.content


def test_featured_image_may_point_at_an_upload(writer: TestClient) -> None:
    item = upload(writer, images.jpeg((64, 64)), "cover.jpg").json()["data"]
    for ref in (
        item["path"],
        "/uploads/" + item["path"],
        item["url_orig"].removeprefix("https://cinder-and-crema.example"),
    ):
        r = writer.post("/api/v1/posts", json={"title": f"With {ref}", "content": "x", "featured_image": ref})
        assert r.status_code == 201, r.text


def test_upload_through_a_real_client_unknown_fields_400(app: Starlette, tokens: dict[str, str]) -> None:
    c = client(app, tokens["write"])
    r = c.post("/api/v1/media", files={"image": ("a.jpg", images.jpeg((8, 8)), "image/jpeg")}, data={"colour": "red"})
    assert_error(r, 400, "BAD_REQUEST")


def test_both_spellings_of_alt_are_one_alt_on_upload_and_on_patch(writer: TestClient) -> None:
    both = {"alt": "A cup", "alt_text": "Other"}
    item = writer.post("/api/v1/media", files={"image": ("a.jpg", images.jpeg((64, 48)), "image/jpeg")}, data=both)
    assert item.status_code == 201, item.text
    assert item.json()["data"]["alt"] == "A cup"
    patched = writer.patch(f"/api/v1/media/{item.json()['data']['id']}", json={"alt": "Mug", "alt_text": "No"})
    assert patched.status_code == 200 and patched.json()["data"]["alt"] == "Mug"
