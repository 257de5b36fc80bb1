"""Media over HTTP: upload (multipart or base64 JSON), list, get, edit text, delete; files at /uploads/.

Thin like the other resources: parse and check here, convert and store in `cms.media`. Conversions
run in the library's bounded pool of worker processes, never on the event loop. Files under
/uploads/ are served only when their bytes are an image (sidecars, anything else, and every path
trick answer 404), with the sniffed Content-Type and `nosniff` (added to every answer by the app's
header middleware).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from cms.content.query import Page, bool_param
from cms.content.write import TEMP_PREFIX
from cms.errors import BadRequest, Conflict, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType
from cms.events.bus import Event
from cms.media import MediaItem, MediaLibrary, localize, sniff

from .http import Services, json_response, only_params, paging_headers, query_params, read_json, require, services

MULTIPART_FIELDS = ("image", "file", "alt", "alt_text", "caption", "credit", "folder", "filename")
JSON_FIELDS = ("filename", "data", "alt", "alt_text", "caption", "credit", "folder")
LIST_PARAMS = ("page", "per_page", "folder", "mime_type", "search")
IMMUTABLE = "public, max-age=31536000, immutable"  # derivatives: a new upload gets new names
ORIGINAL = "public, max-age=3600"  # originals: short, a person may replace one by hand
MAX_PART = 64 * 1024


def library_of(app: Starlette) -> MediaLibrary:
    """The app's media library, loaded from uploads/ on first use (cms serve loads it at startup)."""
    svc: Services = app.state.services
    if svc.media is None:
        svc.media = MediaLibrary.load(svc.site, clock=svc.clock)
    return svc.media


def _library(request: Request) -> MediaLibrary:
    return library_of(request.app)


def _base(request: Request) -> str:
    return services(request).site.site.base_url


def _publish(request: Request, name: str, item: MediaItem) -> None:
    event = Event(name, {"media": item.as_dict(_base(request))}, source="api", key=item.id)
    services(request).bus.publish([event])


# -- upload ------------------------------------------------------------------------------------


async def upload(request: Request) -> Response:
    require(request, "write")
    only_params(query_params(request), ())
    max_bytes = services(request).site.media.max_bytes
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        fields = await _multipart(request, max_bytes)
    elif media == "application/json" or media.endswith("+json"):
        fields = _from_json(await read_json(request), max_bytes)
    else:
        raise UnsupportedMediaType(
            f"send the image as multipart/form-data (field `image`) or as JSON with base64 `data`, not {media or '-'}"
        )
    library = _library(request)
    item = await run_in_threadpool(
        lambda: library.ingest(
            fields["data"],
            fields["filename"],
            alt=fields["alt"],
            caption=fields["caption"],
            credit=fields["credit"],
            folder=fields["folder"],
        )
    )
    await run_in_threadpool(_publish, request, "media.uploaded", item)
    return json_response({"data": item.as_dict(_base(request))}, 201, headers={"Location": f"/api/v1/media/{item.id}"})


async def _multipart(request: Request, max_bytes: int) -> dict[str, Any]:
    async with request.form(max_files=1, max_fields=20, max_part_size=MAX_PART) as form:
        unknown = sorted(set(form.keys()) - set(MULTIPART_FIELDS))
        if unknown:
            raise BadRequest(
                f"unknown form field {unknown[0]!r}; accepted: {', '.join(MULTIPART_FIELDS)}",
                details={"field": unknown[0], "accepted": list(MULTIPART_FIELDS)},
            )
        part = form.get("image") or form.get("file")
        if not isinstance(part, UploadFile):
            raise Invalid({"image": ["send the image as a file in the `image` (or `file`) field"]})
        data = await part.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"the image is larger than {max_bytes} bytes")
        texts = {k: form.get(k) for k in ("alt", "alt_text", "caption", "credit", "folder", "filename")}
        if any(v is not None and not isinstance(v, str) for v in texts.values()):
            raise BadRequest("only the image field may be a file")
    return {
        "data": data,
        "filename": texts["filename"] or part.filename or "image",
        "alt": texts["alt"] or texts["alt_text"] or "",
        "caption": texts["caption"] or "",
        "credit": texts["credit"] or "",
        "folder": texts["folder"] or None,
    }


def _from_json(body: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    unknown = sorted(set(body) - set(JSON_FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; accepted: {', '.join(JSON_FIELDS)}",
            details={"field": unknown[0], "accepted": list(JSON_FIELDS)},
        )
    raw = body.get("data")
    if not isinstance(raw, str) or not raw:
        raise Invalid({"data": ["is required: the image as a base64 string"]})
    if raw.startswith("data:"):  # a data: URL: the part after the comma
        header, _, raw = raw.partition(",")
        if not header.endswith(";base64"):
            raise BadRequest("data: URLs must be base64-encoded")
    text = "".join(raw.split())  # base64 wrapped at 76 columns is still base64
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise PayloadTooLarge(f"the image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("data is not valid base64") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is larger than {max_bytes} bytes")
    fields = {k: body.get(k) for k in ("filename", "alt", "alt_text", "caption", "credit", "folder")}
    bad = [k for k, v in fields.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise Invalid({k: ["must be a string"] for k in bad})
    return {
        "data": data,
        "filename": fields["filename"] or "image",
        "alt": fields["alt_text"] or fields["alt"] or "",
        "caption": fields["caption"] or "",
        "credit": fields["credit"] or "",
        "folder": fields["folder"] or None,
    }


# -- read, edit, delete --------------------------------------------------------------------------


def _positive(params: dict[str, Any], name: str, default: int, most: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"{name} must be a positive integer")
    value = int(raw)
    if most is not None and value > most:
        raise BadRequest(f"{name} must be at most {most}")
    return value


def _text_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be given once, as a string")
    return value


async def list_media(request: Request) -> Response:
    require(request, "read")
    svc = services(request)
    params = query_params(request)
    only_params(params, LIST_PARAMS)
    page = _positive(params, "page", 1)
    per_page = _positive(params, "per_page", svc.site.defaults.per_page, svc.site.defaults.max_per_page)
    items = _library(request).items(
        folder=_text_param(params, "folder"),
        mime_type=_text_param(params, "mime_type"),
        search=_text_param(params, "search"),
    )
    chunk = items[(page - 1) * per_page : page * per_page]
    paging = Page(items=[], total=len(items), page=page, per_page=per_page)
    base = _base(request)
    return json_response(
        {"data": [i.as_dict(base) for i in chunk], "pagination": paging.pagination()},
        headers=paging_headers(request, paging),
    )


async def get_media(request: Request) -> Response:
    require(request, "read")
    only_params(query_params(request), ())
    item = _library(request).get(request.path_params["id"])
    return json_response({"data": item.as_dict(_base(request))})


async def patch_media(request: Request) -> Response:
    require(request, "write")
    only_params(query_params(request), ())
    body = await read_json(request)
    if "alt_text" in body:
        if "alt" in body:
            raise BadRequest("send alt or alt_text, not both")
        body["alt"] = body.pop("alt_text")
    library = _library(request)
    item = await run_in_threadpool(library.update, request.path_params["id"], body)
    return json_response({"data": item.as_dict(_base(request))})


async def delete_media(request: Request) -> Response:
    require(request, "delete")
    params = query_params(request)
    only_params(params, ("force",))
    svc = services(request)
    library = _library(request)
    item = library.get(request.path_params["id"])
    if not bool_param(params, "force"):
        users = await run_in_threadpool(library.references, item, list(svc.index.docs.values()))
        if users:
            listed = [{"id": d.id, "type": d.type, "slug": d.slug, "title": d.title} for d in users]
            raise Conflict(
                f"{len(users)} document(s) use this image; remove those uses or add force=true",
                details={"documents": listed},
            )
    await run_in_threadpool(library.delete, item.id)
    await run_in_threadpool(_publish, request, "media.deleted", item)
    return Response(status_code=204)


# -- files ---------------------------------------------------------------------------------------


async def serve_file(request: Request) -> Response:
    """GET/HEAD /uploads/<path>: images only, never a sidecar, never outside uploads/."""
    rel = request.path_params["path"]
    library = _library(request)
    path, mime, immutable = await run_in_threadpool(_public_file, library, rel)
    st = os.stat(path)
    etag = '"' + hashlib.sha256(f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}".encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": IMMUTABLE if immutable else ORIGINAL, "ETag": etag}
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in {t.strip().removeprefix("W/") for t in inm.split(",")}):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=mime, headers=headers, stat_result=st)


def _public_file(library: MediaLibrary, rel: str) -> tuple[str, str, bool]:
    missing = NotFound("no such file")
    parts = rel.split("/")
    if (
        not rel
        or "\\" in rel
        or "\x00" in rel
        or any(p in ("", ".", "..") or p.startswith((".", TEMP_PREFIX)) for p in parts)
        or rel.lower().endswith((".yaml", ".yml"))
    ):
        raise missing
    root = os.path.realpath(library.root)
    full = os.path.join(root, *parts)
    if os.path.realpath(full) != full:  # a symbolic link anywhere on the way
        raise missing
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise missing from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise missing
        kind = sniff(os.read(fd, 64))
    finally:
        os.close(fd)
    if kind is None:
        raise missing
    known = library.role_of(rel)
    return full, kind.mime, known is not None and known[1] == "derivative"


# -- localize_images (called by the documents resource) -------------------------------------------


@contextlib.asynccontextmanager
async def localized_images(
    request: Request, body: dict[str, Any], enabled: bool
) -> AsyncIterator[list[dict[str, Any]]]:
    """With `enabled`, bring the remote images of `body`'s content into the library first and point
    the content at them; yields the report. If the document is then refused, the new items are removed
    again; if it is saved, each is announced with media.uploaded."""
    if not enabled:
        yield []
        return
    report = await _localize(request, body)
    made = [r["media_id"] for r in report if r["status"] == "ok"]
    library = _library(request)
    try:
        yield report
    except BaseException:
        for media_id in made:
            with contextlib.suppress(NotFound):
                await run_in_threadpool(library.delete, media_id)
        raise
    for media_id in made:
        with contextlib.suppress(NotFound):
            await run_in_threadpool(_publish, request, "media.uploaded", library.get(media_id))


async def _localize(request: Request, body: dict[str, Any]) -> list[dict[str, Any]]:
    svc = services(request)
    key = "content" if "content" in body else "body"
    content = body.get(key)
    if not isinstance(content, str) or "http" not in content:
        return []
    library = _library(request)
    base = svc.site.site.base_url.rstrip("/")

    def ingest(data: bytes, filename: str, alt: str) -> MediaItem:
        return library.ingest(data, filename, alt=alt[:500])

    new_content, report = await run_in_threadpool(
        lambda: localize(
            content,
            ingest,
            network=svc.site.network,
            max_bytes=svc.site.media.max_bytes,
            skip_prefixes=(f"{base}/uploads/",),
        )
    )
    body[key] = new_content
    return report


def routes() -> list[Route]:
    return [
        Route("/api/v1/media", list_media, methods=["GET"]),
        Route("/api/v1/media", upload, methods=["POST"]),
        Route("/api/v1/media/{id}", get_media, methods=["GET"]),
        Route("/api/v1/media/{id}", patch_media, methods=["PATCH"]),
        Route("/api/v1/media/{id}", delete_media, methods=["DELETE"]),
        Route("/uploads/{path:path}", serve_file, methods=["GET", "HEAD"]),
    ]
