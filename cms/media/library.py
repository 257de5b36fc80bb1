"""The media library: the in-memory list of uploads/' items, and the writes of single items.

The files are the truth: `MediaLibrary.load(site)` scans uploads/ for sidecars; `scan`, `sync` and
`rebuild` reconcile the list with the disk through `upkeep.Upkeep`, which also keeps what the list
cannot hold (`problems`, stale sidecars, failed images). Every file is written atomically, the
original first and the sidecar last, under a per-folder lock shared by processes; a failure
removes whatever that upload had written, so no partial item or orphan sidecar remains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cms.config import Site
from cms.content.model import Document
from cms.content.write import (
    document_lock,
    ensure_inside,
    fsync_folder,
    read_bytes,
)
from cms.errors import BadRequest, Invalid, NotFound, PayloadTooLarge

from . import convert, upkeep
from .convert import Settings
from .files import generated_files, generated_names, new_item, rewrite_sidecar, write_all
from .item import (
    MAX_TEXT,
    TEXT_FIELDS,
    MediaItem,
    clean_folder,
    file_names,
    parse_sidecar,
    render_sidecar,
    stem_of,
)
from .pool import CONVERT_TIMEOUT_S, Converted, Converter

log = logging.getLogger("cms.media")


class MediaLibrary:
    """Media of one site: list, get, ingest, update, delete; `sync` and `rebuild` follow the disk."""

    def __init__(
        self,
        site: Site,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = CONVERT_TIMEOUT_S,
    ) -> None:
        self.site = site
        self.root = site.uploads_dir
        self.clock = clock
        cfg = site.media
        self.settings = Settings(
            max_pixels=cfg.max_pixels,
            widths=tuple(sorted(set(cfg.widths))),
            avif_quality=cfg.avif_quality,
            avif_speed=cfg.avif_speed,
            webp_quality=cfg.webp_quality,
        )
        self.converter = Converter(self.settings, strip_original=cfg.strip_original, timeout=timeout)
        self.lock_dir = site.state_dir / "locks"
        self.upkeep = upkeep.Upkeep(self, max_bytes=cfg.max_bytes)
        self._items: dict[str, MediaItem] = {}
        self._by_path: dict[str, tuple[str, str]] = {}  # uploads-relative path -> (id, role)
        self._lock = threading.RLock()

    @classmethod
    def load(cls, site: Site, **kwargs: Any) -> MediaLibrary:
        """A library filled from the sidecars under uploads/."""
        library = cls(site, **kwargs)
        library.scan()
        return library

    def start(self) -> None:
        """Start the conversion worker processes in the background (`cms serve` does at startup)."""
        self.converter.start()

    def close(self) -> None:
        """End the conversion worker processes."""
        self.converter.close()

    # -- reading -------------------------------------------------------------------------------
    @property
    def problems(self) -> Mapping[str, str]:
        """Uploads-relative path -> why it is not in the library (a bad sidecar, a failed image, ...)."""
        return self.upkeep.problems

    def __len__(self) -> int:
        return len(self._items)

    def get(self, media_id: str) -> MediaItem:
        item = self._items.get(media_id)
        if item is None:
            raise NotFound(f"no media item {media_id!r}")
        return item

    def items(
        self, *, folder: str | None = None, mime_type: str | None = None, search: str | None = None
    ) -> list[MediaItem]:
        """Items newest first, narrowed by folder (and its subfolders), exact type, and words in names or alt."""
        with self._lock:
            found = list(self._items.values())
        if folder is not None:
            prefix = folder.strip("/")
            found = [i for i in found if not prefix or i.folder == prefix or i.folder.startswith(prefix + "/")]
        if mime_type is not None:
            found = [i for i in found if i.mime_type == mime_type.lower()]
        if search:
            needle = search.casefold()
            found = [i for i in found if needle in f"{i.original_name}\n{i.file}\n{i.alt}".casefold()]
        return sorted(found, key=lambda i: (i.created_at, i.id), reverse=True)

    def in_folder(self, folder: str) -> list[MediaItem]:
        with self._lock:
            return [i for i in self._items.values() if i.folder == folder]

    def role_of(self, rel: str) -> tuple[MediaItem, str] | None:
        """(item, "original" | "derivative" | "sidecar") for an uploads-relative path the library knows."""
        with self._lock:
            hit = self._by_path.get(rel)
            if hit is None:
                return None
            return self._items[hit[0]], hit[1]

    def references(self, item: MediaItem, docs: Iterable[Document]) -> list[Document]:
        """Documents that use any file of the item: as featured image, in a frontmatter value or the body."""
        paths = [item.rel(n) for n in (item.file, *item.generated)]
        folder = self.site.paths.uploads.strip("/")
        alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.-])(?:uploads|{re.escape(folder)})/(?:{alternatives})(?![\w.-])")
        wanted = set(paths)
        found = []
        for doc in docs:
            image = (doc.featured_image or "").split("?")[0].lstrip("/")
            image = image.removeprefix(folder + "/").removeprefix("uploads/")
            texts = [doc.body, *(v for v in doc.meta.values() if isinstance(v, str))]
            if image in wanted or any(pattern.search(t) for t in texts):
                found.append(doc)
        return found

    # -- the list ------------------------------------------------------------------------------
    def scan(self) -> None:
        """Forget everything and read every sidecar under uploads/."""
        self.upkeep.scan()

    def replace_all(self, items: dict[str, MediaItem]) -> None:
        """Make the list exactly these items (id -> item), as a scan read them."""
        with self._lock:
            self._items = dict(items)
            self._reindex()

    def replace_folder(self, folder: str, items: list[MediaItem]) -> None:
        """Make the list's view of one folder what was just read from it."""
        with self._lock:
            for old in [i.id for i in self._items.values() if i.folder == folder]:
                del self._items[old]
            self._items.update((i.id, i) for i in items)
            self._reindex()

    def _reindex(self) -> None:
        by_path: dict[str, tuple[str, str]] = {}
        for item in self._items.values():
            by_path[item.rel(item.file)] = (item.id, "original")
            for name in item.generated:
                by_path[item.rel(name)] = (item.id, "derivative")
            by_path[item.rel(item.sidecar)] = (item.id, "sidecar")
        self._by_path = by_path

    def put(self, item: MediaItem) -> None:
        with self._lock:
            self._items[item.id] = item
            self._reindex()
        self.upkeep.resolved(item.rel(item.sidecar))

    def drop(self, media_id: str) -> None:
        with self._lock:
            self._items.pop(media_id, None)
            self._reindex()

    # -- writing -------------------------------------------------------------------------------
    def convert(self, data: bytes, kind: convert.Kind) -> Converted:
        return self.converter.convert(data, kind)

    def ingest(
        self,
        data: bytes,
        filename: str,
        *,
        alt: str = "",
        caption: str = "",
        credit: str = "",
        folder: str | None = None,
    ) -> MediaItem:
        """Store an uploaded image: original, AVIF + WebP, responsive widths and sidecar (all or nothing)."""
        if len(data) > self.site.media.max_bytes:
            raise PayloadTooLarge(f"the image is larger than {self.site.media.max_bytes} bytes")
        kind = convert.check_kind(data[:64])
        texts = _texts({"alt": alt, "caption": caption, "credit": credit})
        folder_rel = self.default_folder() if folder in (None, "") else clean_folder(str(folder))
        converted = self.convert(data, kind)
        with self.folder_lock(folder_rel):
            base = self.folder_path(folder_rel, create=True)
            names = self.free_names(base, folder_rel, stem_of(filename), kind.ext)
            original_name = _display_name(filename)
            item = new_item(self.clock(), folder_rel, names, names["original"], original_name, kind, converted)
            item = replace(item, alt=texts["alt"], caption=texts["caption"], credit=texts["credit"])
            files = [(item.file, converted.original), *generated_files(item, converted)]
            files.append((item.sidecar, render_sidecar(item)))
            write_all(base, files, replace_existing=False)
            self.put(item)
        log.info("media %s stored as %s", item.id, item.rel(item.file))
        return item

    def update(self, media_id: str, values: Mapping[str, Any]) -> MediaItem:
        """Change alt, caption or credit in the sidecar (a minimal diff of the YAML)."""
        unknown = sorted(set(values) - set(TEXT_FIELDS))
        if unknown:
            raise Invalid({k: ["is not a field of a media item (alt, caption, credit)"] for k in unknown})
        changes = _texts({k: "" if v is None else v for k, v in values.items()})
        item = self.get(media_id)
        with self.folder_lock(item.folder):
            path = self.folder_path(item.folder) / item.sidecar
            current = read_bytes(path)
            if current is None:
                self.drop(media_id)
                raise NotFound(f"media item {media_id!r} no longer exists on disk")
            wanted = {k: v for k, v in changes.items() if getattr(item, k) != v}
            if wanted:
                current = rewrite_sidecar(path, current, item.rel(item.sidecar), wanted)
            updated = parse_sidecar(current, item.folder, item.sidecar)
            self.put(updated)
        return updated

    def delete(self, media_id: str) -> MediaItem:
        """Remove the original, then every generated file, then the sidecar.

        In this order a crash in between leaves a sidecar whose original is gone (not listed; pruned
        by `rebuild`), never an original without a sidecar, which would be taken in again as new.
        """
        item = self.get(media_id)
        with self.folder_lock(item.folder):
            base = self.folder_path(item.folder)
            for name in [item.file, *item.generated, item.sidecar]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / name)
            fsync_folder(base)
            self.drop(media_id)
        log.info("media %s deleted (%s)", item.id, item.rel(item.file))
        return item

    def sync(self, paths: Iterable[str | Path]) -> list[MediaItem]:
        """Re-read the folders holding these paths; take in unclaimed images there. Returns the new items."""
        return self.upkeep.sync(paths)

    def rebuild(self, progress: upkeep.Progress | None = None) -> upkeep.RebuildReport:
        """Regenerate every derivative with the current settings, take in dropped images, prune leftovers."""
        return self.upkeep.rebuild(progress)

    # -- paths and names -----------------------------------------------------------------------
    def default_folder(self) -> str:
        return clean_folder(self.clock().astimezone(UTC).strftime(self.site.media.folder_pattern))

    def folder_lock(self, folder: str) -> contextlib.AbstractContextManager[None]:
        """The lock every writer of this folder takes (threads and processes alike)."""
        return document_lock(self.lock_dir, f"uploads:{folder}")

    def folder_path(self, folder: str, *, create: bool = False) -> Path:
        path = self.root / folder if folder else self.root
        if create:
            path.mkdir(parents=True, exist_ok=True)
        resolved = ensure_inside(path, self.root)
        if resolved != Path(os.path.abspath(path)).resolve() or (folder and path.is_symlink()):
            raise BadRequest("the upload folder is a symbolic link")
        return path

    def free_names(self, base: Path, folder: str, stem: str, ext: str, *, own: str | None = None) -> dict[str, Any]:
        """The names for the first of `stem`, `stem-2`, ... that are all free (compared case-insensitively).

        For a file dropped by hand (`own`), its orphan derivatives may be replaced, so only the
        sidecar's name (and the original's, when the file must be renamed) has to be free.
        """
        existing = {n.casefold() for n in os.listdir(base) if n != own}
        with self._lock:
            claimed = {n.casefold() for i in self._items.values() if i.folder == folder for n in i.names}
        for n in range(1, 10_000):
            candidate = stem if n == 1 else f"{stem}-{n}"
            names = file_names(candidate, ext, self.settings.widths)
            generated = {g.casefold() for g in generated_names(names)}
            if own is None:
                wanted = [names["original"], names["sidecar"], *generated]
                taken = existing | claimed
            else:
                wanted = [names["sidecar"], *([names["original"]] if own.casefold() in generated else [])]
                taken = (existing - generated) | claimed
            if not {w.casefold() for w in wanted} & taken:
                return names
        raise BadRequest(f"no free file name for {stem!r} in uploads/{folder}")


def _texts(values: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, list[str]] = {}
    out = {}
    for key, value in values.items():
        if not isinstance(value, str):
            errors[key] = [f"must be a string, got {type(value).__name__}"]
        elif len(value) > MAX_TEXT:
            errors[key] = [f"must be at most {MAX_TEXT} characters"]
        elif any((ord(c) < 32 and c not in "\n\t") or c == "\x7f" for c in value):
            errors[key] = ["must not contain control characters"]
        else:
            out[key] = value.strip()
    if errors:
        raise Invalid(errors)
    return out


def _display_name(filename: str) -> str:
    name = str(filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if ord(c) >= 32 and c != "\x7f")[:255]
    return name or "image"
