"""Image bytes -> a checked, upright RGB(A) picture -> AVIF and WebP derivatives. Pure: no files.

The magic bytes decide what a file is (the name and the client's Content-Type never do), and only
the decoder of that format may open it. Size is checked from the header before any pixel is
decoded, so a decompression bomb costs a few kilobytes of reading. Derivatives are saved without
`exif=`/`xmp=`: GPS and camera data never reach them.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError, features

from cms.errors import Invalid, UnsupportedMediaType

# Any DecompressionBombWarning is an error in this process. Set once at import: warnings.catch_warnings()
# swaps the process-wide filter list and is not safe with several threads (Python < 3.14); worker
# processes get the filter when they import this module.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
# PIL.ImageFile.LOAD_TRUNCATED_IMAGES keeps its default (False): a truncated file fails load() with 422.


@dataclass(frozen=True)
class Kind:
    """One accepted input format."""

    name: str  # jpeg, png, webp, avif
    pil: str  # the only Pillow decoder allowed to open it
    mime: str
    ext: str  # extension of the stored original


KINDS = {
    "jpeg": Kind("jpeg", "JPEG", "image/jpeg", "jpg"),
    "png": Kind("png", "PNG", "image/png", "png"),
    "webp": Kind("webp", "WEBP", "image/webp", "webp"),
    "avif": Kind("avif", "AVIF", "image/avif", "avif"),
}
MIME_BY_EXT = {"jpeg": "image/jpeg", **{k.ext: k.mime for k in KINDS.values()}}
ACCEPTED = "JPEG, PNG, WebP or AVIF"


def sniff(head: bytes) -> Kind | None:
    """The accepted format these first bytes (>= 32) start, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return KINDS["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return KINDS["png"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return KINDS["webp"]
    if head[4:8] == b"ftyp" and _avif_brand(head):
        return KINDS["avif"]
    return None


def _avif_brand(head: bytes) -> bool:
    """Major brand avif/avis, or either among the compatible brands of the ftyp box."""
    size = int.from_bytes(head[0:4], "big")
    box = head[8 : min(size, len(head))] if size >= 16 else head[8:16]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4) if i != 4}  # skip minor_version
    return bool(brands & {b"avif", b"avis"})


def check_kind(head: bytes) -> Kind:
    """The sniffed format, or 415 naming what was sent when it can tell (GIF, SVG, HTML)."""
    kind = sniff(head)
    if kind is not None:
        return kind
    if head.startswith((b"GIF87a", b"GIF89a")):
        raise UnsupportedMediaType(f"GIF images are not accepted; send {ACCEPTED}")
    text = head.lstrip()[:256].lower()
    if text.startswith((b"<svg", b"<?xml")) or b"<svg" in text:
        raise UnsupportedMediaType(f"SVG images are not accepted (they can hold scripts); send {ACCEPTED}")
    raise UnsupportedMediaType(f"the file is not a {ACCEPTED} image (judged by its content, not its name)")


@dataclass(frozen=True)
class Settings:
    """Encoder and limit settings, from the site's [media] section."""

    max_pixels: int = 50_000_000
    widths: tuple[int, ...] = (480, 960, 1600)
    avif_quality: int = 60
    avif_speed: int = 6
    webp_quality: int = 80


def open_image(data: bytes, kind: Kind) -> Image.Image:
    """A lazy Pillow handle on bytes of a sniffed kind; no other decoder may claim them."""
    return Image.open(io.BytesIO(data), formats=[kind.pil])


def check_header(data: bytes, kind: Kind, max_pixels: int) -> None:
    """422 for too many pixels, animation or a broken structure, from the header and `verify()` only."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow warns above it (an error here), errors above twice it
    with _decode_errors(kind, max_pixels), open_image(data, kind) as probe:
        _check_size(probe.size, max_pixels)
        if getattr(probe, "is_animated", False) or getattr(probe, "n_frames", 1) > 1:
            raise Invalid({"image": ["animated images are not supported"]}, "animated images are not supported")
        probe.verify()  # checksums and structure; the handle is unusable afterwards


def decode(data: bytes, kind: Kind, max_pixels: int) -> Image.Image:
    """Check, then fully decode an image of a sniffed kind: 422 for bombs, animation, truncation, corruption."""
    check_header(data, kind, max_pixels)
    with _decode_errors(kind, max_pixels):
        im = open_image(data, kind)
        im.load()
    return im


@contextlib.contextmanager
def _decode_errors(kind: Kind, max_pixels: int) -> Iterator[None]:
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_big(max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as exc:
        message = f"the {kind.name.upper()} image is truncated or corrupt"
        raise Invalid({"image": [f"{message}: {str(exc)[:120]}"]}, message) from None


def _too_big(max_pixels: int) -> Invalid:
    message = f"the image has more than {max_pixels:,} pixels"
    return Invalid({"image": [message]}, message)


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise Invalid({"image": ["the image has no pixels"]}, "the image has no pixels")
    if width * height > max_pixels:
        raise _too_big(max_pixels)


def upright(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """The image rotated as its EXIF orientation says, in RGB or RGBA, and the ICC profile worth keeping."""
    icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA", "P", "L", "LA") else None
    im = ImageOps.exif_transpose(im)
    return _to_rgb(im), icc or None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency; 16-bit and CMYK converted, not clipped."""
    mode = im.mode
    if mode in ("RGB", "RGBA"):
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: scale 0-65535 down to 0-255 (a plain convert("L") clips everything above 255 to white)
        grey = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        return grey.convert("RGB")
    if mode == "F":
        return im.convert("L").convert("RGB")
    if mode == "P":
        return im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        return im.convert("RGBA")
    if mode == "L" and "transparency" in im.info:
        return im.convert("RGBA")
    return im.convert("RGB")  # L, 1, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, LAB, HSV


def plan_widths(width: int, widths: tuple[int, ...]) -> list[int]:
    """The variant widths for an image this wide: only those smaller than it (never upscaled)."""
    return sorted({w for w in widths if w < width})


def resized(im: Image.Image, width: int) -> Image.Image:
    height = max(1, round(im.height * width / im.width))
    return im.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(im: Image.Image, fmt: str, settings: Settings, icc: bytes | None) -> bytes:
    """AVIF or WebP bytes of `im`; never with EXIF or XMP."""
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if fmt == "avif":
        # One encoder thread: the pool's processes are the parallelism (a second thread measured no gain).
        im.save(out, "AVIF", quality=settings.avif_quality, speed=settings.avif_speed, max_threads=1, **extra)
    elif fmt == "webp":
        # method 2, not Pillow's default 4: measured 3-4x faster on a 12 MP photo for files ~1% larger
        im.save(out, "WEBP", quality=settings.webp_quality, method=2, **extra)
    else:  # pragma: no cover - callers pass one of the two
        raise ValueError(fmt)
    return out.getvalue()


def encodable_formats() -> dict[str, bool]:
    """Which derivative formats this Pillow build can encode (`cms doctor` reports them)."""
    return {fmt: bool(features.check(fmt)) for fmt in ("avif", "webp")}


# -- stripping the original (media.strip_original) ------------------------------------------


def strip_metadata(data: bytes, kind: Kind, im: Image.Image) -> bytes:
    """The original without EXIF/XMP: lossless for JPEG and PNG, re-encoded for WebP and AVIF.

    A JPEG keeps only its orientation tag, so it still displays upright.
    """
    if kind.name == "jpeg":
        return _strip_jpeg(data, im)
    if kind.name == "png":
        return _strip_png(data)
    if not im.info.get("exif") and not im.info.get("xmp"):
        return data  # nothing to strip: never re-encode (a rebuild must not lose quality each time)
    out = io.BytesIO()
    upright_im, icc = upright(im)
    extra = {"icc_profile": icc} if icc else {}
    if kind.name == "webp":
        upright_im.save(out, "WEBP", quality=95, method=4, **extra)
    else:
        upright_im.save(out, "AVIF", quality=90, speed=6, **extra)
    return out.getvalue()


def _strip_jpeg(data: bytes, im: Image.Image) -> bytes:
    """Drop APP1 (EXIF, XMP) and comment segments; add back an EXIF holding only the orientation."""
    orientation = im.getexif().get(0x0112, 1)
    out = bytearray(data[:2])
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos : pos + 2 + length]
        if marker not in (0xE1, 0xFE):  # keep JFIF (E0), ICC (E2), Adobe (EE), tables...
            out += segment
        elif marker == 0xE1 and orientation != 1 and segment[4:10] == b"Exif\x00\x00":
            exif = Image.Exif()
            exif[0x0112] = orientation
            payload = b"Exif\x00\x00" + exif.tobytes()
            out += b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
            orientation = 1  # written once
        pos += 2 + length
    return bytes(out + data[pos:])


_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _strip_png(data: bytes) -> bytes:
    """Drop the eXIf and text chunks (XMP lives in iTXt); every other chunk is copied as it is."""
    out = bytearray(data[:8])
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if ctype not in _PNG_DROP:
            out += data[pos:end]
        pos = end
        if ctype == b"IEND":
            break
    return bytes(out)
