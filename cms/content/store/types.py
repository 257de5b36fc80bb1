"""Content type writes: `content/<name>/_type.yaml`, checked to build a valid type before it is written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from cms.content.frontmatter import render_document, update_document
from cms.content.limits import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, MAX_TYPE_FIELDS, text_problems
from cms.content.model import BUILTIN_TYPES, ContentType, content_type_from_dict, etag_of
from cms.content.names import check_type_name
from cms.content.parse import decode, parse_document
from cms.content.store.documents import DocumentWrites
from cms.content.write import document_lock, read_bytes, replace_checked
from cms.errors import BadRequest, Conflict, Invalid, NotFound


class TypeWrites(DocumentWrites):
    """The writes of content type schemas (on top of the document writes: a forced delete of a type
    deletes its documents through the same path as any other delete)."""

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
