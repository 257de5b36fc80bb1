"""Keeping the library and uploads/ in step: `scan` (everything), `sync` (after file events) and
`rebuild` (the CLI).

`Upkeep` owns what the disk holds that the list does not: `problems` (why a path is not in the
library), `stale` (sidecars whose original is gone) and `failed` (dropped images that could not be
converted). It reaches the library only through `Shelf`, the narrow part of `MediaLibrary` it uses
(the list, the folders with their lock and names, conversion): the library imports this module,
never the other way round.

`sync` re-reads the folders that changed: sidecars edited, added or removed by hand (or by another
worker) reach the list, and images dropped in without a sidecar are taken in (derivatives and a
sidecar written beside them). `rebuild` regenerates every item with the current settings, takes
in dropped images and prunes what deleted originals left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cms.content.write import TEMP_PREFIX, fsync_folder, read_bytes
from cms.errors import BadRequest, CMSError, NotFound, ParseError, PayloadTooLarge

from . import convert
from .files import checksum, generated_files, generated_names, new_item, rewrite_sidecar, write_all
from .item import FORMATS, MediaItem, file_names, looks_generated, mime_of, parse_sidecar, render_sidecar, stem_of
from .pool import Converted

log = logging.getLogger("cms.media")

Progress = Callable[[str, int, int], None]  # (uploads-relative path, done, total)
_ORIGINAL_EXTS = (".jpg", ".jpeg", ".png")


@dataclass
class RebuildReport:
    """What `rebuild` did: regenerated items, images taken in, pruned sidecars, failures."""

    regenerated: list[MediaItem] = field(default_factory=list)
    ingested: list[MediaItem] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # sidecars whose original was gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class Shelf(Protocol):
    """What upkeep uses of the library: the in-memory list, the folders (lock, path, free names), conversion."""

    root: Path
    clock: Callable[[], datetime]

    def items(self) -> list[MediaItem]: ...
    def in_folder(self, folder: str) -> list[MediaItem]: ...
    def put(self, item: MediaItem) -> None: ...
    def replace_all(self, items: dict[str, MediaItem]) -> None: ...
    def replace_folder(self, folder: str, items: list[MediaItem]) -> None: ...
    def folder_lock(self, folder: str) -> contextlib.AbstractContextManager[None]: ...
    def folder_path(self, folder: str, *, create: bool = False) -> Path: ...
    def free_names(self, base: Path, folder: str, stem: str, ext: str, *, own: str | None = None) -> dict[str, Any]: ...
    def convert(self, data: bytes, kind: convert.Kind) -> Converted: ...


class Upkeep:
    """The library's account of uploads/ beyond its list: problems, stale sidecars, failed images."""

    def __init__(self, shelf: Shelf, *, max_bytes: int) -> None:
        self.shelf = shelf
        self.max_bytes = max_bytes
        self.problems: dict[str, str] = {}  # uploads-relative path -> why it is not in the library
        self.stale: dict[str, MediaItem] = {}  # sidecar path -> item whose original is gone
        self.failed: dict[str, tuple[int, int]] = {}  # dropped files that failed: path -> (size, mtime_ns)
        self._lock = threading.Lock()

    # -- reading the disk ------------------------------------------------------------------------
    def scan(self) -> None:
        """Forget everything and read every sidecar under uploads/."""
        items: dict[str, MediaItem] = {}
        problems: dict[str, str] = {}
        stale: dict[str, MediaItem] = {}
        for folder, names in self.walk():
            for item in self.read_folder(folder, names, problems, stale):
                if item.id in items:
                    other = items[item.id].rel(items[item.id].sidecar)
                    problems[item.rel(item.sidecar)] = f"duplicate id {item.id} (also in {other})"
                    continue
                items[item.id] = item
        with self._lock:
            self.problems = problems
            self.stale = stale
        self.shelf.replace_all(items)

    def walk(self) -> Iterator[tuple[str, list[str]]]:
        """(folder relative to uploads/, sorted file names) for every folder, hidden ones left out."""
        root = self.shelf.root
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(root).as_posix()
            yield ("" if rel == "." else rel), sorted(filenames)

    def read_folder(
        self, folder: str, names: list[str], problems: dict[str, str], stale: dict[str, MediaItem]
    ) -> list[MediaItem]:
        """The items of a folder's sidecars; bad ones go to `problems`, those missing their original to `stale`."""
        out = []
        base = self.shelf.root / folder
        present = set(names)
        for name in names:
            if not name.endswith(".yaml") or name.startswith("."):
                continue
            rel = f"{folder}/{name}" if folder else name
            try:
                data = read_bytes(base / name)
                if data is None:
                    continue
                item = parse_sidecar(data, folder, name)
            except (ParseError, BadRequest) as exc:  # BadRequest: a symbolic link
                problems[rel] = exc.message
                continue
            if item.file not in present:
                problems[rel] = f"its original {item.file!r} is missing (`cms media rebuild` removes the leftovers)"
                stale[rel] = item
                continue
            out.append(item)
        return out

    def resolved(self, rel: str) -> None:
        """A path the library now lists is no longer a problem."""
        with self._lock:
            self.problems.pop(rel, None)

    # -- following the disk ----------------------------------------------------------------------
    def sync(self, paths: Iterable[str | Path]) -> list[MediaItem]:
        """Re-read the folders holding these paths; take in unclaimed images there. Returns the new items."""
        root = self.shelf.root
        folders = set()
        for path in paths:
            rel = _relative(root, path)
            if rel is not None:
                folders.add(rel if (root / rel).is_dir() else rel.rpartition("/")[0])
        new: list[MediaItem] = []
        for folder in sorted(folders):
            new += self._sync_folder(folder)
        return new

    def _sync_folder(self, folder: str) -> list[MediaItem]:
        base = self.shelf.root / folder
        if not base.is_dir() or base.is_symlink():
            self._replace_folder(folder, [], {}, {})
            return []
        problems: dict[str, str] = {}
        stale: dict[str, MediaItem] = {}
        with self.shelf.folder_lock(folder):
            names = sorted(os.listdir(base))
            items = self.read_folder(folder, names, problems, stale)
        self._replace_folder(folder, items, problems, stale)
        new = []
        for name in unclaimed(names, items):
            item = self.take_in(folder, name)
            if item is not None:
                new.append(item)
        return new

    def _replace_folder(
        self, folder: str, items: list[MediaItem], problems: dict[str, str], stale: dict[str, MediaItem]
    ) -> None:
        """Make the library's view of one folder what was just read from it (failures stay reported)."""
        self.shelf.replace_folder(folder, items)
        with self._lock:
            for known in (self.problems, self.stale):
                for rel in [r for r in known if r.rpartition("/")[0] == folder and r not in self.failed]:
                    del known[rel]
            self.problems.update(problems)
            self.stale.update(stale)

    def take_in(self, folder: str, name: str) -> MediaItem | None:
        """Give an image a person put in uploads/ its derivatives and a sidecar; None if it cannot be."""
        shelf = self.shelf
        base = shelf.root / folder
        rel = f"{folder}/{name}" if folder else name
        try:
            st = os.lstat(base / name)
        except FileNotFoundError:
            return None
        if self.failed.get(rel) == (st.st_size, st.st_mtime_ns):
            return None  # failed before and unchanged since: not converted again on every event
        try:
            if st.st_size > self.max_bytes:
                raise PayloadTooLarge(f"larger than {self.max_bytes} bytes")
            data = read_bytes(base / name)
            if data is None:
                return None
            kind = convert.check_kind(data[:64])
            converted = shelf.convert(data, kind)
        except CMSError as exc:
            with self._lock:
                self.failed[rel] = (st.st_size, st.st_mtime_ns)
                self.problems[rel] = exc.message
            log.warning("cannot take in %s: %s", rel, exc.message)
            return None
        with shelf.folder_lock(folder):
            items = self.read_folder(folder, sorted(os.listdir(base)), {}, {})
            claimed = {n.casefold() for i in items for n in i.names}
            if read_bytes(base / name) != data or name.casefold() in claimed:
                return None  # changed or claimed meanwhile (an API upload, another worker): nothing to do
            names = shelf.free_names(base, folder, stem_of(name), kind.ext, own=name)
            original = name
            if name.casefold() in {g.casefold() for g in generated_names(names)}:
                original = names["original"]  # photo.avif -> photo.orig.avif: the derivative takes photo.avif
                os.rename(base / name, base / original)
            item = new_item(shelf.clock(), folder, names, original, name, kind, converted)
            files = generated_files(item, converted)
            if converted.original is not data:
                files.insert(0, (item.file, converted.original))
            files.append((item.sidecar, render_sidecar(item)))
            write_all(base, files, replace_existing=True)  # orphan derivatives of this very file may be replaced
            shelf.put(item)
        with self._lock:
            self.failed.pop(rel, None)
            self.problems.pop(rel, None)
        log.info("media %s taken in from %s", item.id, item.rel(item.file))
        return item

    # -- rebuilding ------------------------------------------------------------------------------
    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Regenerate every item's derivatives with the current settings, take in dropped images, prune leftovers."""
        shelf = self.shelf
        report = RebuildReport()
        self.scan()
        report.pruned = self.prune()
        items = shelf.items()
        dropped = [
            (folder, name) for folder, names in self.walk() for name in unclaimed(names, shelf.in_folder(folder))
        ]
        total = len(items) + len(dropped)
        done = 0
        for item in items:
            try:
                report.regenerated.append(self.regenerate(item))
            except CMSError as exc:
                report.failed.append((item.rel(item.file), exc.message))
            done += 1
            if progress:
                progress(item.rel(item.file), done, total)
        for folder, name in dropped:
            rel = f"{folder}/{name}" if folder else name
            self.failed.pop(rel, None)  # a rebuild tries everything again
            taken = self.take_in(folder, name)
            if taken is None:
                report.failed.append((rel, self.problems.get(rel, "changed while converting")))
            else:
                report.ingested.append(taken)
            done += 1
            if progress:
                progress(rel, done, total)
        return report

    def prune(self) -> list[str]:
        """Remove the generated files and sidecars of items whose original is gone."""
        pruned = []
        for rel, item in sorted(self.stale.items()):
            base = self.shelf.root / item.folder
            with self.shelf.folder_lock(item.folder):
                if (base / item.file).exists() or not (base / item.sidecar).exists():
                    continue
                for leftover in [*item.generated, item.sidecar]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(base / leftover)
                fsync_folder(base)
            with self._lock:
                self.stale.pop(rel, None)
                self.problems.pop(rel, None)
            pruned.append(rel)
        return pruned

    def regenerate(self, item: MediaItem) -> MediaItem:
        """Convert an item's original again and replace its generated files; text fields are kept."""
        shelf = self.shelf
        base = shelf.folder_path(item.folder)
        data = read_bytes(base / item.file)
        if data is None:
            raise NotFound(f"{item.rel(item.file)} is missing")
        kind = convert.check_kind(data[:64])
        converted = shelf.convert(data, kind)
        names = file_names(item.sidecar.removesuffix(".yaml"), kind.ext, list(converted.variants))
        with shelf.folder_lock(item.folder):
            current = read_bytes(base / item.sidecar)
            if current is None:
                raise NotFound(f"{item.rel(item.sidecar)} was removed meanwhile")
            latest = parse_sidecar(current, item.folder, item.sidecar)  # alt or caption edited meanwhile stay
            updated = replace(
                latest,
                width=converted.width,
                height=converted.height,
                mime_type=kind.mime,
                size=len(converted.original),
                checksum=checksum(converted.original),
                derivatives=dict(names["derivatives"]),
                variants={w: dict(names["variants"][w]) for w in converted.variants},
            )
            files = generated_files(updated, converted)
            if converted.original is not data:
                files.insert(0, (updated.file, converted.original))
            write_all(base, files, replace_existing=True)
            for old in set(latest.generated) - set(updated.generated):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / old)
            fields = ("width", "height", "mime_type", "size", "checksum", "derivatives", "variants")
            changes = {k: getattr(updated, k) for k in fields if getattr(updated, k) != getattr(latest, k)}
            if changes:
                rewrite_sidecar(base / item.sidecar, current, item.rel(item.sidecar), changes)
            shelf.put(updated)
        return updated


def _relative(root: Path, path: str | Path) -> str | None:
    """The path relative to uploads/ ("" for uploads/ itself); None outside it or in a hidden folder."""
    full = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root))
    if full == base:
        return ""
    if not full.is_relative_to(base):
        return None
    rel = full.relative_to(base).as_posix()
    return None if any(p.startswith(".") for p in rel.split("/")[:-1]) else rel


def unclaimed(names: list[str], items: list[MediaItem]) -> list[str]:
    """Images among `names` that no sidecar names: candidates for taking in."""
    claimed = {n.casefold() for i in items for n in i.names}
    originals = {n.rsplit(".", 1)[0].casefold() for n in names if n.lower().endswith(_ORIGINAL_EXTS)}
    out = []
    for name in names:
        if name.startswith((".", TEMP_PREFIX)) or name.casefold() in claimed or mime_of(name) is None:
            continue
        if looks_generated(name):
            continue
        stem, ext = name.rsplit(".", 1)
        if ext.lower() in FORMATS and not stem.lower().endswith(".orig") and stem.casefold() in originals:
            continue  # photo.webp beside photo.jpg: a derivative whose sidecar is gone
        out.append(name)
    return out
