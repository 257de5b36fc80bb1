"""Keeping the library and uploads/ in step: `sync` (after file events) and `rebuild` (the CLI).

`sync` re-reads the folders that changed: sidecars edited, added or removed by hand (or by another
worker) reach the list, and images dropped in without a sidecar are taken in (derivatives and a
sidecar written beside them). `rebuild` regenerates every item with the current settings, takes
in dropped images and prunes what deleted originals left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cms.content.write import TEMP_PREFIX, fsync_folder, read_bytes
from cms.errors import CMSError, NotFound, PayloadTooLarge

from . import convert
from .files import checksum, generated_files, generated_names, new_item, rewrite_sidecar, write_all
from .item import FORMATS, MediaItem, file_names, looks_generated, mime_of, parse_sidecar, render_sidecar, stem_of

if TYPE_CHECKING:
    from .library import MediaLibrary

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


def sync(library: MediaLibrary, paths: Iterable[str | Path]) -> list[MediaItem]:
    """Re-read the folders holding these paths; take in unclaimed images there. Returns the new items."""
    folders = set()
    for path in paths:
        rel = _relative(library.root, path)
        if rel is not None:
            folders.add(rel if (library.root / rel).is_dir() else rel.rpartition("/")[0])
    new: list[MediaItem] = []
    for folder in sorted(folders):
        new += _sync_folder(library, folder)
    return new


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


def _sync_folder(library: MediaLibrary, folder: str) -> list[MediaItem]:
    base = library.root / folder
    if not base.is_dir() or base.is_symlink():
        library.replace_folder(folder, [], {}, {})
        return []
    problems: dict[str, str] = {}
    stale: dict[str, MediaItem] = {}
    with library.folder_lock(folder):
        names = sorted(os.listdir(base))
        items = library.read_folder(folder, names, problems, stale)
    library.replace_folder(folder, items, problems, stale)
    new = []
    for name in unclaimed(names, items):
        item = take_in(library, folder, name)
        if item is not None:
            new.append(item)
    return new


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


def take_in(library: MediaLibrary, folder: str, name: str) -> MediaItem | None:
    """Give an image a person put in uploads/ its derivatives and a sidecar; None if it cannot be."""
    base = library.root / folder
    rel = f"{folder}/{name}" if folder else name
    try:
        st = os.lstat(base / name)
    except FileNotFoundError:
        return None
    if library.failed.get(rel) == (st.st_size, st.st_mtime_ns):
        return None  # failed before and unchanged since: not converted again on every event
    try:
        if st.st_size > library.site.media.max_bytes:
            raise PayloadTooLarge(f"larger than {library.site.media.max_bytes} bytes")
        data = read_bytes(base / name)
        if data is None:
            return None
        kind = convert.check_kind(data[:64])
        converted = library.convert(data, kind)
    except CMSError as exc:
        library.failed[rel] = (st.st_size, st.st_mtime_ns)
        library.problems[rel] = exc.message
        log.warning("cannot take in %s: %s", rel, exc.message)
        return None
    with library.folder_lock(folder):
        items = library.read_folder(folder, sorted(os.listdir(base)), {}, {})
        claimed = {n.casefold() for i in items for n in i.names}
        if read_bytes(base / name) != data or name.casefold() in claimed:
            return None  # changed or claimed meanwhile (an API upload, another worker): nothing to do
        names = library.free_names(base, folder, stem_of(name), kind.ext, own=name)
        original = name
        if name.casefold() in {g.casefold() for g in generated_names(names)}:
            original = names["original"]  # photo.avif -> photo.orig.avif: the derivative takes photo.avif
            os.rename(base / name, base / original)
        item = new_item(library.clock(), folder, names, original, name, kind, converted)
        files = generated_files(item, converted)
        if converted.original is not data:
            files.insert(0, (item.file, converted.original))
        files.append((item.sidecar, render_sidecar(item)))
        write_all(base, files, replace_existing=True)  # orphan derivatives of this very file may be replaced
        library.put(item)
    library.failed.pop(rel, None)
    library.problems.pop(rel, None)
    log.info("media %s taken in from %s", item.id, item.rel(item.file))
    return item


def rebuild(library: MediaLibrary, progress: Progress | None = None) -> RebuildReport:
    """Regenerate every item's derivatives with the current settings, take in dropped images, prune leftovers."""
    report = RebuildReport()
    library.scan()
    report.pruned = prune(library)
    items = library.items()
    dropped = [
        (folder, name) for folder, names in library.walk() for name in unclaimed(names, library.in_folder(folder))
    ]
    total = len(items) + len(dropped)
    done = 0
    for item in items:
        try:
            report.regenerated.append(regenerate(library, item))
        except CMSError as exc:
            report.failed.append((item.rel(item.file), exc.message))
        done += 1
        if progress:
            progress(item.rel(item.file), done, total)
    for folder, name in dropped:
        rel = f"{folder}/{name}" if folder else name
        library.failed.pop(rel, None)  # a rebuild tries everything again
        taken = take_in(library, folder, name)
        if taken is None:
            report.failed.append((rel, library.problems.get(rel, "changed while converting")))
        else:
            report.ingested.append(taken)
        done += 1
        if progress:
            progress(rel, done, total)
    return report


def prune(library: MediaLibrary) -> list[str]:
    """Remove the generated files and sidecars of items whose original is gone."""
    pruned = []
    for rel, item in sorted(library.stale.items()):
        base = library.root / item.folder
        with library.folder_lock(item.folder):
            if (base / item.file).exists() or not (base / item.sidecar).exists():
                continue
            for leftover in [*item.generated, item.sidecar]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / leftover)
            fsync_folder(base)
        library.stale.pop(rel, None)
        library.problems.pop(rel, None)
        pruned.append(rel)
    return pruned


def regenerate(library: MediaLibrary, item: MediaItem) -> MediaItem:
    """Convert an item's original again and replace its generated files; text fields are kept."""
    base = library.folder_path(item.folder)
    data = read_bytes(base / item.file)
    if data is None:
        raise NotFound(f"{item.rel(item.file)} is missing")
    kind = convert.check_kind(data[:64])
    converted = library.convert(data, kind)
    names = file_names(item.sidecar.removesuffix(".yaml"), kind.ext, list(converted.variants))
    with library.folder_lock(item.folder):
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
        library.put(updated)
    return updated
