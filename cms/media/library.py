"""The media library: uploads/ on disk and the in-memory list of its items, rebuilt from files.

The files are the truth: `MediaLibrary.load(site)` scans uploads/ for sidecars, `sync(paths)`
re-reads the folders a watcher saw change (and takes in images dropped there by hand), and
`rebuild()` regenerates everything. Conversions run in a small shared thread pool (Pillow's
codecs release the GIL) with a per-image deadline; every file is written atomically, the
original first and the sidecar last, under a per-folder lock shared by processes; a failure
removes whatever that upload had written, so no partial item or orphan sidecar remains.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from cms.config import Site
from cms.content.model import Document, etag_of
from cms.content.names import new_id
from cms.content.parse import decode as decode_text
from cms.content.write import (
    TEMP_PREFIX,
    atomic_write,
    document_lock,
    ensure_inside,
    fsync_folder,
    read_bytes,
    replace_checked,
    update_document,
)
from cms.errors import BadRequest, CMSError, Invalid, NotFound, ParseError, PayloadTooLarge, RateLimited

from . import convert
from .convert import Kind, Settings
from .item import (
    FORMATS,
    MAX_TEXT,
    TEXT_FIELDS,
    MediaItem,
    clean_folder,
    file_names,
    looks_generated,
    mime_of,
    parse_sidecar,
    plain_name,
    render_sidecar,
    stem_of,
)

log = logging.getLogger("cms.media")

CONVERT_TIMEOUT_S = 30.0  # per image, from the moment its conversion starts
ADMISSION_WAIT_S = 120.0  # how long an image may wait for a conversion slot before 429
POOL_WORKERS = min(2, os.cpu_count() or 1)


@dataclass
class Converted:
    """Encoded outputs of one image, all in memory until they are written together."""

    width: int
    height: int
    derivatives: dict[str, bytes]  # format -> bytes
    variants: dict[int, dict[str, bytes]]  # width -> format -> bytes
    original: bytes  # the bytes to store as the original (stripped when configured)


@dataclass
class RebuildReport:
    """What `rebuild` did: regenerated items, newly ingested hand-dropped files, pruned and failed ones."""

    regenerated: list[MediaItem] = field(default_factory=list)
    ingested: list[MediaItem] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # sidecars whose original was gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


Progress = Callable[[str, int, int], None]  # (uploads-relative path, done, total)


class MediaLibrary:
    """Media of one site: list, get, ingest, update, delete, sync with the disk, rebuild."""

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
        self.timeout = timeout
        cfg = site.media
        self.settings = Settings(
            max_pixels=cfg.max_pixels,
            widths=tuple(sorted(set(cfg.widths))),
            avif_quality=cfg.avif_quality,
            avif_speed=cfg.avif_speed,
            webp_quality=cfg.webp_quality,
        )
        self.lock_dir = site.state_dir / "locks"
        self.problems: dict[str, str] = {}  # uploads-relative path -> why it is not in the library
        self.stale: dict[str, MediaItem] = {}  # sidecar path -> item whose original is gone
        self._items: dict[str, MediaItem] = {}
        self._by_path: dict[str, tuple[str, str]] = {}  # uploads-relative path -> (id, role)
        self._failed: dict[str, tuple[int, int]] = {}  # hand-dropped files that failed: path -> (size, mtime)
        self._lock = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None
        # At most POOL_WORKERS images convert at once, sharing the pool's threads; the others wait
        # here, so one image's deadline never includes the time other images took.
        self._slots = threading.BoundedSemaphore(POOL_WORKERS)

    @classmethod
    def load(cls, site: Site, **kwargs: Any) -> MediaLibrary:
        """A library filled from the sidecars under uploads/."""
        library = cls(site, **kwargs)
        library.scan()
        return library

    def close(self) -> None:
        """Stop the conversion threads (conversions under way finish first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- reading -------------------------------------------------------------------------------
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
        uploads = re.escape(self.site.paths.uploads.strip("/"))
        alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.-])(?:uploads|{uploads})/(?:{alternatives})(?![\w.-])")
        wanted = set(paths)
        found = []
        for doc in docs:
            image = (doc.featured_image or "").split("?")[0].lstrip("/")
            image = image.removeprefix(self.site.paths.uploads.strip("/") + "/").removeprefix("uploads/")
            texts = [doc.body, *(v for v in doc.meta.values() if isinstance(v, str))]
            if image in wanted or any(pattern.search(t) for t in texts):
                found.append(doc)
        return found

    # -- scanning ------------------------------------------------------------------------------
    def scan(self) -> None:
        """Forget everything and read every sidecar under uploads/."""
        items: dict[str, MediaItem] = {}
        problems: dict[str, str] = {}
        stale: dict[str, MediaItem] = {}
        for folder, names in self._walk():
            for item in self._read_folder(folder, names, problems, stale):
                if item.id in items:
                    other = items[item.id].rel(items[item.id].sidecar)
                    problems[item.rel(item.sidecar)] = f"duplicate id {item.id} (also in {other})"
                    continue
                items[item.id] = item
        with self._lock:
            self._items = items
            self.problems = problems
            self.stale = stale
            self._reindex()

    def _walk(self) -> Iterable[tuple[str, list[str]]]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            rel = Path(dirpath).relative_to(self.root).as_posix()
            yield ("" if rel == "." else rel), sorted(filenames)

    def _read_folder(
        self, folder: str, names: list[str], problems: dict[str, str], stale: dict[str, MediaItem]
    ) -> list[MediaItem]:
        """The items of a folder's sidecars; bad ones go to `problems`, those missing their original to `stale`."""
        out = []
        base = self.root / folder
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

    def _reindex(self) -> None:
        by_path: dict[str, tuple[str, str]] = {}
        for item in self._items.values():
            by_path[item.rel(item.file)] = (item.id, "original")
            for name in item.generated:
                by_path[item.rel(name)] = (item.id, "derivative")
            by_path[item.rel(item.sidecar)] = (item.id, "sidecar")
        self._by_path = by_path

    def _put(self, item: MediaItem) -> None:
        with self._lock:
            self._items[item.id] = item
            self.problems.pop(item.rel(item.sidecar), None)
            self._reindex()

    def _drop(self, media_id: str) -> None:
        with self._lock:
            self._items.pop(media_id, None)
            self._reindex()

    # -- conversion ----------------------------------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="cms-media")
            return self._pool

    def convert(self, data: bytes, kind: Kind) -> Converted:
        """Decode, check and encode every derivative of one image, within the deadline (422 past it)."""
        if not self._slots.acquire(timeout=ADMISSION_WAIT_S):
            raise RateLimited("the server is busy converting other images; try again shortly", retry_after=30)
        try:
            return self._convert(data, kind, time.monotonic() + self.timeout)
        finally:
            self._slots.release()

    def _convert(self, data: bytes, kind: Kind, deadline: float) -> Converted:
        pool = self._executor()
        settings = self.settings
        im, icc = _wait_one(pool.submit(_open_upright, data, kind, settings.max_pixels), deadline, self.timeout)
        widths = convert.plan_widths(im.width, settings.widths)
        jobs: dict[tuple[int, str], Future[Any]] = {
            # The full-size AVIF is the longest job: it gets a second encoder thread.
            (0, "avif"): pool.submit(_encode_copy, im, "avif", settings, icc, 2),
            (0, "webp"): pool.submit(_encode_copy, im, "webp", settings, icc, 1),
        }
        for width in reversed(widths):
            jobs[(width, "both")] = pool.submit(_encode_variant, im, width, settings, icc)
        strip = self.site.media.strip_original
        original = pool.submit(convert.strip_metadata, data, kind, _reopen(data, kind)) if strip else None
        futures = [*jobs.values(), *([original] if original else [])]
        done, pending = wait_all(futures, timeout=max(0.0, deadline - time.monotonic()))
        if pending:
            for future in pending:
                future.cancel()
            raise _timeout(self.timeout)
        variants: dict[int, dict[str, bytes]] = {}
        derivatives: dict[str, bytes] = {}
        for (width, fmt), future in jobs.items():
            if width == 0:
                derivatives[fmt] = future.result()
            else:
                variants[width] = future.result()
        return Converted(
            width=im.width,
            height=im.height,
            derivatives=derivatives,
            variants=dict(sorted(variants.items())),
            original=original.result() if original else data,
        )

    # -- writing -------------------------------------------------------------------------------
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
        stem = stem_of(filename)
        with self._folder_lock(folder_rel):
            base = self._folder_path(folder_rel, create=True)
            stem, names = self._free_names(base, folder_rel, stem, kind.ext)
            item = MediaItem(
                id=new_id(),
                folder=folder_rel,
                file=names["original"],
                sidecar=names["sidecar"],
                original_name=_display_name(filename),
                width=converted.width,
                height=converted.height,
                mime_type=kind.mime,
                size=len(converted.original),
                checksum="sha256:" + hashlib.sha256(converted.original).hexdigest(),
                created_at=_utc_text(self.clock()),
                derivatives=dict(names["derivatives"]),
                variants={w: dict(names["variants"][w]) for w in converted.variants},
                **texts,
            )
            files = [(item.file, converted.original), *_generated_files(item, converted)]
            files.append((item.sidecar, render_sidecar(item)))
            _write_all(base, files, replace_existing=False)
            self._put(item)
        log.info("media %s stored as %s", item.id, item.rel(item.file))
        return item

    def update(self, media_id: str, values: Mapping[str, Any]) -> MediaItem:
        """Change alt, caption or credit in the sidecar (a minimal diff of the YAML)."""
        unknown = sorted(set(values) - set(TEXT_FIELDS))
        if unknown:
            raise Invalid({k: ["is not a field of a media item (alt, caption, credit)"] for k in unknown})
        changes = _texts({k: "" if v is None else v for k, v in values.items()})
        item = self.get(media_id)
        with self._folder_lock(item.folder):
            path = self._folder_path(item.folder) / item.sidecar
            current = read_bytes(path)
            if current is None:
                self._drop(media_id)
                raise NotFound(f"media item {media_id!r} no longer exists on disk")
            text = decode_text(current, item.rel(item.sidecar))
            wanted = {k: v for k, v in changes.items() if getattr(item, k) != v}
            if wanted:
                data = update_document(f"---\n{text}---\n", wanted).split(b"---\n", 2)[1]
                replace_checked(path, data, etag_of(current))
                current = data
            updated = parse_sidecar(current, item.folder, item.sidecar)
            self._put(updated)
        return updated

    def delete(self, media_id: str) -> MediaItem:
        """Remove the original, every generated file and the sidecar (last, so a crash leaves no orphan)."""
        item = self.get(media_id)
        with self._folder_lock(item.folder):
            base = self._folder_path(item.folder)
            for name in [item.file, *item.generated, item.sidecar]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / name)
            fsync_folder(base)
            self._drop(media_id)
        log.info("media %s deleted (%s)", item.id, item.rel(item.file))
        return item

    def default_folder(self) -> str:
        return clean_folder(self.clock().astimezone(UTC).strftime(self.site.media.folder_pattern))

    # -- files dropped by hand, sync and rebuild --------------------------------------------------
    def sync(self, paths: Iterable[str | Path]) -> list[MediaItem]:
        """Re-read the folders holding these paths; ingest unclaimed images there. Returns the new items."""
        folders = set()
        for path in paths:
            rel = self._relative(path)
            if rel is None:
                continue
            folder = rel.rpartition("/")[0]
            folders.add(rel if (self.root / rel).is_dir() else folder)
        new: list[MediaItem] = []
        for folder in sorted(folders):
            new += self._sync_folder(folder)
        return new

    def _relative(self, path: str | Path) -> str | None:
        full = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.root))
        if full == root:
            return ""
        if not full.is_relative_to(root):
            return None
        rel = full.relative_to(root).as_posix()
        if any(p.startswith((".", "_")) for p in rel.split("/")):
            return None
        return rel

    def _sync_folder(self, folder: str) -> list[MediaItem]:
        base = self.root / folder
        with self._lock:
            old = {i.id for i in self._items.values() if i.folder == folder}
        if not base.is_dir() or base.is_symlink():
            for media_id in old:
                self._drop(media_id)
            return []
        problems: dict[str, str] = {}
        stale: dict[str, MediaItem] = {}
        with self._folder_lock(folder):
            names = sorted(os.listdir(base))
            items = self._read_folder(folder, names, problems, stale)
        with self._lock:
            for media_id in old - {i.id for i in items}:
                self._items.pop(media_id, None)
            for item in items:
                self._items[item.id] = item
            for known in (self.problems, self.stale):
                for rel in [r for r in known if r.rpartition("/")[0] == folder]:
                    del known[rel]
            self.problems.update(problems)
            self.stale.update(stale)
            self._reindex()
        new = []
        for name in self._unclaimed(folder, names, items):
            taken_in = self._ingest_dropped(folder, name)
            if taken_in is not None:
                new.append(taken_in)
        return new

    def _unclaimed(self, folder: str, names: list[str], items: list[MediaItem]) -> list[str]:
        """Images in the folder that no sidecar names: candidates for taking in."""
        claimed = {n.casefold() for i in items for n in i.names}
        originals = {n.rsplit(".", 1)[0].casefold() for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))}
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

    def _ingest_dropped(self, folder: str, name: str) -> MediaItem | None:
        """Take in an image a person put in uploads/: derivatives and a sidecar beside it; None on failure."""
        base = self.root / folder
        rel = f"{folder}/{name}" if folder else name
        try:
            st = os.lstat(base / name)
            if self._failed.get(rel) == (st.st_size, st.st_mtime_ns):
                return None  # failed before and unchanged since: not converted again on every event
            if st.st_size > self.site.media.max_bytes:
                raise PayloadTooLarge(f"larger than {self.site.media.max_bytes} bytes")
            data = read_bytes(base / name)
            if data is None:
                return None
            kind = convert.check_kind(data[:64])
            converted = self.convert(data, kind)
        except FileNotFoundError:
            return None
        except CMSError as exc:
            self._failed[rel] = (st.st_size, st.st_mtime_ns)
            self.problems[rel] = exc.message
            log.warning("cannot take in %s: %s", rel, exc.message)
            return None
        with self._folder_lock(folder):
            names_now = sorted(os.listdir(base))
            items = self._read_folder(folder, names_now, {}, {})
            claimed = {n.casefold() for i in items for n in i.names}
            if read_bytes(base / name) != data or name.casefold() in claimed:
                return None  # changed or claimed meanwhile (an API upload, another worker): nothing to do
            stem, names = self._free_names(base, folder, stem_of(name), kind.ext, own=name)
            original = name
            if name.casefold() in {n.casefold() for n in _generated_names(names)}:
                original = names["original"]  # photo.avif -> photo.orig.avif: the derivative takes photo.avif
                os.rename(base / name, base / original)
            item = MediaItem(
                id=new_id(),
                folder=folder,
                file=original,
                sidecar=names["sidecar"],
                original_name=name,
                width=converted.width,
                height=converted.height,
                mime_type=kind.mime,
                size=len(converted.original),
                checksum="sha256:" + hashlib.sha256(converted.original).hexdigest(),
                created_at=_utc_text(self.clock()),
                derivatives=dict(names["derivatives"]),
                variants={w: dict(names["variants"][w]) for w in converted.variants},
            )
            files = _generated_files(item, converted)
            if converted.original is not data:
                files.insert(0, (item.file, converted.original))
            files.append((item.sidecar, render_sidecar(item)))
            _write_all(base, files, replace_existing=True)  # orphan derivatives of this very file may be replaced
            self._put(item)
        self._failed.pop(rel, None)
        self.problems.pop(rel, None)
        log.info("media %s taken in from %s", item.id, item.rel(item.file))
        return item

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Regenerate every item's derivatives with the current settings, take in dropped images, prune leftovers."""
        report = RebuildReport()
        self.scan()
        report.pruned = self._prune()
        items = self.items()
        total = len(items)
        for done, item in enumerate(items, 1):
            try:
                report.regenerated.append(self._regenerate(item))
            except CMSError as exc:
                report.failed.append((item.rel(item.file), exc.message))
            if progress:
                progress(item.rel(item.file), done, total)
        for folder, names in list(self._walk()):
            with self._lock:
                items_here = [i for i in self._items.values() if i.folder == folder]
            for name in self._unclaimed(folder, names, items_here):
                rel = f"{folder}/{name}" if folder else name
                self._failed.pop(rel, None)
                taken_in = self._ingest_dropped(folder, name)
                if taken_in is None:
                    report.failed.append((rel, self.problems.get(rel, "changed while converting")))
                else:
                    report.ingested.append(taken_in)
                if progress:
                    progress(rel, total, total)
        return report

    def _prune(self) -> list[str]:
        """Remove the generated files and sidecars of items whose original is gone."""
        pruned = []
        for rel, item in sorted(self.stale.items()):
            base = self.root / item.folder
            with self._folder_lock(item.folder):
                if (base / item.file).exists() or not (base / item.sidecar).exists():
                    continue
                for leftover in [*item.generated, item.sidecar]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(base / leftover)
                fsync_folder(base)
            self.stale.pop(rel, None)
            self.problems.pop(rel, None)
            pruned.append(rel)
        return pruned

    def _regenerate(self, item: MediaItem) -> MediaItem:
        base = self._folder_path(item.folder)
        data = read_bytes(base / item.file)
        if data is None:
            raise NotFound(f"{item.rel(item.file)} is missing")
        kind = convert.check_kind(data[:64])
        converted = self.convert(data, kind)
        stem = item.sidecar.removesuffix(".yaml")
        names = file_names(stem, kind.ext, list(converted.variants))
        with self._folder_lock(item.folder):
            current = read_bytes(base / item.sidecar)
            if current is None:
                raise NotFound(f"{item.rel(item.sidecar)} was removed meanwhile")
            latest = parse_sidecar(current, item.folder, item.sidecar)  # keep text edited meanwhile
            updated = replace(
                latest,
                width=converted.width,
                height=converted.height,
                mime_type=kind.mime,
                size=len(converted.original),
                checksum="sha256:" + hashlib.sha256(converted.original).hexdigest(),
                derivatives=dict(names["derivatives"]),
                variants={w: dict(names["variants"][w]) for w in converted.variants},
            )
            files = _generated_files(updated, converted)
            if converted.original is not data:
                files.insert(0, (updated.file, converted.original))
            _write_all(base, files, replace_existing=True)
            for stale in set(latest.generated) - set(updated.generated):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / stale)
            changes = {
                k: getattr(updated, k)
                for k in ("width", "height", "mime_type", "size", "checksum", "derivatives", "variants")
                if getattr(updated, k) != getattr(latest, k)
            }
            if changes:
                text = decode_text(current, item.rel(item.sidecar))
                data_yaml = update_document(f"---\n{text}---\n", changes).split(b"---\n", 2)[1]
                replace_checked(base / item.sidecar, data_yaml, etag_of(current))
            self._put(updated)
        return updated

    # -- paths and names -----------------------------------------------------------------------
    def _folder_lock(self, folder: str) -> contextlib.AbstractContextManager[None]:
        return document_lock(self.lock_dir, f"uploads:{folder}")

    def _folder_path(self, folder: str, *, create: bool = False) -> Path:
        path = self.root / folder if folder else self.root
        if create:
            path.mkdir(parents=True, exist_ok=True)
        resolved = ensure_inside(path, self.root)
        if resolved != Path(os.path.abspath(path)).resolve() or (folder and path.is_symlink()):
            raise BadRequest("the upload folder is a symbolic link")
        return path

    def _free_names(
        self, base: Path, folder: str, stem: str, ext: str, *, own: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The first of `stem`, `stem-2`, ... whose names are free in the folder (compared case-insensitively).

        For a file dropped by hand (`own`), its orphan derivatives may be replaced, so only the
        sidecar's name (and the original's, when the file must be renamed) has to be free.
        """
        existing = {n.casefold() for n in os.listdir(base) if n != own}
        with self._lock:
            claimed = {n.casefold() for i in self._items.values() if i.folder == folder for n in i.names}
        taken = existing | claimed
        for n in range(1, 10_000):
            candidate = stem if n == 1 else f"{stem}-{n}"
            names = file_names(candidate, ext, self.settings.widths)
            generated = _generated_names(names)
            if own is None:
                wanted = [names["original"], names["sidecar"], *generated]
            else:
                renamed = own.casefold() in {g.casefold() for g in generated}
                wanted = [names["sidecar"], *([names["original"]] if renamed else [])]
                taken = (existing - {g.casefold() for g in generated}) | claimed
            if not {w.casefold() for w in wanted} & taken:
                return candidate, names
        raise BadRequest(f"no free file name for {stem!r} in uploads/{folder}")


# -- helpers run in the pool -----------------------------------------------------------------


def _open_upright(data: bytes, kind: Kind, max_pixels: int) -> tuple[Image.Image, bytes | None]:
    return convert.upright(convert.decode(data, kind, max_pixels))


def _reopen(data: bytes, kind: Kind) -> Image.Image:
    import io

    return Image.open(io.BytesIO(data), formats=[kind.pil])


def _encode_copy(im: Image.Image, fmt: str, settings: Settings, icc: bytes | None, threads: int) -> bytes:
    # Each job saves its own copy: Image.save() sets attributes on the image it is called on.
    return convert.encode(im.copy(), fmt, settings, icc, threads=threads)


def _encode_variant(im: Image.Image, width: int, settings: Settings, icc: bytes | None) -> dict[str, bytes]:
    small = convert.resized(im, width)
    return {fmt: convert.encode(small, fmt, settings, icc) for fmt in FORMATS}


def _wait_one(future: Future[Any], deadline: float, limit: float) -> Any:
    done, _ = wait_all([future], timeout=max(0.0, deadline - time.monotonic()))
    if not done:
        future.cancel()
        raise _timeout(limit)
    return future.result()


def _timeout(limit: float) -> Invalid:
    message = f"converting the image took longer than {limit:g} s"
    return Invalid({"image": [message]}, message)


# -- helpers on files --------------------------------------------------------------------------


def _generated_files(item: MediaItem, converted: Converted) -> list[tuple[str, bytes]]:
    files = [(item.derivatives[fmt], converted.derivatives[fmt]) for fmt in FORMATS]
    for width, formats in item.variants.items():
        files += [(formats[fmt], converted.variants[width][fmt]) for fmt in FORMATS]
    return files


def _generated_names(names: dict[str, Any]) -> list[str]:
    out = list(names["derivatives"].values())
    for formats in names["variants"].values():
        out += list(formats.values())
    return out


def _write_all(base: Path, files: list[tuple[str, bytes]], *, replace_existing: bool) -> None:
    """Write each file atomically, in order; on any failure remove the ones this call created."""
    created: list[Path] = []
    try:
        for name, data in files:
            if not plain_name(name):
                raise BadRequest(f"refusing to write {name!r}")
            path = base / name
            existed = os.path.lexists(path)
            if existed and not replace_existing:
                raise BadRequest(f"{name} already exists")  # the folder lock makes this unreachable
            atomic_write(path, data)
            if not existed:
                created.append(path)
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise


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


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
