"""Files of one item: new items from converted outputs, all-or-nothing writes, sidecar rewrites."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cms.clock import iso_z
from cms.content.frontmatter import update_document
from cms.content.model import etag_of
from cms.content.names import new_id
from cms.content.parse import decode as decode_text
from cms.content.write import atomic_write, replace_checked
from cms.errors import BadRequest

from .convert import Kind
from .item import FORMATS, MediaItem, plain_name
from .pool import Converted


def new_item(
    now: datetime,
    folder: str,
    names: dict[str, Any],
    original: str,
    original_name: str,
    kind: Kind,
    converted: Converted,
) -> MediaItem:
    """A new item (fresh id) for converted outputs stored under `names`."""
    return MediaItem(
        id=new_id(),
        folder=folder,
        file=original,
        sidecar=names["sidecar"],
        original_name=original_name,
        width=converted.width,
        height=converted.height,
        mime_type=kind.mime,
        size=len(converted.original),
        checksum=checksum(converted.original),
        created_at=iso_z(now, "seconds"),
        derivatives=dict(names["derivatives"]),
        variants={w: dict(names["variants"][w]) for w in converted.variants},
    )


def generated_files(item: MediaItem, converted: Converted) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every derivative and variant of the item."""
    files = [(item.derivatives[fmt], converted.derivatives[fmt]) for fmt in FORMATS]
    for width, formats in item.variants.items():
        files += [(formats[fmt], converted.variants[width][fmt]) for fmt in FORMATS]
    return files


def generated_names(names: dict[str, Any]) -> list[str]:
    out = list(names["derivatives"].values())
    for formats in names["variants"].values():
        out += list(formats.values())
    return out


def write_all(base: Path, files: list[tuple[str, bytes]], *, replace_existing: bool) -> None:
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


def rewrite_sidecar(path: Path, current: bytes, rel: str, changes: Mapping[str, Any]) -> bytes:
    """Apply `changes` to a sidecar as a minimal YAML diff, checked against `current`; the new bytes."""
    text = decode_text(current, rel)
    data = update_document(f"---\n{text}---\n", changes).split(b"---\n", 2)[1]
    replace_checked(path, data, etag_of(current))
    return data


def checksum(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
