"""The content model: documents, content types and their fields, status, validation. Pure: no I/O.

A `Document` is what one Markdown file says, with the frontmatter's Hugo/Jekyll-style keys
resolved into the canonical attributes the query engine, API and build use (`published_at`,
`excerpt`, `categories`, ...). The raw frontmatter stays in `meta`, so nothing a person wrote
is lost, and `data` holds the keys that are not base fields (a schema's custom fields).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

# Status, Field, to_datetime and the field type names are re-exported: most modules name them from here.
from cms.content.docfields import FRONTMATTER_SPELLINGS
from cms.content.docfields import Status as Status
from cms.content.fieldtypes import FIELD_TYPE_ALIASES as FIELD_TYPE_ALIASES
from cms.content.fieldtypes import FIELD_TYPE_CLASSES
from cms.content.fieldtypes import FIELD_TYPES as FIELD_TYPES
from cms.content.fieldtypes import Field as Field
from cms.content.fieldtypes import to_datetime as to_datetime
from cms.content.limits import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from cms.content.names import is_field_name
from cms.content.ulid import id_moment

# Frontmatter spellings accepted for each canonical attribute, first one wins. The first
# spelling is the one the writer uses for new keys (declared in cms/content/docfields.py).
ALIASES: dict[str, tuple[str, ...]] = FRONTMATTER_SPELLINGS
BASE_KEYS = frozenset(
    {"id", "title", "slug", "draft", "status", "tags", "aliases", "translation_key", "lang"}
    | {k for names in ALIASES.values() for k in names}
)
WRITE_KEY = {canonical: names[0] for canonical, names in ALIASES.items()}

_EXCERPT_CHARS = 200
_WORDS_PER_MINUTE = 230
_MD_NOISE = re.compile(r"!\[[^\]]*\]\([^)]*\)|\[\^[^\]]*\]|<[^>]+>|[*_`~#>]+|\[([^\]]*)\]\([^)]*\)")


def short_hash(doc_id: str) -> str:
    """The 12-hex permanent address of a document, derived from its id (stable across edits)."""
    return hashlib.sha256(doc_id.encode()).hexdigest()[:12]


def etag_of(data: bytes) -> str:
    """The strong ETag of a file: the sha256 of its exact bytes."""
    return "sha256-" + hashlib.sha256(data).hexdigest()


def _first(meta: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in meta and meta[name] is not None:
            return meta[name]
    return None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v is not None and not isinstance(v, dict | list))
    return (str(value),)


def derive_excerpt(body: str, limit: int = _EXCERPT_CHARS) -> str:
    """Plain text of the first paragraph of a Markdown body, cut at a word boundary."""
    paragraph: list[str] = []
    fence = ""
    # Line by line: a fence may hold blank lines, and a heading may sit right above its paragraph.
    for line in [*body[:8000].splitlines(), ""]:
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        opens_fence = stripped.startswith(("```", "~~~"))
        if paragraph and stripped and set(stripped) in ({"="}, {"-"}):  # the lines above were a heading
            paragraph = []
            continue
        rule = len(stripped) >= 3 and set(stripped.replace(" ", "")) in ({"*"}, {"-"}, {"_"})
        if opens_fence or rule or not stripped or stripped.startswith(_NOT_PROSE):
            text = " ".join(_MD_NOISE.sub(lambda m: m.group(1) or "", " ".join(paragraph)).split())
            if text:
                return _cut(text, limit)
            paragraph = []
            if opens_fence:
                fence = stripped[:3]
            continue
        paragraph.append(_LIST_MARKER.sub("", stripped))
    return ""


_NOT_PROSE = ("#", "|", "<", "[^")
_LIST_MARKER = re.compile(r"^(?:[-*+]|\d{1,9}[.)])\s+")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"


@dataclass(slots=True, eq=False)
class Document:
    """One content file as the index holds it."""

    id: str
    type: str
    slug: str
    path: str  # relative to the content folder, POSIX separators
    meta: dict[str, Any]  # the frontmatter as the reader loaded it
    body: str
    etag: str  # sha256 of the file bytes: changes with every edit, by anyone
    mtime: float
    lang: str | None = None
    id_in_file: bool = True  # False: the id was derived from the path (hand-made file)
    title: str = ""
    hash: str = ""
    published_at: datetime | None = None
    updated_at: datetime | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    stored_status: Status = Status.PUBLISHED  # draft, published or trash: the time part comes later
    excerpt: str = ""
    excerpt_derived: bool = False
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    featured_image: str | None = None
    aliases: tuple[str, ...] = ()
    _folded: str | None = None  # the case-folded title, made on first use by `$contains` filters
    _words: int = -1  # counted on first use: splitting every body costs half a second per 10,000 at load
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def author(self) -> str | None:
        return self.authors[0] if self.authors else None

    @property
    def folded_title(self) -> str:
        if self._folded is None:
            self._folded = self.title.casefold()
        return self._folded

    @property
    def words(self) -> int:
        if self._words < 0:
            self._words = len(self.body.split())
        return self._words

    @property
    def reading_minutes(self) -> int:
        return max(1, math.ceil(self.words / _WORDS_PER_MINUTE))

    def status_at(self, now: datetime) -> Status:
        """The status at a moment: a published document dated later is scheduled, past `expires` expired."""
        if self.stored_status is not Status.PUBLISHED:
            return self.stored_status
        if self.published_at is not None and self.published_at > now:
            return Status.SCHEDULED
        if self.expires_at is not None and self.expires_at <= now:
            return Status.EXPIRED
        return Status.PUBLISHED

    def is_live(self, now: datetime) -> bool:
        """Whether the public sees it now."""
        return self.status_at(now) is Status.PUBLISHED


def make_document(
    *,
    doc_id: str,
    type: str,
    slug: str,
    path: str,
    meta: dict[str, Any],
    body: str,
    etag: str,
    mtime: float,
    tz: tzinfo,
    lang: str | None = None,
    id_in_file: bool = True,
    taxonomies: Iterable[str] = (),
) -> Document:
    """Resolve the frontmatter's keys into a Document."""
    title = meta.get("title")
    stored = Status.PUBLISHED
    raw_status = meta.get("status")
    if raw_status in ("trash", "draft"):
        stored = Status(raw_status)
    elif meta.get("draft") is True:
        stored = Status.DRAFT
    excerpt = _first(meta, ALIASES["excerpt"])
    derived = not isinstance(excerpt, str) or not excerpt.strip()
    if derived:
        excerpt = derive_excerpt(body)
    image = _first(meta, ALIASES["featured_image"])
    custom = set(taxonomies)
    data = {k: v for k, v in meta.items() if k not in BASE_KEYS or k in custom}
    published = to_datetime(_first(meta, ALIASES["published_at"]), tz)
    # No `created` key and no date (a new draft): the ULID id the CMS wrote records its creation.
    created = (
        to_datetime(_first(meta, ALIASES["created_at"]), tz) or published or (id_moment(doc_id) if id_in_file else None)
    )
    return Document(
        id=doc_id,
        type=type,
        slug=slug,
        path=path,
        meta=meta,
        body=body,
        etag=etag,
        mtime=mtime,
        lang=lang,
        id_in_file=id_in_file,
        title=str(title) if title is not None else slug.replace("-", " ").capitalize(),
        hash=short_hash(doc_id),
        published_at=published,
        updated_at=to_datetime(_first(meta, ALIASES["updated_at"]), tz) or published or created,
        created_at=created,
        expires_at=to_datetime(_first(meta, ALIASES["expires_at"]), tz),
        stored_status=stored,
        excerpt=str(excerpt),
        excerpt_derived=derived,
        tags=_strings(meta.get("tags")),
        categories=_strings(_first(meta, ALIASES["categories"])),
        authors=_strings(_first(meta, ALIASES["author"])),
        featured_image=str(image) if isinstance(image, str) and image else None,
        aliases=_strings(meta.get("aliases")),
        data=data,
    )


# -- content types and validation ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentType:
    """A folder of content/ and its schema (from `_type.yaml`, or built in for posts and pages)."""

    name: str
    label: str = ""
    description: str = ""
    fields: tuple[Field, ...] = ()
    title_field: str = "title"
    slug_field: str = "title"
    pages: bool = True  # the static build gives each document a page
    template: str | None = None
    builtin: bool = False

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name.replace("_", " ").title(),
            "description": self.description,
            "title_field": self.title_field,
            "slug_field": self.slug_field,
            "pages": self.pages,
            "template": self.template,
            "builtin": self.builtin,
            "fields": [f.as_dict() for f in self.fields],
        }


_COMMON_FIELDS = (
    Field("title", "text", "Title", required=True, max_length=MAX_TITLE_CHARS),
    Field("summary", "text", "Summary", max_length=MAX_DESCRIPTION_CHARS),
    Field("date", "datetime", "Published at"),
    Field("updated", "datetime", "Updated at"),
    Field("expires", "datetime", "Expires at"),
    Field("draft", "boolean", "Draft"),
    Field("tags", "tags", "Tags", to="tags"),
    Field("categories", "tags", "Categories", to="categories"),
    Field("author", "reference", "Author", to="authors"),
    Field("featured_image", "image", "Featured image"),
    Field("seo_title", "text", "SEO title", max_length=200),
    Field("seo_description", "text", "SEO description", max_length=160),
    Field("aliases", "list", "Old URLs"),
)
BUILTIN_TYPES: dict[str, ContentType] = {
    "posts": ContentType("posts", "Posts", "Dated articles of the blog.", _COMMON_FIELDS, builtin=True),
    "pages": ContentType("pages", "Pages", "Standalone pages (about, contact, ...).", _COMMON_FIELDS, builtin=True),
}


def content_type_from_dict(name: str, raw: Mapping[str, Any], *, base: ContentType | None = None) -> ContentType:
    """Build a ContentType from a `_type.yaml` mapping; raises ValueError naming the bad key."""
    if not isinstance(raw, Mapping):
        raise ValueError("a content type must be a mapping")
    known = {
        "name",
        "label",
        "description",
        "fields",
        "title_field",
        "titleField",
        "slug_field",
        "slugField",
        "pages",
        "template",
        "icon",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    raw_fields = raw.get("fields") or []
    if isinstance(raw_fields, Mapping):  # {name: {type: ...}} is accepted too
        if not all(isinstance(v, Mapping) or v is None for v in raw_fields.values()):
            raise ValueError("each field in a fields mapping must be a mapping of its settings")
        raw_fields = [{"name": k, **(v or {})} for k, v in raw_fields.items()]
    if not isinstance(raw_fields, list):
        raise ValueError("fields must be a list")
    fields = [field_from_dict(f, i) for i, f in enumerate(raw_fields)]
    names = [f.name for f in fields]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"field {sorted(dupes)[0]!r} is declared twice")
    if base is not None:  # a _type.yaml for posts or pages extends the built-in schema
        own = {f.name for f in fields}
        fields = [f for f in base.fields if f.name not in own] + fields
    for key in ("label", "description", "template"):
        if raw.get(key) is not None and not isinstance(raw.get(key), str):
            raise ValueError(f"{key} must be a string")
    pages = raw.get("pages", True if base is None else base.pages)
    if not isinstance(pages, bool):
        raise ValueError("pages must be true or false")
    return ContentType(
        name=name,
        label=str(raw.get("label") or (base.label if base else "")),
        description=str(raw.get("description") or (base.description if base else "")),
        fields=tuple(fields),
        title_field=str(raw.get("title_field") or raw.get("titleField") or "title"),
        slug_field=str(raw.get("slug_field") or raw.get("slugField") or "title"),
        pages=pages,
        template=raw.get("template"),
        builtin=base is not None,
    )


def field_from_dict(raw: Any, position: int = 0) -> Field:
    """One field declaration; raises ValueError naming the field and key."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ValueError(f"fields[{position}] needs a name")
    name = raw["name"]
    if not is_field_name(name):
        raise ValueError(f"field name {name!r} must be letters, digits and _ (max 64)")
    ftype = FIELD_TYPE_ALIASES.get(str(raw.get("type", "text")), str(raw.get("type", "text")))
    if ftype not in FIELD_TYPES:
        raise ValueError(f"field {name!r}: unknown type {raw.get('type')!r}; known: {', '.join(sorted(FIELD_TYPES))}")
    known = {
        "name",
        "type",
        "label",
        "required",
        "default",
        "unique",
        "min",
        "max",
        "max_length",
        "maxLength",
        "options",
        "to",
        "help",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"field {name!r}: unknown key {unknown[0]!r}")
    options = raw.get("options") or ()
    if not isinstance(options, list | tuple):
        raise ValueError(f"field {name!r}: options must be a list")
    for key in ("min", "max"):
        if raw.get(key) is not None and (not isinstance(raw[key], int | float) or isinstance(raw[key], bool)):
            raise ValueError(f"field {name!r}: {key} must be a number")
    max_length = raw.get("max_length", raw.get("maxLength"))
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 0):
        raise ValueError(f"field {name!r}: max_length must be a non-negative integer")
    return Field(
        name=name,
        type=ftype,
        label=str(raw.get("label") or ""),
        required=bool(raw.get("required", False)),
        default=raw.get("default"),
        unique=bool(raw.get("unique", False)),
        min=raw.get("min"),
        max=raw.get("max"),
        max_length=max_length,
        options=tuple(options),
        to=raw.get("to"),
        help=str(raw.get("help") or ""),
    )


def validate(meta: Mapping[str, Any], ctype: ContentType) -> dict[str, list[str]]:
    """Field-level messages for a frontmatter mapping against its type; empty when valid."""
    errors: dict[str, list[str]] = {}
    for f in ctype.fields:
        value = meta.get(f.name)
        if value is None or value == "" or value == []:
            if f.required:
                errors[f.name] = ["is required"]
            continue
        problems = FIELD_TYPE_CLASSES[f.type].check(value, f)
        if problems:
            errors[f.name] = problems
    return errors


def url_path(type_name: str, slug: str, lang: str | None = None, default_lang: str | None = None) -> str:
    """The document's path on the built site: pages at /<slug>/, posts and others at /<type>/<slug>/."""
    prefix = f"/{lang}" if lang and lang != default_lang else ""
    if type_name == "pages":
        return f"{prefix}/{slug}/"
    return f"{prefix}/{type_name}/{slug}/"


def frontmatter_key(canonical: str, meta: Mapping[str, Any]) -> str:
    """The key a canonical attribute is written under: the spelling the file already uses, else Hugo's."""
    for name in ALIASES.get(canonical, (canonical,)):
        if name in meta:
            return name
    return WRITE_KEY.get(canonical, canonical)
