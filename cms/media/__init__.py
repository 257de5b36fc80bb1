"""Media: uploads/ holds each image's original, AVIF and WebP derivatives, responsive widths and a
YAML sidecar; `MediaLibrary` keeps the list in memory, `localize` brings remote images in.

A package of one concept split by step: `convert` (bytes -> checked picture -> encodings, pure),
`item` (a sidecar and the names it owns), `pool` (conversions in a bounded pool of worker processes
with deadlines), `files` (all-or-nothing writes), `library` (the in-memory list and single-item writes),
`upkeep` (sync with the disk, images dropped in by hand, rebuild), `fetch` (vetted downloads and
`localize`), `watch` (the uploads/ watcher thread).
"""

from .convert import check_kind, sniff
from .fetch import localize
from .item import MediaItem
from .library import MediaLibrary
from .upkeep import RebuildReport
from .watch import UploadsWatcher

__all__ = ["MediaItem", "MediaLibrary", "RebuildReport", "UploadsWatcher", "check_kind", "localize", "sniff"]
