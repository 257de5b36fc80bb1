"""Media: uploads/ holds each image's original, AVIF and WebP derivatives, responsive widths and a
YAML sidecar; `MediaLibrary` keeps the list in memory, `localize` brings remote images in.

A package of one concept split by step: `convert` (bytes -> checked picture -> encodings, pure),
`item` (a sidecar and the names it owns), `library` (the files and the in-memory list),
`fetch` (vetted downloads and `localize`), `watch` (images dropped into uploads/ by hand).
"""

from .convert import check_kind, sniff
from .fetch import localize
from .item import MediaItem
from .library import MediaLibrary, RebuildReport
from .watch import UploadsWatcher

__all__ = ["MediaItem", "MediaLibrary", "RebuildReport", "UploadsWatcher", "check_kind", "localize", "sniff"]
