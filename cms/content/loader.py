"""Reading a content tree: the scan, one file into a parsed record, many files in forked workers, the snapshot.

The loader reads and parses; the index (`cms.content.index`) decides what it takes in, because that
depends on the files taken before (a duplicate id or slug belongs to the first file in path order).
So nothing here changes an index: parsing a document file must not depend on other documents, since
forked worker processes run it, and `load_documents` hands each parsed file back through `admit`.
"""

from __future__ import annotations

import dataclasses
import gc
import operator
import os
import stat
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from cms.content.parse import Location, decode, line_of_key, load_yaml, locate, parse_document
from cms.errors import ParseError

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
DOCUMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Document))
_document_values = operator.attrgetter(*DOCUMENT_FIELDS)


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


@dataclass(slots=True)
class LoadStats:
    """How `Index.load` got its documents (for the bench and the tests)."""

    parsed: int = 0  # document files parsed (the others came from the snapshot)
    workers: int = 0  # forked worker processes that parsed them (0: this process alone)
    parsed_here: int = 0  # of `parsed`, those parsed in this process (all of them without workers)


def pack(parsed: Parsed) -> Packed:
    """A parsed file as plain tuples, for a pipe or the snapshot."""
    doc, problem = parsed
    values = _document_values(doc) if doc is not None else None
    return values, (str(problem.path), problem.line, problem.message) if problem is not None else None


def unpack(packed: Packed) -> Parsed:
    """The parsed file `pack` was given."""
    values, problem = packed
    return Document(*values) if values is not None else None, ParseError(*problem) if problem is not None else None


def read_file(full: str) -> tuple[bytes, float] | None:
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
def collector_paused() -> Iterator[None]:
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


class Loader:
    """Reads the files of one site's content tree into documents, types and terms."""

    def __init__(self, site: Site, types: Mapping[str, ContentType], stats: LoadStats) -> None:
        self.site = site
        self.root = site.content_dir
        # The index's own mapping, read at each parse: a schema the index reloads applies to the next file.
        self.types = types
        self.stats = stats

    def scan(self) -> tuple[dict[str, Location], dict[str, ParseError]]:
        """Paths under content/ that the CMS reads; symlinks leading outside are problems."""
        found: dict[str, Location] = {}
        problems: dict[str, ParseError] = {}
        if not self.root.is_dir():
            return found, problems
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
                if entry.is_symlink() and not self.link_inside(entry.path):
                    problems[rel] = ParseError(rel, 1, "symbolic link points outside content/; ignored")
                    continue
                found[rel] = loc
        return found, problems

    def link_inside(self, full: str) -> bool:
        """Whether a symbolic link under content/ resolves to a path inside it."""
        return Path(full).resolve().is_relative_to(self.root.resolve())

    def read(self, rel: str) -> tuple[bytes, float] | ParseError | None:
        """`read_file` of a path relative to content/, with an unreadable file as its problem."""
        try:
            return read_file(os.path.join(self.root, rel))
        except OSError as exc:
            return ParseError(rel, 1, f"cannot read: {exc.strerror}")

    def read_schema(self, rel: str) -> ContentType | ParseError | None:
        """The content type a `_type.yaml` declares, or why it cannot be used (None: gone)."""
        name = rel.split("/")[0]
        read = self.read(rel)
        if not isinstance(read, tuple):
            return read
        try:
            raw = load_yaml(decode(read[0], rel), rel, first_line=1)
            return content_type_from_dict(name, raw, base=BUILTIN_TYPES.get(name))
        except ParseError as exc:
            return exc
        except ValueError as exc:
            return ParseError(rel, 1, f"invalid content type: {exc}")

    def read_term(self, rel: str, loc: Location) -> Term | ParseError | None:
        """The taxonomy term a file describes, or why it cannot be read (None: gone)."""
        read = self.read(rel)
        if not isinstance(read, tuple):
            return read
        data, _ = read
        try:
            parsed = parse_document(data, rel)
        except ParseError as exc:
            return exc
        meta = parsed.meta
        slug = str(meta.get("slug") or loc.slug)
        parent = meta.get("parent")
        return Term(
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

    def parse_file(self, rel: str, loc: Location) -> Parsed:
        """Read and parse one document file and check it against its type (forked workers run this:
        it must not depend on other documents)."""
        try:
            read = read_file(os.path.join(self.root, rel))
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
        return doc, ParseError(rel, line_of_key(text, name), f"{name} {messages[0]}")

    def parse_all(
        self, rels: list[str], files: Mapping[str, Location], parse_workers: int | None
    ) -> Generator[tuple[str, Parsed], None, None]:
        """(path, parsed file) for each path, in order: in forked workers when there are many."""
        stats = self.stats
        stats.parsed += len(rels)
        workers = parse_workers
        if workers is None:
            workers = min(_MAX_PARSE_WORKERS, forked.usable_cpus()) if len(rels) >= PARALLEL_THRESHOLD else 1
        if workers <= 1 or len(rels) < 2 or not forked.can_fork():
            stats.parsed_here += len(rels)
            for rel in rels:
                yield rel, self.parse_file(rel, files[rel])
            return
        # Several batches per worker, so one slowed down (another program on its core) takes fewer.
        size = max(1, min(_BATCH_FILES, -(-len(rels) // (workers * 4))), -(-len(rels) // forked.max_batches()))
        batches = [rels[i : i + size] for i in range(0, len(rels), size)]

        def parse_batch(batch: list[str]) -> list[Packed]:  # (in a worker, what it returns is pickled)
            return [pack(self.parse_file(rel, files[rel])) for rel in batch]

        report = forked.Report()
        results = forked.map_batches(parse_batch, batches, workers, report)
        try:
            for batch, packed in zip(batches, results, strict=True):
                for rel, item in zip(batch, packed, strict=True):
                    yield rel, unpack(item)
        finally:
            results.close()  # (when the caller stops early: the workers are stopped now, not at garbage collection)
            stats.workers = max(stats.workers, report.workers)
            stats.parsed_here += sum(len(batches[number]) for number in report.batches_here)

    def snapshot_key(self, type_paths: Mapping[str, str]) -> str:
        """What every snapshot entry's meaning depends on besides its own file."""
        schemas = sorted((name, type_paths.get(name), ctype) for name, ctype in self.types.items())
        site = self.site
        # (The document fields too: the entries hold documents as tuples of their values, in field order.)
        return snapshot.key_of(
            __version__, site.site.timezone, sorted(site.taxonomies), schemas, site.reserved_folders, DOCUMENT_FIELDS
        )

    def load_with_snapshot(
        self,
        documents: list[str],
        files: Mapping[str, Location],
        parse_workers: int | None,
        key: str,
        admit: Callable[[str, Parsed], Parsed],
        clash: Callable[[Document], str | None],
    ) -> None:
        """Hand every document file to `admit` in path order, parsing only those the snapshot in
        `.cms/index/` does not hold as they are now; then refresh the snapshot.

        `admit` returns what the index took in for the file (document or None, problem or None);
        `clash` says whether a document's id or slug is taken by a file admitted before."""
        path = self.site.state_dir / "index" / "snapshot.pickle"
        cached: dict[str, tuple[snapshot.Signature, Packed]] = snapshot.read(path, key)
        root = str(self.root)
        signatures = {rel: snapshot.signature(os.path.join(root, rel)) for rel in documents}
        hits = {
            rel
            for rel, sig in signatures.items()
            if sig is not None and rel in cached and cached[rel][0] == sig and cached[rel][1] != (None, None)
        }
        # The files to parse go to `parse_all` at once (so they can be parsed in parallel), and come
        # back in path order, to be taken in turn with the snapshot's documents.
        parsed_misses = self.parse_all([rel for rel in documents if rel not in hits], files, parse_workers)
        entries: dict[str, tuple[snapshot.Signature, Packed]] = {}
        try:
            for rel in documents:
                if rel in hits:
                    parsed = unpack(cached[rel][1])
                    if parsed[0] is None or clash(parsed[0]) is None:
                        admit(rel, parsed)
                        entries[rel] = cached[rel]
                        continue
                    self.stats.parsed += 1  # its id or slug is taken now: read it again, as when first seen
                    self.stats.parsed_here += 1
                    parsed = self.parse_file(rel, files[rel])
                else:
                    parsed_rel, parsed = next(parsed_misses)
                    assert parsed_rel == rel
                admitted = admit(rel, parsed)
                problem = admitted[1]
                if problem is not None and problem.message.startswith("duplicate "):
                    continue  # depends on other files: never cached
                sig = signatures[rel]
                if sig is not None:
                    entries[rel] = (sig, pack(admitted))
        finally:
            parsed_misses.close()  # (stops any worker still running when something above failed)
        if len(hits) < len(documents) or set(entries) != set(cached):
            try:
                snapshot.write(path, key, entries)
            except OSError:
                pass  # a read-only state folder only costs the next start its speed
