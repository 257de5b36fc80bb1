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
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from cms.content.query import Page
from cms.content.write import TEMP_PREFIX
from cms.errors import BadRequest, Conflict, Invalid, NotFound, PayloadTooLarge, UnsupportedMediaType
from cms.events.bus import Event
from cms.media import MediaItem as LibraryItem
from cms.media import MediaLibrary, localize, sniff
from cms.media.item import MAX_TEXT

from .http import Services, json_response, paging_headers, read_json, services
from .operations import (
    Answer,
    Call,
    Flag,
    Integer,
    Schemas,
    Shape,
    SpecContext,
    operation,
    parse_body,
    read_integer,
    routes_of,
)

MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/avif")
IMMUTABLE = "public, max-age=31536000, immutable"  # derivatives: a new upload gets new names
ORIGINAL = "public, max-age=3600"  # originals: short, a person may replace one by hand
MAX_PART = 64 * 1024


class MediaItem(Shape):
    """An uploaded image: the original, its AVIF and WebP derivatives and responsive widths."""

    id: str
    path: str = Field(description="What to put in featured_image")
    url: str
    url_orig: str
    url_avif: str | None
    url_webp: str | None
    variants: dict[str, dict[str, str]] = Field(description="Width -> {avif, webp} -> URL")
    folder: str
    filename: str
    file: str
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    mime_type: Literal[MEDIA_TYPES]  # type: ignore[valid-type]
    size: int = Field(ge=0)
    checksum: str = Field(pattern="^sha256:[0-9a-f]{64}$")
    alt: str
    caption: str
    credit: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class MediaInput(Shape):
    """An item's texts: only the keys sent change; null empties one."""

    alt: str | None = Field(None, max_length=MAX_TEXT, description="Alternative text")
    alt_text: str | None = Field(None, max_length=MAX_TEXT, description="Same as alt")
    caption: str | None = Field(None, max_length=MAX_TEXT)
    credit: str | None = Field(None, max_length=MAX_TEXT)


class _NewItem(MediaInput):
    """What an upload may say besides the image: its texts, its name and its folder."""

    filename: str | None = Field(None, description="Original file name (its stem names the files)")
    folder: str | None = Field(None, description="Folder under uploads/ (default media.folder_pattern)")


class MediaUpload(_NewItem):
    """An image sent as JSON: base64 `data` (or a data: URL) and its texts."""

    data: str = Field(
        min_length=1, description="The image, base64 or a data: URL", json_schema_extra={"contentEncoding": "base64"}
    )


class MediaUploadForm(_NewItem):
    """An image sent as multipart/form-data: the file in `image` (or `file`) and its texts."""

    image: bytes | None = Field(None, description="The image file", json_schema_extra={"format": "binary"})
    file: bytes | None = Field(None, description="Same as image", json_schema_extra={"format": "binary"})


MULTIPART_FIELDS = tuple(MediaUploadForm.model_fields)


class LocalizedImage(Shape):
    """What became of one remote image of a document's content (localize_images)."""

    url: str
    status: Literal["ok", "failed"]
    media_id: str | None = None
    local_url: str | None = None
    error: str | None = None


class UploadBody:
    """The upload's two bodies (multipart or JSON), which the handler reads itself: a multipart
    body is streamed with limits, never parsed whole."""

    read_by_handler: ClassVar[bool] = True

    def request_body(self, spec: SpecContext, type_name: str | None) -> dict[str, Any]:
        schemas = Schemas(spec.components)
        form = schemas.ref(MediaUploadForm)
        return {
            # One file: in `image`, or in its other name `file` (both at once is a 400).
            "multipart/form-data": {"schema": {**form, "oneOf": [{"required": ["image"]}, {"required": ["file"]}]}},
            "application/json": {"schema": schemas.ref(MediaUpload)},
        }

    def answer(self, spec: SpecContext, type_name: str | None, many: bool) -> dict[str, Any]:
        raise TypeError("a request body is not an answer")


class MediaQuery(Shape):
    page: Integer = Field(1, ge=1, description="Page number")
    per_page: Annotated[int | None, Field(ge=1), BeforeValidator(read_integer)] = Field(
        None, description="Page size (default defaults.per_page)"
    )
    folder: str | None = Field(None, description="Only this folder of uploads/ and its subfolders")
    mime_type: Literal[MEDIA_TYPES] | None = Field(None, description="Only this type of original")  # type: ignore[valid-type]
    search: str | None = Field(None, description="Words in the file name or alt text")


class DeleteMediaQuery(Shape):
    force: Flag = Field(False, description="Delete even when documents use it")


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


def _publish(request: Request, name: str, item: LibraryItem) -> None:
    event = Event(name, {"media": item.as_dict(_base(request))}, source="api", key=item.id)
    services(request).bus.publish([event])


# -- upload ------------------------------------------------------------------------------------


ITEM_PATH = {"id": "Media item id"}


@operation(
    "POST",
    "/api/v1/media",
    "uploadMedia",
    "Upload an image (multipart field `image`, or JSON with base64 `data`)",
    tag="media",
    scope="write",
    body=UploadBody(),
    ok=Answer(201, MediaItem, "The stored item with its derivatives", headers=("Location",)),
    description=(
        "JPEG, PNG, WebP or AVIF, judged by content (415 otherwise), at most media.max_bytes (413) and "
        "media.max_pixels (422). EXIF orientation is applied; GPS data never reaches a derivative."
    ),
)
async def upload(call: Call) -> Response:
    request = call.request
    max_bytes = call.services.site.media.max_bytes
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
        texts = {k: form.get(k) for k in _NewItem.model_fields if form.get(k) is not None}
        if any(not isinstance(v, str) for v in texts.values()):
            raise BadRequest("only the image field may be a file")
    return _fields(data, parse_body(_NewItem, texts), part.filename)


def _fields(data: bytes, given: _NewItem, sent_name: str | None = None) -> dict[str, Any]:
    """What the library's ingest takes, from the image and the texts of either kind of upload."""
    return {
        "data": data,
        "filename": given.filename or sent_name or "image",
        "alt": given.alt or given.alt_text or "",  # alt_text is the other spelling
        "caption": given.caption or "",
        "credit": given.credit or "",
        "folder": given.folder or None,
    }


def _from_json(body: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    upload = parse_body(MediaUpload, body)
    raw = upload.data
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
    return _fields(data, upload)


# -- read, edit, delete --------------------------------------------------------------------------


@operation(
    "GET",
    "/api/v1/media",
    "listMedia",
    "List media items, newest first",
    tag="media",
    scope="read",
    query=MediaQuery,
    ok=Answer(
        200, MediaItem, "One page of items", many=True, pagination="Pagination", headers=("Link", "X-Total-Count")
    ),
)
async def list_media(call: Call) -> Response:
    query: MediaQuery = call.query
    defaults = call.services.site.defaults
    per_page = query.per_page or defaults.per_page
    if per_page > defaults.max_per_page:
        raise BadRequest(f"per_page must be at most {defaults.max_per_page}")
    items = _library(call.request).items(folder=query.folder, mime_type=query.mime_type, search=query.search)
    chunk = items[(query.page - 1) * per_page : query.page * per_page]
    paging = Page(items=[], total=len(items), page=query.page, per_page=per_page)
    base = _base(call.request)
    return json_response(
        {"data": [i.as_dict(base) for i in chunk], "pagination": paging.pagination()},
        headers=paging_headers(call.request, paging),
    )


@operation(
    "GET",
    "/api/v1/media/{id}",
    "getMedia",
    "Get a media item",
    tag="media",
    scope="read",
    path_params=ITEM_PATH,
    ok=Answer(200, MediaItem, "The item"),
)
async def get_media(call: Call) -> Response:
    item = _library(call.request).get(call.path("id"))
    return json_response({"data": item.as_dict(_base(call.request))})


@operation(
    "PATCH",
    "/api/v1/media/{id}",
    "updateMedia",
    "Change an item's alt text, caption or credit",
    tag="media",
    scope="write",
    path_params=ITEM_PATH,
    body=MediaInput,
    ok=Answer(200, MediaItem, "The item"),
    example={"alt": "A cup of filter coffee"},
)
async def patch_media(call: Call) -> Response:
    values = call.body.model_dump(exclude_unset=True)
    if "alt_text" in values:  # the other spelling of alt (alt wins when both are sent, as on upload)
        values.setdefault("alt", values["alt_text"])
        del values["alt_text"]
    library = _library(call.request)
    item = await run_in_threadpool(library.update, call.path("id"), values)
    return json_response({"data": item.as_dict(_base(call.request))})


@operation(
    "DELETE",
    "/api/v1/media/{id}",
    "deleteMedia",
    "Delete an item and every file of it",
    tag="media",
    scope="delete",
    path_params=ITEM_PATH,
    query=DeleteMediaQuery,
    ok=Answer(204, None, "Deleted"),
    errors=(409,),
    description="409 lists the documents that use the image, unless force=true.",
)
async def delete_media(call: Call) -> Response:
    request = call.request
    library = _library(request)
    item = library.get(call.path("id"))
    if not call.query.force:
        users = await run_in_threadpool(library.references, item, list(call.services.index.docs.values()))
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

    def ingest(data: bytes, filename: str, alt: str) -> LibraryItem:
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
    # /uploads/ holds the site's files, served like its pages: outside the API and its document.
    files = Route("/uploads/{path:path}", serve_file, methods=["GET", "HEAD"], include_in_schema=False)
    return [*routes_of(list_media, upload, get_media, patch_media, delete_media), files]
