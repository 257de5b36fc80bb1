"""One media item as its YAML sidecar holds it, the file names it owns, and the sidecar's bytes.

A sidecar `<stem>.yaml` sits beside the original and names every file of the item by its bare
file name in that same folder, so a folder can be moved or renamed as a whole and a sidecar can
never point outside its folder (names with a separator or a leading dot are refused on load).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cms.content.frontmatter import render_document
from cms.content.names import slugify
from cms.content.parse import load_yaml
from cms.errors import BadRequest, ParseError

from .convert import MIME_BY_EXT

FORMATS = ("avif", "webp")
SIDECAR_KEYS = (
    "id",
    "file",
    "original_name",
    "alt",
    "caption",
    "credit",
    "width",
    "height",
    "mime_type",
    "size",
    "checksum",
    "created_at",
    "derivatives",
    "variants",
)
TEXT_FIELDS = ("alt", "caption", "credit")
MAX_TEXT = 2000
MAX_FOLDER_DEPTH = 8
_VARIANT_RE = re.compile(r"-\d+w\.(avif|webp)$", re.IGNORECASE)


@dataclass(frozen=True)
class MediaItem:
    """An uploaded image: its original, derivatives, responsive variants and descriptive text."""

    id: str
    folder: str  # relative to uploads/, POSIX separators; "" for uploads/ itself
    file: str  # the stored original's file name
    sidecar: str  # the sidecar's file name
    original_name: str  # the file name the client (or person) gave it
    width: int
    height: int
    mime_type: str
    size: int
    checksum: str  # "sha256:<hex>" of the stored original
    created_at: str  # ISO 8601 UTC with Z
    derivatives: dict[str, str] = field(default_factory=dict)  # format -> file name (full size)
    variants: dict[int, dict[str, str]] = field(default_factory=dict)  # width -> {format: file name}
    alt: str = ""
    caption: str = ""
    credit: str = ""

    def rel(self, name: str) -> str:
        """The uploads-relative path of one of this item's files."""
        return f"{self.folder}/{name}" if self.folder else name

    @property
    def generated(self) -> list[str]:
        """File names this CMS made for the item (derivatives and variants)."""
        names = list(self.derivatives.values())
        for formats in self.variants.values():
            names.extend(formats.values())
        return names

    @property
    def names(self) -> list[str]:
        """Every file name the item owns: original, generated files, sidecar."""
        return [self.file, *self.generated, self.sidecar]

    @property
    def path(self) -> str:
        """The path clients put in `featured_image`: the full-size AVIF (the original without one)."""
        return self.rel(self.derivatives.get("avif", self.file))

    def urls(self, base: str = "") -> dict[str, Any]:
        """url_orig, url_avif, url_webp and variants, each `<base>/uploads/<path>`."""
        prefix = f"{base.rstrip('/')}/uploads/"
        return {
            "url": prefix + self.path,
            "url_orig": prefix + self.rel(self.file),
            "url_avif": prefix + self.rel(self.derivatives["avif"]) if "avif" in self.derivatives else None,
            "url_webp": prefix + self.rel(self.derivatives["webp"]) if "webp" in self.derivatives else None,
            "variants": {
                str(w): {f: prefix + self.rel(n) for f, n in v.items()} for w, v in sorted(self.variants.items())
            },
        }

    def as_dict(self, base: str = "") -> dict[str, Any]:
        """The item as the API and events show it; URLs start with `base` (e.g. the site's base_url)."""
        return {
            "id": self.id,
            "path": self.path,
            **self.urls(base),
            "folder": self.folder,
            "filename": self.original_name,
            "file": self.rel(self.file),
            "width": self.width,
            "height": self.height,
            "mime_type": self.mime_type,
            "size": self.size,
            "checksum": self.checksum,
            "alt": self.alt,
            "caption": self.caption,
            "credit": self.credit,
            "created_at": self.created_at,
        }


# -- names ---------------------------------------------------------------------------------


def stem_of(filename: str) -> str:
    """A safe file stem from a client's file name: basename only, no extension, slug rules."""
    name = unicodedata.normalize("NFC", str(filename)).replace("\\", "/").rsplit("/", 1)[-1]
    base = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    if base.lower().endswith(".orig"):
        base = base[:-5]
    stem = slugify(base, max_bytes=80) if base.strip(". ") else ""
    return stem if stem and stem != "untitled" else "image"


def file_names(stem: str, ext: str, widths: list[int] | tuple[int, ...]) -> dict[str, Any]:
    """The names an item with this stem uses: an AVIF/WebP original is `<stem>.orig.<ext>`."""
    original = f"{stem}.orig.{ext}" if ext in FORMATS else f"{stem}.{ext}"
    return {
        "original": original,
        "derivatives": {fmt: f"{stem}.{fmt}" for fmt in FORMATS},
        "variants": {w: {fmt: f"{stem}-{w}w.{fmt}" for fmt in FORMATS} for w in widths},
        "sidecar": f"{stem}.yaml",
    }


def clean_folder(raw: str) -> str:
    """A folder under uploads/ from client input: relative, no `..`, each part by the slug rules."""
    if not isinstance(raw, str):
        raise BadRequest("folder must be a string")
    text = unicodedata.normalize("NFC", raw.strip())
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise BadRequest("folder must not contain control characters")
    if text.startswith(("/", "\\")) or "\\" in text or re.match(r"^[A-Za-z]:", text):
        raise BadRequest(f"folder must be a relative path inside uploads/, got {raw[:80]!r}")
    parts = text.rstrip("/").split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise BadRequest(f"folder must not contain empty, '.' or '..' parts or hidden names, got {raw[:80]!r}")
    if len(parts) > MAX_FOLDER_DEPTH:
        raise BadRequest(f"folder may be at most {MAX_FOLDER_DEPTH} levels deep")
    return "/".join(slugify(p, max_bytes=80) for p in parts)


def plain_name(name: Any) -> bool:
    """A bare file name: no separator, not hidden, not `.`/`..`."""
    return (
        isinstance(name, str)
        and bool(name)
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and not name.startswith(".")
    )


def looks_generated(name: str) -> bool:
    """`<stem>-<w>w.avif|webp`: a responsive variant's name."""
    return bool(_VARIANT_RE.search(name))


# -- sidecar bytes ---------------------------------------------------------------------------


def render_sidecar(item: MediaItem) -> bytes:
    """The sidecar's YAML (round-trip writer: ambiguous strings quoted, key order as SIDECAR_KEYS)."""
    meta: dict[str, Any] = {
        "id": item.id,
        "file": item.file,
        "original_name": item.original_name,
        "alt": item.alt,
        "caption": item.caption,
        "credit": item.credit,
        "width": item.width,
        "height": item.height,
        "mime_type": item.mime_type,
        "size": item.size,
        "checksum": item.checksum,
        "created_at": item.created_at,
        "derivatives": dict(item.derivatives),
        "variants": {w: dict(f) for w, f in sorted(item.variants.items())},
    }
    return render_document(meta, "").split(b"---\n", 2)[1]


def parse_sidecar(data: bytes, folder: str, name: str) -> MediaItem:
    """A MediaItem from sidecar bytes; ParseError (with the sidecar's path) when it is not one."""
    rel = f"{folder}/{name}" if folder else name
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(rel, 1, "the sidecar is not UTF-8") from None
    meta = load_yaml(text, rel, first_line=1)
    problems = []
    for key in ("id", "file", "created_at", "mime_type", "checksum"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            problems.append(f"{key} must be a non-empty string")
    for key in ("width", "height", "size"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 0:
            problems.append(f"{key} must be a whole number")
    if not plain_name(meta.get("file")):
        problems.append("file must be a file name in the sidecar's folder")
    derivatives = _names_map(meta.get("derivatives"), problems, "derivatives")
    variants: dict[int, dict[str, str]] = {}
    raw_variants = meta.get("variants") or {}
    if not isinstance(raw_variants, Mapping):
        problems.append("variants must be a mapping of width -> {format: file name}")
    else:
        for width, formats in raw_variants.items():
            if not str(width).isdigit():
                problems.append(f"variant width {width!r} is not a number")
                continue
            variants[int(width)] = _names_map(formats, problems, f"variants.{width}")
    if problems:
        raise ParseError(rel, 1, "not a media sidecar: " + "; ".join(problems))
    texts = {k: str(meta.get(k) or "") for k in TEXT_FIELDS}
    return MediaItem(
        id=meta["id"],
        folder=folder,
        file=meta["file"],
        sidecar=name,
        original_name=str(meta.get("original_name") or meta["file"]),
        width=meta["width"],
        height=meta["height"],
        mime_type=meta["mime_type"],
        size=meta["size"],
        checksum=meta["checksum"],
        created_at=str(meta["created_at"]),
        derivatives=derivatives,
        variants=variants,
        **texts,
    )


def _names_map(raw: Any, problems: list[str], where: str) -> dict[str, str]:
    if raw in (None, {}):
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be a mapping of format -> file name")
        return {}
    out = {}
    for fmt, name in raw.items():
        if fmt not in FORMATS or not plain_name(name):
            problems.append(f"{where}.{fmt} must be avif or webp -> a file name in the sidecar's folder")
        else:
            out[str(fmt)] = str(name)
    return out


def mime_of(name: str) -> str | None:
    """The image type a file name suggests (only to pick candidates; content decides)."""
    return MIME_BY_EXT.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None
