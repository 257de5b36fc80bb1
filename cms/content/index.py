"""The in-memory index: every document, content type and taxonomy term of a site, and lookups.

`Index.load(site)` reads the content tree (many files are parsed in forked worker processes, see
`cms.content.forked`, and taken in path order, so the result is the one a single process gives);
`Index.refresh(paths)` re-reads changed files (the store after a write, the watcher after a hand
edit) and returns what changed. The files are the truth: a file that cannot be read is reported in
`problems` with its line and never hides the others. Lists are answered from cached pre-sorted
orderings, not by sorting on every request.
"""

from __future__ import annotations

import dataclasses
import gc
import operator
import os
import stat
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cms import __version__
from cms.config import Site
from cms.content import forked, snapshot
from cms.content.model import (
    BUILTIN_TYPES,
    ContentType,
    Document,
    content_type_from_dict,
    etag_of,
    make_document,
    validate,
)
from cms.content.names import is_id, path_id, slugify
from cms.content.parse import Location, decode, load_yaml, locate, parse_document
from cms.content.search import FullText
from cms.errors import NotFound, ParseError


@dataclass(slots=True)
class Term:
    """A taxonomy term (category, tag, custom) or an author: a file, or derived from documents."""

    taxonomy: str
    slug: str
    name: str
    description: str = ""
    parent: str | None = None
    path: str | None = None  # None: derived from documents, no file of its own
    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    etag: str | None = None


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


def _line_of_key(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return 1


# Document files to parse from which forked workers pay for themselves: a fork and sending the
# results back cost ~20 ms, parsing ~130 us per file.
PARALLEL_THRESHOLD = 500
_MAX_PARSE_WORKERS = 4
_BATCH_FILES = 64  # per batch a worker claims: small enough to balance the workers, large enough to cost nothing

# A parsed document file: the document and its schema problem, or no document and why (both None:
# the file is gone or not a regular file).
Parsed = tuple[Document | None, ParseError | None]
# The same as it crosses a process boundary or goes into the snapshot: a Document pickles ~4x faster
# as a tuple of its values than through its dataclass __getstate__, and a ParseError does not
# unpickle at all (its __init__ takes more than the message the exception keeps in `args`).
Packed = tuple[tuple[Any, ...] | None, tuple[str, int, str] | None]
_DOCUMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Document))
_document_values = operator.attrgetter(*_DOCUMENT_FIELDS)


def _pack(parsed: Parsed) -> Packed:
    doc, problem = parsed
    values = _document_values(doc) if doc is not None else None
    return values, (str(problem.path), problem.line, problem.message) if problem is not None else None


def _unpack(packed: Packed) -> Parsed:
    values, problem = packed
    return Document(*values) if values is not None else None, ParseError(*problem) if problem is not None else None


def _read_file(full: str) -> tuple[bytes, float] | None:
    """The bytes and mtime of a regular file; None when it is gone or not a regular file.

    os.open/os.read rather than open(): a buffered file object costs more than the read itself
    for the typical 10 KB post (0.1 s instead of 0.3 s for 10,000 files)."""
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):  # (checked before opening: opening a FIFO would block)
        return None
    try:
        fd = os.open(full, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, st.st_size + 1)
        if len(data) != st.st_size:  # changed since the stat, or more than one read returns: read to the end
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data, st.st_mtime


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a load allocates millions of objects that all stay (the
    index), and each full collection would walk them all again for nothing (~25% of a snapshot
    restart). What a load discards has no reference cycles, so reference counting frees it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(slots=True)
class LoadStats:
    """How `Index.load` got its documents (for the bench and the tests)."""

    parsed: int = 0  # document files parsed (the others came from the snapshot)
    workers: int = 0  # forked worker processes that parsed them (0: this process alone)
    parsed_here: int = 0  # of `parsed`, those parsed in this process (all of them without workers)


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
        files = index._scan()
        for rel in sorted(f for f, loc in files.items() if loc.kind == "schema"):
            index._load_schema(rel)
        for rel in sorted(f for f, loc in files.items() if loc.kind == "term"):
            index._load_term(rel, files[rel])
        documents = sorted(f for f, loc in files.items() if loc.kind == "document")
        with _collector_paused():
            if use_snapshot:
                index._load_documents_with_snapshot(documents, files, parse_workers)
            else:
                for rel, parsed in index._parse_all(documents, files, parse_workers):
                    index._admit(rel, parsed)
        if fill_search:
            rows = ((d.id, d.title, d.excerpt, d.body) for d in index.docs.values())
            if background_search:
                index.search.fill_in_background(rows)
            else:
                index.search.put_many(rows)
        return index

    def _snapshot_key(self) -> str:
        schemas = sorted((name, self.type_paths.get(name), ctype) for name, ctype in self.types.items())
        site = self.site
        # (The document fields too: the entries hold documents as tuples of their values, in field order.)
        return snapshot.key_of(
            __version__, site.site.timezone, sorted(site.taxonomies), schemas, site.reserved_folders, _DOCUMENT_FIELDS
        )

    def _load_documents_with_snapshot(
        self, documents: list[str], files: dict[str, Location], parse_workers: int | None
    ) -> None:
        path = self.site.state_dir / "index" / "snapshot.pickle"
        key = self._snapshot_key()
        cached: dict[str, tuple[snapshot.Signature, Packed]] = snapshot.read(path, key)
        root = str(self.root)
        signatures = {rel: snapshot.signature(os.path.join(root, rel)) for rel in documents}
        hits = {
            rel
            for rel, sig in signatures.items()
            if sig is not None and rel in cached and cached[rel][0] == sig and cached[rel][1] != (None, None)
        }
        # The files to parse go to `_parse_all` at once (so they can be parsed in parallel), and come
        # back in path order, to be taken in turn with the snapshot's documents.
        parsed_misses = self._parse_all([rel for rel in documents if rel not in hits], files, parse_workers)
        entries: dict[str, tuple[snapshot.Signature, Packed]] = {}
        try:
            for rel in documents:
                if rel in hits:
                    parsed = _unpack(cached[rel][1])
                    if parsed[0] is None or self._clash(parsed[0]) is None:
                        self._admit(rel, parsed)
                        entries[rel] = cached[rel]
                        continue
                    self.load_stats.parsed += 1  # its id or slug is taken now: read it again, as when first seen
                    self.load_stats.parsed_here += 1
                    parsed = self._parse_file(rel, files[rel])
                else:
                    parsed_rel, parsed = next(parsed_misses)
                    assert parsed_rel == rel
                doc = self._admit(rel, parsed)
                problem = self.problems.get(rel)
                if problem is not None and problem.message.startswith("duplicate "):
                    continue  # depends on other files: never cached
                sig = signatures[rel]
                if sig is not None:
                    entries[rel] = (sig, _pack((doc, problem)))
        finally:
            parsed_misses.close()  # (stops any worker still running when something above failed)
        if len(hits) < len(documents) or set(entries) != set(cached):
            try:
                snapshot.write(path, key, entries)
            except OSError:
                pass  # a read-only state folder only costs the next start its speed

    def _parse_all(
        self, rels: list[str], files: dict[str, Location], parse_workers: int | None
    ) -> Generator[tuple[str, Parsed], None, None]:
        """(path, parsed file) for each path, in order: in forked workers when there are many."""
        stats = self.load_stats
        stats.parsed += len(rels)
        workers = parse_workers
        if workers is None:
            workers = min(_MAX_PARSE_WORKERS, forked.usable_cpus()) if len(rels) >= PARALLEL_THRESHOLD else 1
        if workers <= 1 or len(rels) < 2 or not forked.can_fork():
            stats.parsed_here += len(rels)
            for rel in rels:
                yield rel, self._parse_file(rel, files[rel])
            return
        # Several batches per worker, so one slowed down (another program on its core) takes fewer.
        size = max(1, min(_BATCH_FILES, -(-len(rels) // (workers * 4))), -(-len(rels) // forked.max_batches()))
        batches = [rels[i : i + size] for i in range(0, len(rels), size)]

        def parse_batch(batch: list[str]) -> list[Packed]:  # (in a worker, what it returns is pickled)
            return [_pack(self._parse_file(rel, files[rel])) for rel in batch]

        report = forked.Report()
        results = forked.map_batches(parse_batch, batches, workers, report)
        try:
            for batch, packed in zip(batches, results, strict=True):
                for rel, item in zip(batch, packed, strict=True):
                    yield rel, _unpack(item)
        finally:
            results.close()  # (when the caller stops early: the workers are stopped now, not at garbage collection)
            stats.workers = max(stats.workers, report.workers)
            stats.parsed_here += sum(len(batches[number]) for number in report.batches_here)

    def _scan(self) -> dict[str, Location]:
        """Paths under content/ that the CMS reads; symlinks leading outside are problems."""
        found: dict[str, Location] = {}
        if not self.root.is_dir():
            return found
        reserved = self.site.reserved_folders
        stack = [(str(self.root), "")]
        while stack:  # scandir: file types come with the listing, so no stat per file
            folder, prefix = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith((".", "_")):
                        stack.append((entry.path, rel + "/"))
                    continue
                loc = locate(rel, reserved)
                if loc is None:
                    continue
                if entry.is_symlink() and not self._link_inside(entry.path):
                    self.problems[rel] = ParseError(rel, 1, "symbolic link points outside content/; ignored")
                    continue
                found[rel] = loc
        return found

    def _link_inside(self, full: str) -> bool:
        return Path(full).resolve().is_relative_to(self.root.resolve())

    def _read(self, rel: str) -> tuple[bytes, float] | None:
        try:
            return _read_file(os.path.join(self.root, rel))
        except OSError as exc:
            self.problems[rel] = ParseError(rel, 1, f"cannot read: {exc.strerror}")
            return None

    def _load_schema(self, rel: str) -> None:
        name = rel.split("/")[0]
        read = self._read(rel)
        if read is None:
            return
        try:
            raw = load_yaml(decode(read[0], rel), rel, first_line=1)
            ctype = content_type_from_dict(name, raw, base=BUILTIN_TYPES.get(name))
        except ParseError as exc:
            self.problems[rel] = exc
            return
        except ValueError as exc:
            self.problems[rel] = ParseError(rel, 1, f"invalid content type: {exc}")
            return
        self.types[name] = ctype
        self.type_paths[name] = rel

    def _load_term(self, rel: str, loc: Location) -> Term | None:
        read = self._read(rel)
        if read is None:
            return None
        data, _ = read
        try:
            parsed = parse_document(data, rel)
        except ParseError as exc:
            self.problems[rel] = exc
            return None
        meta = parsed.meta
        slug = str(meta.get("slug") or loc.slug)
        parent = meta.get("parent")
        term = Term(
            taxonomy=loc.folder,
            slug=slug,
            name=str(meta.get("name") or meta.get("title") or slug),
            description=str(meta.get("description") or ""),
            parent=str(parent) if parent else None,
            path=rel,
            meta=meta,
            body=parsed.body,
            etag=etag_of(data),
        )
        self.terms.setdefault(loc.folder, {})[slug] = term
        self.term_files[rel] = (loc.folder, slug)
        self.problems.pop(rel, None)
        return term

    def _load_document(self, rel: str, loc: Location) -> Document | None:
        return self._admit(rel, self._parse_file(rel, loc))

    def _parse_file(self, rel: str, loc: Location) -> Parsed:
        """Read and parse one document file and check it against its type; the index is not changed
        (forked workers run this: it must not depend on other documents)."""
        try:
            read = _read_file(os.path.join(self.root, rel))
        except OSError as exc:
            return None, ParseError(rel, 1, f"cannot read: {exc.strerror}")
        if read is None:
            return None, None
        data, mtime = read
        try:
            parsed = parse_document(data, rel)
        except ParseError as exc:
            return None, exc
        meta = parsed.meta
        raw_id = meta.get("id")
        doc_id = str(raw_id) if raw_id else path_id(loc.folder, loc.slug, loc.lang)
        slug = meta.get("slug")
        slug = slugify(str(slug)) if slug else loc.slug
        doc = make_document(
            doc_id=doc_id,
            type=loc.folder,
            slug=slug,
            path=rel,
            meta=meta,
            body=parsed.body,
            etag=etag_of(data),
            mtime=mtime,
            tz=self.site.tz,
            lang=loc.lang,
            id_in_file=bool(raw_id),
            taxonomies=self.site.taxonomies,
        )
        ctype = self.types.get(doc.type)
        if ctype is None:
            return doc, None
        errors = validate(meta, ctype)
        if raw_id is not None and not is_id(str(raw_id)):
            errors.setdefault("id", []).append("should be a 26-character ULID")
        if not errors:
            return doc, None
        # Reported, but the document stays visible: a typo must not unpublish it.
        name, messages = sorted(errors.items())[0]
        text = data.decode("utf-8", "replace")
        return doc, ParseError(rel, _line_of_key(text, name), f"{name} {messages[0]}")

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

    def _line_in_file(self, rel: str, key: str) -> int:
        """The line of a top-level key in a file as it is now (1 when it cannot be read)."""
        try:
            read = _read_file(os.path.join(self.root, rel))
        except OSError:
            return 1
        return _line_of_key(read[0].decode("utf-8", "replace"), key) if read is not None else 1

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
                    if old_term:
                        self.terms.get(old_term[0], {}).pop(old_term[1], None)
                    self.problems.pop(rel, None)
                    if (self.root / rel).exists():
                        self._load_term(rel, loc)
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
            not (self.root / rel).is_symlink() or self._link_inside(str(self.root / rel))
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
