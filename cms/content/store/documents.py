"""Document writes: create, update (PATCH and PUT), status changes, rename and delete.

Each one reads the file under its lock, computes the smallest change to it, validates the result,
writes it atomically only if the file is still what was read, refreshes the index and emits the
events, in that order, so a person's edit made a second ago is never lost: a PATCH lands on top of
it, and a client that sent `If-Match` for an older version gets 412.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cms.content.frontmatter import DELETE, normal_body, render_document, update_document
from cms.content.index import Change
from cms.content.model import ALIASES, ContentType, Document, Status, etag_of, frontmatter_key, url_path, validate
from cms.content.names import check_slug, new_id, slugify, unique_slug
from cms.content.parse import decode, parse_document
from cms.content.store.input import as_list, canonical, check_limits, frontmatter_changes, unchanged
from cms.content.store.session import WriteSession
from cms.content.write import (
    atomic_write,
    document_lock,
    ensure_inside,
    fsync_folder,
    read_bytes,
    replace_checked,
    stage,
)
from cms.errors import BadRequest, Conflict, Invalid
from cms.history.git import FileChange


class DocumentWrites(WriteSession):
    """The writes of documents of one site."""

    def create(
        self, type_name: str, values: Mapping[str, Any], *, source: str = "api", lang: str | None = None
    ) -> Document:
        """Write a new document; slug from the title unless given (409 if an explicit one is taken)."""
        ctype = self.content_type(type_name)
        values = canonical(values)
        check_limits(self.site, ctype, values)  # before slugify and any per-item work
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
        meta.update(frontmatter_changes(self, ctype, values, {}, creating=True))
        for f in ctype.fields:  # schema defaults fill what the client left out
            if f.default is not None and f.name not in meta:
                meta[f.name] = f.default
        meta = {k: v for k, v in meta.items() if v is not DELETE}
        self._validate(ctype, meta, exclude_id=None)
        data = render_document(meta, body)
        rel, full = self.path_of(type_name, slug, lang)
        with document_lock(self.lock_dir, rel):
            if full.exists() or full.is_symlink():
                raise Conflict(f"a file named {rel} already exists", details={"slug": slug})
            self.check_size(data)
            replace_checked(full, data, None)
            changes = self.index.refresh([rel])
            # under the lock: events of one document reach the outbox in order, commits in git too
            self.emit(changes, source, files=[FileChange(rel, None, data)], subject=f"{type_name}/{slug}")
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
        values = canonical(values)
        check_limits(self.site, ctype, values)  # before slugify and any per-item work
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
            current = self.read_current(doc, full, if_match)
            text = decode(current, rel)
            parsed = parse_document(current, rel)
            meta = parsed.meta
            changes = frontmatter_changes(self, ctype, values, meta, creating=False)
            if replace:
                keep = {"id", *changes, frontmatter_key("created_at", meta)}
                if "status" not in values:  # a PUT that does not name a status must not publish a draft
                    keep |= {"status", "draft"}
                changes.update({k: DELETE for k in meta if k not in keep})
            changes = {k: v for k, v in changes.items() if not unchanged(meta, k, v)}
            if not doc.id_in_file and "id" not in meta:
                changes["id"] = doc.id  # freeze the derived id before the path can change
            if changes or (body is not None and normal_body(body) != parsed.body):
                changes[frontmatter_key("updated_at", meta)] = self.now_text()
            else:
                body = None  # nothing to write: no new `updated`, no event
            merged = {k: v for k, v in {**meta, **changes}.items() if v is not DELETE}
            self._validate(ctype, merged, exclude_id=doc.id, touched=set(changes) if not replace else None)
            data = update_document(text, changes, body)
            self.check_size(data)
            written = [FileChange(rel, current, data)] if data != current else []
            if written:
                replace_checked(full, data, etag_of(current))
            result = self.index.refresh([rel])
            renaming = new_slug not in (None, "", doc.slug)
            if not renaming:  # under the lock: events and commits of one document in order
                self.emit(result, source, files=written, subject=f"{doc.type}/{doc.slug}")
        if renaming:  # the edit and the rename: one set of events, one commit
            pending = (result, written[0].before if written else None)
            return self.rename(self.index.get(doc.id), str(new_slug), source=source, _pending=pending)
        return self.index.get(doc.id)

    def _check_new_slug(self, doc: Document, new_slug: Any) -> str:
        slug = check_slug(new_slug)
        taken = {s for (t, s, lg) in self.index.by_slug if t == doc.type and lg == doc.lang}
        if slug.casefold() in taken and slug.casefold() != doc.slug.casefold():
            raise Conflict(f"slug {slug!r} is already used in {doc.type}", details={"slug": slug})
        return slug

    def rename(
        self,
        doc: Document,
        new_slug: str,
        *,
        source: str = "api",
        _pending: tuple[list[Change], bytes | None] | None = None,
    ) -> Document:
        """Change a slug: rename the file (never over another one) and keep the old URL in `aliases`.

        `_pending`: the index changes of an edit made just before (a PATCH with a new slug) and
        the file as it was before that edit, so edit and rename are one commit."""
        slug = self._check_new_slug(doc, new_slug)
        pending_changes, before_edit = _pending or ([], None)
        if slug == doc.slug:  # the same slug once checked: only the edit remains to commit
            with document_lock(self.lock_dir, doc.path):
                now_bytes = read_bytes(self.site.content_dir / doc.path)
                files = [FileChange(doc.path, before_edit, now_bytes)] if before_edit not in (None, now_bytes) else []
                self.emit(pending_changes, source, files=files, subject=f"{doc.type}/{doc.slug}")
            return doc
        old_rel = doc.path
        new_rel, new_full = self.path_of(doc.type, slug, doc.lang)
        old_full = self.site.content_dir / old_rel
        old_url = url_path(doc.type, doc.slug, doc.lang, self.site.site.language)
        first, second = sorted((old_rel, new_rel))  # one lock order for every process: no deadlock
        with document_lock(self.lock_dir, first), document_lock(self.lock_dir, second):
            current = self.read_current(doc, old_full)
            meta = parse_document(current, old_rel).meta
            aliases = [a for a in (meta.get("aliases") or []) if isinstance(a, str)]
            changes: dict[str, Any] = {"aliases": [*aliases, old_url] if old_url not in aliases else aliases}
            if "slug" in meta:
                changes["slug"] = slug
            if "id" not in meta:
                changes["id"] = doc.id
            data = update_document(decode(current, old_rel), changes)
            # A rename is two directory entries: the journal lets recovery finish or forget it after a kill.
            journal = self.journal_path(old_rel)
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
            files = [FileChange(old_rel, before_edit or current, None), FileChange(new_rel, None, data)]
            subject = f"{doc.type}/{doc.slug} -> {doc.type}/{slug}"
            self.emit(_merge_rename(pending_changes, result), source, files=files, subject=subject, action="renamed")
        return self.index.get(doc.id)

    def set_status(self, doc: Document, status: str, *, if_match: str | None = None, source: str = "api") -> Document:
        """publish / unpublish (draft) / trash / restore, as a minimal frontmatter change."""
        return self.update(doc, {"status": status}, if_match=if_match, source=source)

    def restore(self, doc: Document, *, if_match: str | None = None, source: str = "api") -> Document:
        """Take a document out of the trash (409 if it is not in it)."""
        if doc.stored_status is not Status.TRASH:
            raise Conflict(f"{doc.type} {doc.slug!r} is not in the trash")
        return self.update(doc, {"status": "restore"}, if_match=if_match, source=source)

    def delete(self, doc: Document, *, if_match: str | None = None, source: str = "api") -> None:
        """Remove the file for good (DELETE ?permanent=true)."""
        rel = doc.path
        full = self.site.content_dir / rel
        with document_lock(self.lock_dir, rel):
            current = self.read_current(doc, full, if_match)
            replace_checked(full, None, etag_of(current))
            changes = self.index.refresh([rel])
            self.emit(changes, source, files=[FileChange(rel, current, None)], subject=f"{doc.type}/{doc.slug}")

    def _validate(
        self, ctype: ContentType, meta: Mapping[str, Any], exclude_id: str | None, touched: set[str] | None = None
    ) -> None:
        """Invalid unless `meta` is valid. On updates only the keys the write touches are judged: a
        problem a person made by hand elsewhere in the file (or a category deleted since) must not
        block an unrelated change; `cms check` reports those."""
        errors = validate(meta, ctype)
        cats = as_list(meta.get(frontmatter_key("categories", meta)))
        known = self.index.terms.get("categories", {})
        if known:
            for cat in cats:
                if slugify(cat) not in known and cat not in known:
                    errors.setdefault("categories", []).append(f"unknown category {cat!r}")
        authors = as_list(meta.get(frontmatter_key("author", meta)))
        people = self.index.terms.get("authors", {})
        if people:
            for author in authors:
                if author not in people:
                    errors.setdefault("author", []).append(f"unknown author {author!r}")
        image = meta.get(frontmatter_key("featured_image", meta))
        if isinstance(image, str) and image and not self._upload_exists(image):
            errors.setdefault("featured_image", []).append(f"{image!r} is not a file in uploads/")
        # A value another document holds is not a bad value: the same request is fine once that one
        # changes. Alone, it is a 409 (as a taken slug or name is); with other problems, one of the 422's.
        taken: dict[str, list[str]] = {}
        for f in ctype.fields:
            if f.unique and meta.get(f.name) not in (None, ""):
                for other in self.index.docs.values():
                    if other.type == ctype.name and other.id != exclude_id and other.meta.get(f.name) == meta[f.name]:
                        taken[f.name] = [f"must be unique; {other.slug!r} already has it"]
                        break
        if touched is not None:
            spellings = {k: {k, *ALIASES.get(k, ())} for k in ("categories", "author", "featured_image")}
            errors = {k: v for k, v in errors.items() if k in touched or spellings.get(k, set()) & touched}
            taken = {k: v for k, v in taken.items() if k in touched}
        if errors:
            for name, problems in taken.items():
                errors.setdefault(name, []).extend(problems)
            raise Invalid(errors)
        if taken:
            raise Conflict(f"value(s) another {ctype.name} document holds: {', '.join(sorted(taken))}", details=taken)

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


def _merge_rename(before: list[Change], after: list[Change]) -> list[Change]:
    """An update followed by a rename is one change of one document."""
    changes = before + after
    if not changes:
        return []
    return [Change("updated", changes[0].old, changes[-1].new)]
