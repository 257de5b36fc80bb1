"""The one write path: validate -> atomic, checked, minimal-diff write -> index refresh -> events.

The API and the CLI call these methods and nothing else writes into content/, so no caller can
forget a step. Each write happens under the document's cross-process lock and is computed from
the file as it is on disk at that moment, so a person's edit made a second ago is never lost:
a PATCH lands on top of it, and a client that sent `If-Match` for an older version gets 412.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cms.config import Site
from cms.content.index import Change, Index, Term
from cms.content.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    MAX_TYPE_FIELDS,
    over_limits,
    text_problems,
)
from cms.content.model import (
    ALIASES,
    BUILTIN_TYPES,
    ContentType,
    Document,
    Status,
    content_type_from_dict,
    etag_of,
    frontmatter_key,
    to_datetime,
    url_path,
    validate,
)
from cms.content.names import check_slug, check_type_name, new_id, slugify, unique_slug
from cms.content.parse import MAX_DOCUMENT_BYTES, decode, parse_document
from cms.content.write import (
    DELETE,
    atomic_write,
    document_lock,
    ensure_inside,
    fsync_folder,
    read_bytes,
    remove_temp_files,
    render_document,
    replace_checked,
    stage,
    update_document,
)
from cms.errors import BadRequest, Conflict, Invalid, NotFound, PreconditionFailed
from cms.events.bus import Bus, Event, document_events

# Fields a client may send back from a GET that the store computes itself: accepted, ignored.
READ_ONLY = frozenset(
    {
        "hash",
        "type",
        "url",
        "html",
        "words",
        "reading_time",
        "snippet",
        "path",
        "etag",
        "created_at",
        "updated_at",
        "createdAt",
        "updatedAt",
        "excerpt_derived",
    }
)
STATUS_INPUTS = ("draft", "published", "scheduled", "trash")
_DATETIME_FIELDS = ("published_at", "updated_at", "created_at", "expires_at")
_LIST_FIELDS = ("tags", "categories", "aliases")
_TEXT_FIELDS = ("title", "excerpt", "featured_image", "seo_title", "seo_description", "author")
_CANONICAL_INPUT = {
    "date": "published_at",
    "publishedAt": "published_at",
    "publishDate": "published_at",
    "expires": "expires_at",
    "expiresAt": "expires_at",
    "summary": "excerpt",
    "description": "excerpt",
    "category": "categories",
    "category_id": "categories",
    "categoryId": "categories",
    "authorId": "author",
    "author_id": "author",
    "meta_title": "seo_title",
    "meta_description": "seo_description",
    "thumbnail": "featured_image",
    "image": "featured_image",
    "body": "content",
}


class Store:
    """Writes documents, content types and taxonomy terms of one site."""

    def __init__(
        self,
        site: Site,
        index: Index,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.site = site
        self.index = index
        self.bus = bus or Bus()
        self.clock = clock
        self.lock_dir = site.state_dir / "locks"

    # -- helpers -----------------------------------------------------------------------------
    def url(self, doc: Document) -> str:
        return self.site.site.base_url.rstrip("/") + url_path(doc.type, doc.slug, doc.lang, self.site.site.language)

    def content_type(self, name: str) -> ContentType:
        check_type_name(name)
        ctype = self.index.types.get(name)
        if ctype is None:
            if (self.site.content_dir / name).is_dir() and name not in self.site.reserved_folders:
                return ContentType(name)  # a folder of Markdown without a schema: free-form
            raise NotFound(f"no content type {name!r}")
        return ctype

    def _path(self, type_name: str, slug: str, lang: str | None = None) -> tuple[str, Path]:
        rel = f"{type_name}/{slug}{'.' + lang if lang else ''}.md"
        full = self.site.content_dir / rel
        ensure_inside(full.parent if full.parent.exists() else self.site.content_dir, self.site.content_dir)
        return rel, full

    def _now_text(self) -> datetime:
        return self.clock().astimezone(self.site.tz).replace(microsecond=0)

    def _emit(self, changes: list[Change], source: str, extra: list[Event] | None = None) -> list[Event]:
        now = self.clock()
        events: list[Event] = []
        for change in changes:
            events += document_events(change.old, change.new, now, source=source, fields=change.fields, url=self.url)
        events += extra or []
        if events:
            self.bus.publish(events)
        return events

    def _journal(self, old_rel: str) -> Path:
        return self.site.state_dir / "journal" / (hashlib.sha256(old_rel.encode()).hexdigest()[:24] + ".json")

    def recover(self) -> int:
        """Startup recovery: finish renames a kill interrupted, remove temp files dead writers left.

        Returns how many leftovers were cleaned up."""
        cleaned = 0
        folder = self.site.state_dir / "journal"
        for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                plan = json.loads(entry.read_text())
                old, new = self.site.content_dir / plan["old"], self.site.content_dir / plan["new"]
                written = read_bytes(new)
                if written is not None and etag_of(written) == plan["etag"] and old.exists():
                    os.unlink(old)  # the new file holds everything, the old URL in its aliases
                    cleaned += 1
            except (ValueError, KeyError, OSError):
                pass  # an unreadable journal entry: the files are left as they are
            entry.unlink(missing_ok=True)
        return cleaned + remove_temp_files(self.site.content_dir) + remove_temp_files(self.site.uploads_dir)

    # -- documents ---------------------------------------------------------------------------
    def create(
        self, type_name: str, values: Mapping[str, Any], *, source: str = "api", lang: str | None = None
    ) -> Document:
        """Write a new document; slug from the title unless given (409 if an explicit one is taken)."""
        ctype = self.content_type(type_name)
        values = _canonical(values)
        self._check_limits(ctype, values)  # before slugify and any per-item work
        body = values.pop("content", "")
        if body is None or not isinstance(body, str):
            raise Invalid({"content": ["must be a string"]})
        title = values.get("title")
        taken = {s for (t, s, lg) in self.index.by_slug if t == type_name and lg == lang}
        if values.get("slug") not in (None, ""):
            slug = check_slug(values.pop("slug"))
            if slug.casefold() in taken:
                raise Conflict(f"slug {slug!r} is already used in {type_name}", details={"slug": slug})
        else:
            values.pop("slug", None)
            if not isinstance(title, str) or not title.strip():
                raise Invalid({"title": ["is required"]})
            slug = unique_slug(slugify(title), taken)
        values.setdefault("status", "draft")
        meta: dict[str, Any] = {"id": new_id(int(self.clock().timestamp() * 1000))}
        meta.update(self._frontmatter_changes(ctype, values, {}, creating=True))
        for f in ctype.fields:  # schema defaults fill what the client left out
            if f.default is not None and f.name not in meta:
                meta[f.name] = f.default
        meta = {k: v for k, v in meta.items() if v is not DELETE}
        self._validate(ctype, meta, exclude_id=None)
        data = render_document(meta, body)
        rel, full = self._path(type_name, slug, lang)
        with document_lock(self.lock_dir, rel):
            if full.exists() or full.is_symlink():
                raise Conflict(f"a file named {rel} already exists", details={"slug": slug})
            self._check_size(data)
            replace_checked(full, data, None)
            changes = self.index.refresh([rel])
            self._emit(changes, source)  # under the lock: events of one document reach the outbox in order
        return self.index.get(meta["id"])

    def update(
        self,
        doc: Document,
        values: Mapping[str, Any],
        *,
        if_match: str | None = None,
        replace: bool = False,
        source: str = "api",
    ) -> Document:
        """PATCH (merge) or PUT (replace) a document; 412 if `if_match` is not the file on disk."""
        ctype = self.content_type(doc.type)
        values = _canonical(values)
        self._check_limits(ctype, values)  # before slugify and any per-item work
        given_id = values.pop("id", None)
        if given_id not in (None, doc.id):
            raise Invalid({"id": ["is read-only"]})
        new_slug = values.pop("slug", None)
        if new_slug not in (None, "", doc.slug):
            self._check_new_slug(doc, new_slug)  # before any write: a refused slug changes nothing
        body = values.pop("content", None)
        if body is not None and not isinstance(body, str):
            raise Invalid({"content": ["must be a string"]})
        if replace:
            if not isinstance(values.get("title"), str) or body is None:
                raise Invalid(
                    {
                        k: ["is required"]
                        for k in ("title", "content")
                        if (k == "content" and body is None) or (k == "title" and "title" not in values)
                    }
                )
        rel = doc.path
        full = self.site.content_dir / rel
        with document_lock(self.lock_dir, rel):
            current = read_bytes(full)
            if current is None:
                raise NotFound(f"{doc.type} {doc.slug!r} no longer exists on disk")
            self._check_match(current, if_match)
            text = decode(current, rel)
            parsed = parse_document(current, rel)
            meta = parsed.meta
            changes = self._frontmatter_changes(ctype, values, meta, creating=False)
            if replace:
                keep = {"id", *changes, frontmatter_key("created_at", meta)}
                if "status" not in values:  # a PUT that does not name a status must not publish a draft
                    keep |= {"status", "draft"}
                changes.update({k: DELETE for k in meta if k not in keep})
            changes = {k: v for k, v in changes.items() if not _unchanged(meta, k, v)}
            if not doc.id_in_file and "id" not in meta:
                changes["id"] = doc.id  # freeze the derived id before the path can change
            if changes or (body is not None and _normal_body(body) != parsed.body):
                changes[frontmatter_key("updated_at", meta)] = self._now_text()
            else:
                body = None  # nothing to write: no new `updated`, no event
            merged = {k: v for k, v in {**meta, **changes}.items() if v is not DELETE}
            self._validate(ctype, merged, exclude_id=doc.id, touched=set(changes) if not replace else None)
            data = update_document(text, changes, body)
            self._check_size(data)
            if data != current:
                replace_checked(full, data, etag_of(current))
            result = self.index.refresh([rel])
            renaming = new_slug not in (None, "", doc.slug)
            if not renaming:
                self._emit(result, source)  # under the lock: events of one document reach the outbox in order
        if renaming:
            return self.rename(self.index.get(doc.id), str(new_slug), source=source, _pending=result)
        return self.index.get(doc.id)

    def _check_new_slug(self, doc: Document, new_slug: Any) -> str:
        slug = check_slug(new_slug)
        taken = {s for (t, s, lg) in self.index.by_slug if t == doc.type and lg == doc.lang}
        if slug.casefold() in taken and slug.casefold() != doc.slug.casefold():
            raise Conflict(f"slug {slug!r} is already used in {doc.type}", details={"slug": slug})
        return slug

    def rename(
        self, doc: Document, new_slug: str, *, source: str = "api", _pending: list[Change] | None = None
    ) -> Document:
        """Change a slug: rename the file (never over another one) and keep the old URL in `aliases`."""
        slug = self._check_new_slug(doc, new_slug)
        if slug == doc.slug:
            self._emit(_pending or [], source)
            return doc
        old_rel = doc.path
        new_rel, new_full = self._path(doc.type, slug, doc.lang)
        old_full = self.site.content_dir / old_rel
        old_url = url_path(doc.type, doc.slug, doc.lang, self.site.site.language)
        first, second = sorted((old_rel, new_rel))  # one lock order for every process: no deadlock
        with document_lock(self.lock_dir, first), document_lock(self.lock_dir, second):
            current = read_bytes(old_full)
            if current is None:
                raise NotFound(f"{doc.type} {doc.slug!r} no longer exists on disk")
            meta = parse_document(current, old_rel).meta
            aliases = [a for a in (meta.get("aliases") or []) if isinstance(a, str)]
            changes: dict[str, Any] = {"aliases": [*aliases, old_url] if old_url not in aliases else aliases}
            if "slug" in meta:
                changes["slug"] = slug
            if "id" not in meta:
                changes["id"] = doc.id
            data = update_document(decode(current, old_rel), changes)
            # A rename is two directory entries: the journal lets recovery finish or forget it after a kill.
            journal = self._journal(old_rel)
            atomic_write(journal, json.dumps({"old": old_rel, "new": new_rel, "etag": etag_of(data)}).encode())
            staged = stage(new_full, data)
            try:
                os.link(staged, new_full)  # fails if the name is taken: never clobbers
            except FileExistsError:
                os.unlink(staged)
                os.unlink(journal)
                raise Conflict(f"a file named {new_rel} already exists", details={"slug": slug}) from None
            os.unlink(staged)
            os.unlink(old_full)
            fsync_folder(new_full.parent)
            fsync_folder(old_full.parent)
            os.unlink(journal)
            result = self.index.refresh([old_rel, new_rel])
            self._emit(_merge_rename(_pending or [], result), source)
        return self.index.get(doc.id)

    def set_status(self, doc: Document, status: str, *, if_match: str | None = None, source: str = "api") -> Document:
        """publish / unpublish (draft) / trash / restore, as a minimal frontmatter change."""
        return self.update(doc, {"status": status}, if_match=if_match, source=source)

    def restore(self, doc: Document, *, if_match: str | None = None, source: str = "api") -> Document:
        if doc.stored_status is not Status.TRASH:
            raise Conflict(f"{doc.type} {doc.slug!r} is not in the trash")
        return self.update(doc, {"status": "restore"}, if_match=if_match, source=source)

    def delete(self, doc: Document, *, if_match: str | None = None, source: str = "api") -> None:
        """Remove the file for good (DELETE ?permanent=true)."""
        rel = doc.path
        full = self.site.content_dir / rel
        with document_lock(self.lock_dir, rel):
            current = read_bytes(full)
            if current is None:
                raise NotFound(f"{doc.type} {doc.slug!r} no longer exists on disk")
            self._check_match(current, if_match)
            replace_checked(full, None, etag_of(current))
            changes = self.index.refresh([rel])
            self._emit(changes, source)

    # -- checks ------------------------------------------------------------------------------
    @staticmethod
    def _check_match(current: bytes, if_match: str | None) -> None:
        if if_match is not None:
            etag = etag_of(current)
            wanted = {t.strip().removeprefix("W/").strip('"') for t in if_match.split(",")}
            if "*" not in wanted and etag not in wanted:
                raise PreconditionFailed("the document changed since you read it", current_etag=etag)

    def _check_limits(self, ctype: ContentType, values: Mapping[str, Any]) -> None:
        lists = {*_LIST_FIELDS, "author", "authors", *self.site.taxonomies}
        lists.update(f.name for f in ctype.fields if f.type in ("tags", "list", "reference"))
        errors = over_limits(values, lists)
        if errors:
            raise Invalid(errors)

    @staticmethod
    def _check_size(data: bytes) -> None:
        if len(data) > MAX_DOCUMENT_BYTES:
            raise Invalid({"content": [f"the document would be {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}"]})

    def _validate(
        self, ctype: ContentType, meta: Mapping[str, Any], exclude_id: str | None, touched: set[str] | None = None
    ) -> None:
        """Invalid unless `meta` is valid. On updates only the keys the write touches are judged: a
        problem a person made by hand elsewhere in the file (or a category deleted since) must not
        block an unrelated change; `cms check` reports those."""
        errors = validate(meta, ctype)
        cats = _as_list(meta.get(frontmatter_key("categories", meta)))
        known = self.index.terms.get("categories", {})
        if known:
            for cat in cats:
                if slugify(cat) not in known and cat not in known:
                    errors.setdefault("categories", []).append(f"unknown category {cat!r}")
        authors = _as_list(meta.get(frontmatter_key("author", meta)))
        people = self.index.terms.get("authors", {})
        if people:
            for author in authors:
                if author not in people:
                    errors.setdefault("author", []).append(f"unknown author {author!r}")
        image = meta.get(frontmatter_key("featured_image", meta))
        if isinstance(image, str) and image and not self._upload_exists(image):
            errors.setdefault("featured_image", []).append(f"{image!r} is not a file in uploads/")
        for f in ctype.fields:
            if f.unique and meta.get(f.name) not in (None, ""):
                for other in self.index.docs.values():
                    if other.type == ctype.name and other.id != exclude_id and other.meta.get(f.name) == meta[f.name]:
                        errors.setdefault(f.name, []).append(f"must be unique; {other.slug!r} already has it")
                        break
        if touched is not None:
            spellings = {k: {k, *ALIASES.get(k, ())} for k in ("categories", "author", "featured_image")}
            errors = {k: v for k, v in errors.items() if k in touched or spellings.get(k, set()) & touched}
        if errors:
            raise Invalid(errors)

    def _upload_exists(self, ref: str) -> bool:
        if ref.startswith(("http://", "https://")):
            return False
        rel = ref.split("?")[0].lstrip("/").removeprefix(self.site.paths.uploads + "/").removeprefix("uploads/")
        if not rel or ".." in Path(rel).parts:
            return False
        path = self.site.uploads_dir / rel
        try:
            return ensure_inside(path, self.site.uploads_dir).is_file()
        except BadRequest:
            return False

    # -- values -> frontmatter ---------------------------------------------------------------
    def _frontmatter_changes(
        self, ctype: ContentType, values: Mapping[str, Any], meta: Mapping[str, Any], *, creating: bool
    ) -> dict[str, Any]:
        """Canonical API values -> {frontmatter key: value or DELETE}; Invalid names each bad field."""
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {}
        tz = self.site.tz
        declared = {f.name for f in ctype.fields}
        for name, value in values.items():
            if name in READ_ONLY:
                continue
            if name == "status":
                out.update(self._status_changes(value, meta, values, errors))
                continue
            if name == "data":
                if not isinstance(value, Mapping):
                    errors["data"] = ["must be an object"]
                    continue
                for key, item in value.items():
                    if not str(key).isidentifier():
                        errors[f"data.{key}"] = ["is not a valid field name"]
                    elif key in _RESERVED_INPUT and key not in declared:
                        errors[f"data.{key}"] = ["is a base field: send it at the top level, not in data"]
                    elif not ctype.builtin and declared and key not in declared:
                        errors[f"data.{key}"] = [f"is not a field of {ctype.name}"]
                    else:
                        out[str(key)] = DELETE if item is None else _field_value(ctype, str(key), item, tz, errors)
                continue
            if name in _DATETIME_FIELDS:
                if value in (None, ""):
                    out[frontmatter_key(name, meta)] = DELETE
                    continue
                moment = to_datetime(value, tz) if isinstance(value, str) else None
                if moment is None:
                    errors[name] = [f"must be an ISO 8601 date-time, got {value!r}"[:200]]
                    continue
                out[frontmatter_key(name, meta)] = moment.astimezone(tz)
                continue
            if name in _LIST_FIELDS or name == "author":
                items = _as_list(value) if value is not None else []
                if value is not None and not _is_list_of_strings(value):
                    errors[name] = ["must be a string or a list of strings"]
                    continue
                key = frontmatter_key(name, meta)
                if not items:
                    out[key] = DELETE
                elif key in ("category", "author") or (name == "author" and len(items) == 1):
                    out[key] = items[0] if len(items) == 1 else items
                else:
                    out[key] = [slugify(i) if name in ("tags", "categories") and i != i.lower() else i for i in items]
                continue
            if name in _TEXT_FIELDS:
                if value is None:
                    out[frontmatter_key(name, meta)] = DELETE
                elif not isinstance(value, str):
                    errors[name] = [f"must be a string, got {type(value).__name__}"]
                else:
                    out[frontmatter_key(name, meta)] = value
                continue
            if name in declared or ctype.builtin and name.isidentifier() and name not in _RESERVED_INPUT:
                out[name] = DELETE if value is None else _field_value(ctype, name, value, tz, errors)
                continue
            errors[name] = ["is not a field of this content type"]
        if errors:
            raise Invalid(errors)
        return out

    def _status_changes(
        self, value: Any, meta: Mapping[str, Any], values: Mapping[str, Any], errors: dict[str, list[str]]
    ) -> dict[str, Any]:
        if value not in (*STATUS_INPUTS, "restore"):
            errors["status"] = [f"must be one of {', '.join(STATUS_INPUTS)}"]
            return {}
        date_key = frontmatter_key("published_at", meta)
        out: dict[str, Any] = {}
        if value == "trash":
            return {"status": "trash"}
        if value == "restore":
            return {"status": DELETE}
        out["status"] = DELETE
        if value == "draft":
            out["draft"] = True
            return out
        out["draft"] = False if "draft" in meta else DELETE
        given = values.get("published_at")
        if value == "scheduled":
            moment = to_datetime(given, self.site.tz) if isinstance(given, str) else None
            current = to_datetime(meta.get(date_key), self.site.tz)
            target = moment or current
            if target is None or target <= self.clock():
                errors["published_at"] = ["a scheduled document needs a published_at in the future"]
            return out
        if given in (None, "") and meta.get(date_key) in (None, ""):
            out[date_key] = self._now_text()  # publish records the moment, when none was set
        return out

    # -- content types -----------------------------------------------------------------------
    def save_type(self, name: str, raw: Mapping[str, Any], *, creating: bool, source: str = "api") -> ContentType:
        """Write `content/<name>/_type.yaml` after checking it builds a valid type."""
        check_type_name(name)
        if name in self.site.reserved_folders:
            raise BadRequest(f"{name!r} is reserved for taxonomies and authors")
        raw = {k: v for k, v in raw.items() if k not in ("builtin",)}
        raw["name"] = name
        too_long = {
            key: problems
            for key, limit in (("label", MAX_TITLE_CHARS), ("description", MAX_DESCRIPTION_CHARS))
            if (problems := text_problems(raw.get(key), limit))
        }
        fields = raw.get("fields")
        if isinstance(fields, list | dict) and len(fields) > MAX_TYPE_FIELDS:
            too_long["fields"] = [f"must have at most {MAX_TYPE_FIELDS} fields, got {len(fields)}"]
        if too_long:
            raise Invalid(too_long)
        try:
            ctype = content_type_from_dict(name, raw, base=BUILTIN_TYPES.get(name))
        except ValueError as exc:
            raise Invalid({"fields": [str(exc)]}) from None
        rel = f"{name}/_type.yaml"
        full = self.site.content_dir / rel
        with document_lock(self.lock_dir, rel):
            current = read_bytes(full)
            if creating and (current is not None or name in BUILTIN_TYPES):
                raise Conflict(f"content type {name!r} already exists")
            if not creating and current is None and name not in self.index.types:
                raise NotFound(f"no content type {name!r}")
            if current is None:
                data = render_document(raw, "").split(b"---\n", 2)[1]
            else:
                text = decode(current, rel)
                old = parse_document(b"---\n" + current + b"---\n", rel).meta
                changes = {k: v for k, v in raw.items() if old.get(k) != v}
                data = update_document(f"---\n{text}---\n", changes).split(b"---\n", 2)[1]
            replace_checked(full, data, etag_of(current) if current is not None else None)
            self.index.refresh([rel])
        return self.index.types[name] if name in self.index.types else ctype

    def delete_type(self, name: str, *, force: bool = False) -> None:
        """Remove a type's schema; with documents only when forced (then the documents go too)."""
        self.content_type(name)
        if name in BUILTIN_TYPES:
            raise Conflict(f"{name!r} is built in and cannot be deleted")
        docs = [d for d in self.index.docs.values() if d.type == name]
        if docs and not force:
            raise Conflict(
                f"content type {name!r} has {len(docs)} document(s); add force=true to delete them too",
                details={"documents": len(docs)},
            )
        for doc in docs:
            self.delete(doc, source="api")
        schema = self.site.content_dir / name / "_type.yaml"
        if schema.exists():
            os.unlink(schema)
        with contextlib.suppress(OSError):  # an empty folder would still answer as a free-form type
            schema.parent.rmdir()
        self.index.refresh([f"{name}/_type.yaml"])

    # -- taxonomy terms ----------------------------------------------------------------------
    def save_term(
        self, taxonomy: str, slug: str | None, values: Mapping[str, Any], *, creating: bool, source: str = "api"
    ) -> Term:
        """Write `content/<taxonomy>/<slug>.md` (name, description, parent) and emit category events."""
        if taxonomy not in self.site.taxonomy_names:
            raise NotFound(f"no taxonomy {taxonomy!r}")
        name = values.get("name")
        if creating and (not isinstance(name, str) or not name.strip()):
            raise Invalid({"name": ["is required"]})
        too_long = {
            key: problems
            for key, limit in (("name", MAX_TITLE_CHARS), ("description", MAX_DESCRIPTION_CHARS))
            if (problems := text_problems(values.get(key), limit))
        }
        if too_long:  # before slugify(name)
            raise Invalid(too_long)
        slug = check_slug(slug) if slug else slugify(str(name))
        errors: dict[str, list[str]] = {}
        fields: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("slug", "id", "post_count", "count", "children", "url"):
                continue
            if key not in ("name", "description", "parent"):
                errors[key] = ["is not a field of a taxonomy term"]
            elif value is not None and not isinstance(value, str):
                errors[key] = ["must be a string"]
            else:
                fields[key] = DELETE if value in (None, "") else value
        parent = fields.get("parent")
        if isinstance(parent, str):
            if parent not in self.index.terms.get(taxonomy, {}):
                errors["parent"] = [f"unknown {taxonomy} term {parent!r}"]
            elif slug in self.index.descendants(taxonomy, slug) and parent in self.index.descendants(taxonomy, slug):
                errors["parent"] = ["would make a cycle"]
        if errors:
            raise Invalid(errors)
        rel = f"{taxonomy}/{slug}.md"
        full = self.site.content_dir / rel
        with document_lock(self.lock_dir, rel):
            current = read_bytes(full)
            if creating and current is not None:
                raise Conflict(f"{taxonomy} term {slug!r} already exists", details={"slug": slug})
            if not creating and current is None and slug not in self.index.terms.get(taxonomy, {}):
                raise NotFound(f"no {taxonomy} term {slug!r}")
            if current is None:
                data = render_document({k: v for k, v in fields.items() if v is not DELETE}, "")
            else:
                data = update_document(decode(current, rel), fields)
            replace_checked(full, data, etag_of(current) if current is not None else None)
            self.index.refresh([rel])
        term = self.index.terms[taxonomy][slug]
        if taxonomy == "categories":
            action = "created" if creating else "updated"
            self.bus.publish([Event(f"category.{action}", {"category": _term_summary(term)}, source=source)])
        return term

    def delete_term(self, taxonomy: str, slug: str, *, source: str = "api") -> None:
        term = self.index.terms.get(taxonomy, {}).get(slug)
        if term is None or term.path is None:
            raise NotFound(f"no {taxonomy} term {slug!r} with a file")
        children = [t.slug for t in self.index.terms[taxonomy].values() if t.parent == slug]
        if children:
            raise Conflict(f"{slug!r} has child terms: {', '.join(children)}", details={"children": children})
        rel = term.path
        with document_lock(self.lock_dir, rel):
            current = read_bytes(self.site.content_dir / rel)
            if current is not None:
                replace_checked(self.site.content_dir / rel, None, etag_of(current))
            self.index.refresh([rel])
        if taxonomy == "categories":
            self.bus.publish([Event("category.deleted", {"category": _term_summary(term)}, source=source)])


_RESERVED_INPUT = frozenset(
    {"id", "slug", "draft", "status", "lang", "translation_key"} | {k for names in ALIASES.values() for k in names}
)


def _term_summary(term: Term) -> dict[str, Any]:
    return {"slug": term.slug, "name": term.name, "description": term.description, "parent": term.parent}


def _canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise BadRequest("the request body must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[_CANONICAL_INPUT.get(key, key)] = value
    return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if "," in value else ([value] if value else [])
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)]


def _is_list_of_strings(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _field_value(ctype: ContentType, name: str, value: Any, tz: Any, errors: dict[str, list[str]]) -> Any:
    """A JSON value as the frontmatter should hold it: date-time strings become timestamps."""
    f = ctype.field(name)
    if f is not None and f.type in ("date", "datetime") and isinstance(value, str):
        moment = to_datetime(value, tz)
        if moment is None:
            errors[name] = [f"must be an ISO 8601 {f.type}, got {value!r}"[:200]]
            return value
        return moment.astimezone(tz).date() if f.type == "date" else moment.astimezone(tz)
    return value


def _unchanged(meta: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether writing `value` under `key` would leave the frontmatter as it is."""
    if value is DELETE:
        return key not in meta
    return key in meta and type(meta[key]) is type(value) and meta[key] == value


def _normal_body(body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") or not body else body + "\n"


def _merge_rename(before: list[Change], after: list[Change]) -> list[Change]:
    """An update followed by a rename is one change of one document."""
    changes = before + after
    if not changes:
        return []
    return [Change("updated", changes[0].old, changes[-1].new)]
