"""Taxonomy term writes: `content/<taxonomy>/<slug>.md` (name, description, parent), with category events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cms.content.frontmatter import DELETE, render_document, update_document
from cms.content.index import Term
from cms.content.limits import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, text_problems
from cms.content.model import etag_of
from cms.content.names import check_slug, slugify
from cms.content.parse import decode
from cms.content.store.session import WriteSession
from cms.content.write import document_lock, read_bytes, replace_checked
from cms.errors import BadRequest, Conflict, Invalid, NotFound
from cms.events.bus import Event

_TERM_FIELDS = ("name", "description", "parent")
TERM_READ_ONLY = ("slug", "id", "taxonomy", "post_count", "count", "children", "url")  # sent back from a GET: ignored


def _may_name_a_term(slug: str | None) -> bool:
    """Whether a term could have this slug (check_slug passes)."""
    try:
        check_slug(slug)
    except BadRequest:
        return False
    return True


class TermWrites(WriteSession):
    """The writes of taxonomy terms of one site."""

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
        if not creating and slug not in self.index.terms.get(taxonomy, {}) and not _may_name_a_term(slug):
            raise NotFound(f"no {taxonomy} term {slug!r}")  # as a GET says: no term has such a slug
        slug = check_slug(slug) if slug else slugify(str(name))
        errors: dict[str, list[str]] = {}
        fields: dict[str, Any] = {}
        for key, value in values.items():
            if key in TERM_READ_ONLY:
                continue
            if key not in _TERM_FIELDS:
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
        """Remove a term's file (409 while other terms name it as their parent)."""
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


def _term_summary(term: Term) -> dict[str, Any]:
    return {"slug": term.slug, "name": term.name, "description": term.description, "parent": term.parent}
