"""Names of documents: ids (ULID), slugs and the rules that keep paths inside content/.

Slug rules (reliability plan 3-B.5): NFC, unicode letters/digits and `-`, lower case, no leading
`.` or `-`, at most 200 UTF-8 bytes, no Windows device names; uniqueness is compared with casefold()
so a checkout on a case-insensitive file system cannot merge two documents.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import unicodedata

from cms.content.ulid import encode
from cms.errors import BadRequest

_ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
# Windows device names; it also reserves COM¹ COM² COM³ LPT¹ LPT² LPT³ (superscript digits).
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul", *(f"{p}{i}" for p in ("com", "lpt") for i in [*range(10), "¹", "²", "³"])}
)
# The same rule as a JSON Schema pattern, for the API's document (a reserved stem is refused too).
TYPE_NAME_PATTERN = f"^(?!(?:{'|'.join(sorted(_RESERVED_STEMS))})$){_TYPE_RE.pattern}$"
# A field of a content type, a frontmatter key a query or a write may name: ASCII, as in _type.yaml.
FIELD_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
FIELD_NAME_PATTERN = f"^{FIELD_NAME}$"
# A field a query names: a base field or frontmatter key, or a path into `data` (`data.specs.0.size`).
FIELD_PATH = rf"(?:{FIELD_NAME}|data(?:\.(?:{FIELD_NAME}|[0-9]+))+)"
_FIELD_RE = re.compile(FIELD_NAME)


def is_field_name(name: object) -> bool:
    """Whether `name` may name a field (letters, digits and `_`, not starting with a digit; max 64)."""
    return isinstance(name, str) and _FIELD_RE.fullmatch(name) is not None


MAX_SLUG_BYTES = 200

_last_ms = 0
_last_rand = 0
_lock = threading.Lock()


def _reset_after_fork() -> None:
    # A forked worker inherits _last_ms/_last_rand: without a reset, parent and child would both
    # continue with _last_rand + 1 in the same millisecond and make the same id.
    global _last_ms, _last_rand, _lock
    _last_ms, _last_rand, _lock = 0, 0, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def new_id(now_ms: int | None = None) -> str:
    """A ULID: 48-bit milliseconds + 80 random bits; monotonic within one process."""
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        if ms <= _last_ms:  # same millisecond: increment so ids stay sortable in creation order
            ms, rand = _last_ms, _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_rand = ms, rand
    return encode(((ms & (2**48 - 1)) << 80) | (rand & (2**80 - 1)))


def path_id(type_name: str, slug: str, lang: str | None = None) -> str:
    """The deterministic id of a hand-made file without one: derived from where it lives."""
    key = f"{type_name}/{slug}" + (f".{lang}" if lang else "")
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:17], "big")
    return encode(digest >> 6)  # 130 bits -> 26 base32 characters


def is_id(text: str) -> bool:
    return bool(_ULID_RE.fullmatch(text))


def _is_variation(ch: str) -> bool:
    return "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"


def slugify(text: str, max_bytes: int = 80) -> str:
    """A slug from a title: unicode-aware (é, 中 and हिन्दी stay), lower case, `-` between words."""
    # NFKC folds look-alikes (ﬁ -> fi, full-width letters); lower() after it, as python-slugify did.
    text = unicodedata.normalize("NFKC", str(text)).lower()
    out: list[str] = []
    gap = False
    # Enough characters collected: NFC makes one character of at most 4 (its longest canonical
    # decomposition), so more than 4 * max_bytes of them are over max_bytes however they compose.
    enough = 4 * max_bytes
    for ch in text:
        cat = unicodedata.category(ch)
        # Marks (accents, Indic vowel signs, Arabic harakat) belong to the letter before them: a
        # `[\W_]+` split, python-slugify's, turned "हिन्दी" into "ह-न-द".
        if cat[0] in "LN" or (cat[0] == "M" and out and not gap and not _is_variation(ch)):
            # Stop before an ASCII character ("-" included): nothing composes with one, so the
            # slug cut below is the same as from the whole title, and a long title costs no more.
            if len(out) > enough and (gap or ch < "\x80"):
                break
            if gap and out:
                out.append("-")
            out.append(ch)
            gap = False
        else:
            gap = True
    slug = unicodedata.normalize("NFC", "".join(out))
    encoded = slug.encode()
    if len(encoded) > max_bytes:  # one cut at a character boundary: trimming a character at a time was quadratic
        slug = encoded[:max_bytes].decode("utf-8", "ignore").rstrip("-")
    while slug and unicodedata.category(slug[0])[0] == "M":  # a cut can leave a mark first
        slug = slug[1:]
    if not slug or slug.split(".")[0] in _RESERVED_STEMS:
        slug = f"untitled-{slug}".rstrip("-") if slug else "untitled"
    return slug


def _slug_shape_ok(slug: str) -> bool:
    """Letters, digits, marks, `-` and `_`; starts with a letter or digit, ends with no `-`/`_`."""
    first, last = unicodedata.category(slug[0])[0], slug[-1]
    if first not in "LN" or last in "-_":
        return False
    return all(unicodedata.category(ch)[0] in "LNM" or ch in "-_" for ch in slug) and not any(
        _is_variation(ch) for ch in slug
    )


def check_slug(slug: object, what: str = "slug") -> str:
    """Return the slug if it is safe as a file stem, else raise BadRequest saying why."""
    if not isinstance(slug, str) or not slug:
        raise BadRequest(f"{what} must be a non-empty string")
    if any(ord(c) < 32 or c == "\x7f" for c in slug):
        raise BadRequest(f"{what} must not contain control characters")
    if unicodedata.normalize("NFC", slug) != slug:
        raise BadRequest(f"{what} must be NFC-normalized unicode")
    if len(slug.encode()) > MAX_SLUG_BYTES:
        raise BadRequest(f"{what} is longer than {MAX_SLUG_BYTES} bytes")
    if slug in (".", "..") or "/" in slug or "\\" in slug:
        raise BadRequest(f"{what} must not contain path separators")
    if slug != slug.lower():
        raise BadRequest(f"{what} must be lower case")
    if not _slug_shape_ok(slug):
        raise BadRequest(f"{what} may hold only letters, digits and '-', and must not start or end with '-'")
    if slug in _RESERVED_STEMS:
        raise BadRequest(f"{what} {slug!r} is a reserved device name")
    return slug


def check_type_name(name: object) -> str:
    """Return a content type name if it is a safe folder name, else raise BadRequest."""
    if not isinstance(name, str) or not _TYPE_RE.fullmatch(name) or name in _RESERVED_STEMS:
        raise BadRequest("type name must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter")
    return name


def unique_slug(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever is free; `taken` holds casefolded slugs."""
    if base.casefold() not in taken:
        return base
    for n in range(2, 100_000):
        candidate = f"{base}-{n}"
        if candidate.casefold() not in taken:
            return candidate
    raise BadRequest(f"no free slug near {base!r}")
