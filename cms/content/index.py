"""The in-memory index: every document, content type and taxonomy term of a site, and lookups.

`Index.load(site)` reads the content tree through `cms.content.loader` (many files are parsed in
forked worker processes and taken in path order, so the result is the one a single process gives);
`Index.refresh(paths)` re-reads changed files (the store after a write, the watcher after a hand
edit) and returns what changed. The files are the truth: a file that cannot be read is reported in
`problems` with its line and never hides the others. Lists are answered from cached pre-sorted
orderings, not by sorting on every request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cms.config import Site
from cms.content.loader import (
    PARALLEL_THRESHOLD,
    Loader,
    LoadStats,
    Parsed,
    Term,
    collector_paused,
    read_file,
)
from cms.content.model import BUILTIN_TYPES, ContentType, Document, etag_of
from cms.content.names import slugify
from cms.content.parse import Location, line_of_key, locate
from cms.content.search import FullText
from cms.errors import NotFound, ParseError

# (Term, LoadStats, Parsed and PARALLEL_THRESHOLD are defined by the loader; imported from here too.)
__all__ = ["PARALLEL_THRESHOLD", "Change", "Index", "LoadStats", "Parsed", "Term"]


@dataclass(frozen=True, slots=True)
class Change:
    """One document that appeared, changed or disappeared, with both versions."""

    kind: str  # "created", "updated" or "deleted"
    old: Document | None
    new: Document | None

    @property
    def doc(self) -> Document:
        return self.new or self.old  # type: ignore[return-value]

    @property
    def fields(self) -> list[str]:
        """Names of the frontmatter keys (and `content`) that differ between the versions."""
        if self.old is None or self.new is None:
            return []
        keys = set(self.old.meta) | set(self.new.meta)
        changed = sorted(k for k in keys if self.old.meta.get(k) != self.new.meta.get(k))
        if self.old.body != self.new.body:
            changed.append("content")
        return changed


class Index:
    """Documents by id, hash, path and slug; types; taxonomy terms; problems; full text."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.root = site.content_dir
        self.docs: dict[str, Document] = {}
        self.by_path: dict[str, str] = {}
        self.by_hash: dict[str, str] = {}
        self.by_slug: dict[tuple[str, str, str | None], str] = {}
        self.types: dict[str, ContentType] = dict(BUILTIN_TYPES)
        self.type_paths: dict[str, str] = {}
        self.terms: dict[str, dict[str, Term]] = {t: {} for t in (*site.taxonomy_names, "authors")}
        self.term_files: dict[str, tuple[str, str]] = {}  # path -> (taxonomy, slug)
        self.problems: dict[str, ParseError] = {}
        self.search = FullText()
        self.generation = 0
        self._lock = threading.RLock()
        self._ordered: dict[tuple[str | None, str], list[Document]] = {}
        self._members: dict[str, dict[str, list[Document]]] = {}  # taxonomy -> term slug -> documents
        # (id, taxonomy) -> (the document object, its term slugs): documents are immutable records
        # replaced on change, so an entry holds while its object is the one asked about.
        self._doc_terms: dict[tuple[str, str], tuple[Document, tuple[str, ...]]] = {}
        self._displaced: Document | None = None
        self.query_cache: dict[Any, Any] = {}  # the query engine's cache; emptied when `generation` moves
        self.load_stats = LoadStats()
        self._loader = Loader(site, self.types, self.load_stats)

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        site: Site,
        *,
        fill_search: bool = True,
        background_search: bool = True,
        use_snapshot: bool = False,
        parse_workers: int | None = None,
    ) -> Index:
        """Read the whole content tree. Full text fills in the background unless told otherwise.

        With `use_snapshot` (the server and the CLI), files unchanged since the last load come from
        `.cms/index/snapshot.pickle` instead of being parsed again, and the snapshot is refreshed.
        From PARALLEL_THRESHOLD files to parse on, forked worker processes parse them (Linux, one
        thread); `parse_workers` overrides how many (1: this process alone). The result is the same
        either way: files are taken into the index in path order, which decides duplicate ids/slugs."""
        index = cls(site)
        loader = index._loader
        files, problems = loader.scan()
        index.problems.update(problems)
        for rel in sorted(f for f, loc in files.items() if loc.kind == "schema"):
            index._load_schema(rel)
        for rel in sorted(f for f, loc in files.items() if loc.kind == "term"):
            index._load_term(rel, files[rel])
        documents = sorted(f for f, loc in files.items() if loc.kind == "document")
        with collector_paused():
            if use_snapshot:
                key = loader.snapshot_key(index.type_paths)
                loader.load_with_snapshot(documents, files, parse_workers, key, index._admit_file, index._clash)
            else:
                for rel, parsed in loader.parse_all(documents, files, parse_workers):
                    index._admit(rel, parsed)
        if fill_search:
            rows = ((d.id, d.title, d.excerpt, d.body) for d in index.docs.values())
            if background_search:
                index.search.fill_in_background(rows)
            else:
                index.search.put_many(rows)
        return index

    def _read(self, rel: str) -> tuple[bytes, float] | None:
        read = self._loader.read(rel)
        if isinstance(read, ParseError):
            self.problems[rel] = read
            return None
        return read

    def _load_schema(self, rel: str) -> None:
        ctype = self._loader.read_schema(rel)
        if isinstance(ctype, ParseError):
            self.problems[rel] = ctype
        elif ctype is not None:
            name = rel.split("/")[0]
            self.types[name] = ctype
            self.type_paths[name] = rel

    def _load_term(self, rel: str, loc: Location) -> None:
        term = self._loader.read_term(rel, loc)
        if isinstance(term, ParseError):
            self.problems[rel] = term
        elif term is not None:
            self.terms.setdefault(term.taxonomy, {})[term.slug] = term
            self.term_files[rel] = (term.taxonomy, term.slug)
            self.problems.pop(rel, None)

    def _load_document(self, rel: str, loc: Location) -> Document | None:
        return self._admit(rel, self._loader.parse_file(rel, loc))

    def _admit(self, rel: str, parsed: Parsed) -> Document | None:
        """Take a parsed file into the index, unless its id or slug belongs to another file already
        (which depends on the files taken before it: callers go in path order)."""
        doc, problem = parsed
        if doc is None:
            if problem is not None:
                self.problems[rel] = problem
            return None
        clash = self._clash(doc)
        if clash:
            key = "id" if clash.startswith("duplicate id") else "slug"
            self.problems[rel] = ParseError(rel, self._line_in_file(rel, key), clash)
            return None
        if problem is not None:
            self.problems[rel] = problem
        else:
            self.problems.pop(rel, None)
        self._add(doc)
        return doc

    def _admit_file(self, rel: str, parsed: Parsed) -> Parsed:
        """`_admit`, answering what the index now holds for the file (the snapshot keeps that)."""
        return self._admit(rel, parsed), self.problems.get(rel)

    def _line_in_file(self, rel: str, key: str) -> int:
        """The line of a top-level key in a file as it is now (1 when it cannot be read)."""
        try:
            read = read_file(os.path.join(self.root, rel))
        except OSError:
            return 1
        return line_of_key(read[0].decode("utf-8", "replace"), key) if read is not None else 1

    def _clash(self, doc: Document) -> str | None:
        other = self.docs.get(doc.id)
        if other is not None and other.path != doc.path and (self.root / other.path).exists():
            return f"duplicate id {doc.id}: also used by {other.path}"
        key = (doc.type, doc.slug.casefold(), doc.lang)
        owner = self.by_slug.get(key)
        if owner is not None and owner != doc.id and (self.root / self.docs[owner].path).exists():
            return f"duplicate slug {doc.slug!r}: also used by {self.docs[owner].path}"
        return None

    # -- mutation ----------------------------------------------------------------------------
    def _add(self, doc: Document) -> None:
        with self._lock:
            old_id = self.by_path.get(doc.path)
            if old_id is not None and old_id != doc.id:
                self._remove(old_id)
            old = self.docs.get(doc.id)
            self._displaced = old
            if old is not None:
                self._unlink(old)
            self.docs[doc.id] = doc
            self.by_path[doc.path] = doc.id
            self.by_hash[doc.hash] = doc.id
            self.by_slug[(doc.type, doc.slug.casefold(), doc.lang)] = doc.id
            self._touch(doc.type)

    def _unlink(self, doc: Document) -> None:
        self.by_path.pop(doc.path, None)
        self.by_hash.pop(doc.hash, None)
        key = (doc.type, doc.slug.casefold(), doc.lang)
        if self.by_slug.get(key) == doc.id:
            del self.by_slug[key]

    def _remove(self, doc_id: str) -> Document | None:
        with self._lock:
            doc = self.docs.pop(doc_id, None)
            if doc is not None:
                self._unlink(doc)
                for taxonomy in self.terms:  # (a deleted document's entries would hold its body)
                    self._doc_terms.pop((doc_id, taxonomy), None)
                self._touch(doc.type)
            return doc

    def _touch(self, type_name: str | None) -> None:
        self.generation += 1
        self._ordered = {k: v for k, v in self._ordered.items() if k[0] not in (type_name, None)}
        self._members = {}  # term memberships span every type: any change drops them

    def refresh(self, rels: Iterable[str]) -> list[Change]:
        """Re-read these paths (relative to content/) and apply what changed on disk."""
        changes: list[Change] = []
        reserved = self.site.reserved_folders
        # Paths that exist first: a moved file then replaces its old entry (one "updated", same id)
        # before its old path is seen gone, whichever name sorts first.
        ordered = sorted(set(rels), key=lambda r: (not os.path.lexists(self.root / r), r))
        with self._lock:
            for rel in ordered:
                loc = locate(rel, reserved)
                if loc is None:
                    continue
                if loc.kind == "schema":
                    if (self.root / rel).exists():
                        self._load_schema(rel)
                    else:
                        self.types.pop(loc.folder, None)
                        self.type_paths.pop(loc.folder, None)
                        if loc.folder in BUILTIN_TYPES:
                            self.types[loc.folder] = BUILTIN_TYPES[loc.folder]
                        self.problems.pop(rel, None)
                    self._touch(None)
                elif loc.kind == "term":
                    old_term = self.term_files.pop(rel, None)
                    self.problems.pop(rel, None)
                    if (self.root / rel).exists():
                        self._load_term(rel, loc)
                    # Replaced in place, removed only if it is gone or moved: a reader without the
                    # lock (a request, the write that made this change) never sees the term missing.
                    if old_term and self.term_files.get(rel) != old_term:
                        self.terms.get(old_term[0], {}).pop(old_term[1], None)
                    self._touch(None)
                else:
                    change = self._refresh_document(rel, loc)
                    if change is not None:
                        changes.append(change)
        return changes

    def _refresh_document(self, rel: str, loc: Location) -> Change | None:
        old_id = self.by_path.get(rel)
        old = self.docs.get(old_id) if old_id else None
        exists = (self.root / rel).is_file() and (
            not (self.root / rel).is_symlink() or self._loader.link_inside(str(self.root / rel))
        )
        if not exists:
            self.problems.pop(rel, None)
            if (self.root / rel).is_symlink() and (self.root / rel).exists():
                self.problems[rel] = ParseError(rel, 1, "symbolic link points outside content/; ignored")
            if old is None:
                return None
            self._remove(old.id)
            self.search.remove(old.id)
            return Change("deleted", old, None)
        if old is not None and rel not in self.problems and self._unchanged(rel, old):
            return None  # seen again (the watcher after a store write): no re-parse, caches stay warm
        self._displaced = None
        new = self._load_document(rel, loc)
        if new is None:  # unreadable now: keep serving the last good version, report the file
            return None
        if old is None and self._displaced is not None:  # the same document under a new path: a move
            old = self._displaced
        if old is not None and old.etag == new.etag and old.id == new.id and old.path == new.path:
            return None
        self.search.put(new.id, new.title, new.excerpt, new.body)
        if old is not None and old.id != new.id:
            self.search.remove(old.id)
            return Change("updated", old, new)
        return Change("updated" if old else "created", old, new)

    def _unchanged(self, rel: str, old: Document) -> bool:
        read = self._read(rel)
        return read is not None and etag_of(read[0]) == old.etag

    # -- lookups -----------------------------------------------------------------------------
    def get(self, ref: str, type_name: str | None = None) -> Document:
        """A document by id, short hash or slug (slug needs the type); NotFound otherwise."""
        doc_id = ref if ref in self.docs else self.by_hash.get(ref.lower())
        if doc_id is None and type_name is not None:
            doc_id = self.by_slug.get((type_name, ref.casefold(), None))
        if doc_id is None and ref.isascii() and ref.isdigit():  # numeric ids: the short hash as an integer
            doc_id = self.by_hash.get(f"{int(ref):012x}") if len(ref) <= 15 else None
        doc = self.docs.get(doc_id) if doc_id else None
        if doc is None or (type_name is not None and doc.type != type_name):
            raise NotFound(f"no {type_name or 'document'} {ref!r}")
        return doc

    def by_path_or_none(self, rel: str) -> Document | None:
        doc_id = self.by_path.get(rel)
        return self.docs.get(doc_id) if doc_id else None

    def ordered(self, type_name: str | None, key: str) -> list[Document]:
        """Documents of a type (None: all) sorted by a base key; cached until that type changes."""
        cache_key = (type_name, key)
        cached = self._ordered.get(cache_key)
        if cached is not None:
            return cached
        with self._lock:
            docs = [d for d in self.docs.values() if type_name is None or d.type == type_name]
            docs.sort(key=_SORT_KEYS[key])
            self._ordered[cache_key] = docs
        return docs

    def term_members(self, taxonomy: str) -> dict[str, list[Document]]:
        """Term slug -> documents that name it (any status), from the cached ordering."""
        cached = self._members.get(taxonomy)
        if cached is not None:
            return cached
        members: dict[str, list[Document]] = {}
        for doc in self.ordered(None, "published_at"):
            for slug in self.doc_terms(doc, taxonomy):
                members.setdefault(slug, []).append(doc)
        self._members[taxonomy] = members
        return members

    def doc_terms(self, doc: Document, taxonomy: str) -> tuple[str, ...]:
        """The term slugs a document names in a taxonomy (`Cold Brew` -> `cold-brew`)."""
        known = self._doc_terms.get((doc.id, taxonomy))
        if known is not None and known[0] is doc:
            return known[1]
        slugs = self._term_slugs(doc, taxonomy)
        if len(self._doc_terms) > 4 * len(self.docs) + 1000:
            self._doc_terms.clear()  # (entries of deleted documents)
        self._doc_terms[(doc.id, taxonomy)] = (doc, slugs)
        return slugs

    def _term_slugs(self, doc: Document, taxonomy: str) -> tuple[str, ...]:
        if taxonomy == "tags":
            values: tuple[str, ...] = doc.tags
        elif taxonomy == "categories":
            values = doc.categories
        elif taxonomy == "authors":
            values = doc.authors
        else:
            raw = doc.meta.get(taxonomy)
            values = tuple(str(v) for v in raw) if isinstance(raw, list) else ((str(raw),) if raw else ())
        return tuple(v if v == v.lower() and " " not in v else slugify(v) for v in values)

    def all_terms(self, taxonomy: str) -> dict[str, Term]:
        """Terms with a file plus terms only named by documents."""
        terms = dict(self.terms.get(taxonomy, {}))
        for slug in self.term_members(taxonomy):
            if slug not in terms:
                terms[slug] = Term(taxonomy, slug, self._display_name(taxonomy, slug))
        return terms

    def _display_name(self, taxonomy: str, slug: str) -> str:
        for doc in self.term_members(taxonomy).get(slug, ()):
            for value in doc.tags if taxonomy == "tags" else doc.categories if taxonomy == "categories" else ():
                if slugify(value) == slug or value == slug:
                    return value
        return slug

    def descendants(self, taxonomy: str, slug: str) -> set[str]:
        """A term and every term below it (categories nest through `parent`)."""
        children: dict[str, list[str]] = {}
        for term in self.terms.get(taxonomy, {}).values():
            if term.parent:
                children.setdefault(term.parent, []).append(term.slug)
        seen = {slug}
        stack = [slug]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def __len__(self) -> int:
        return len(self.docs)


def _dt_key(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("-inf")


# Base orderings kept pre-sorted (ascending; a descending list is the reverse, ties by id).
_SORT_KEYS = {
    "published_at": lambda d: (_dt_key(d.published_at), d.id),
    "updated_at": lambda d: (_dt_key(d.updated_at), d.id),
    "created_at": lambda d: (_dt_key(d.created_at), d.id),
    "title": lambda d: (d.title.casefold(), d.id),
    "slug": lambda d: (d.slug, d.id),
    "id": lambda d: d.id,
}
