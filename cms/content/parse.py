"""Reading content files: bytes -> frontmatter + body, with errors that name the file and line.

libyaml's CSafeLoader is the one reader of meaning (the writer quotes whatever it would misread).
Hostile input is refused before it can cost memory or time: documents over 5 MiB, frontmatter
over 1 MiB, NUL bytes, invalid UTF-8, YAML anchors/aliases (a 300-byte alias bomb would expand
to hundreds of millions of nodes once serialized) and nesting deep enough to exhaust the stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath
from typing import Any

import yaml

from cms.content.names import slugify
from cms.errors import ParseError

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_FRONTMATTER_BYTES = 1024 * 1024
MAX_DEPTH = 64
DOCUMENT_SUFFIX = ".md"
_LANG_RE = re.compile(r"[a-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
_LOADER = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader


@dataclass(slots=True)
class ParsedFile:
    meta: dict[str, Any]
    body: str
    body_line: int  # 1-based line of the file where the body starts
    has_frontmatter: bool


def decode(data: bytes, path: str) -> str:
    """UTF-8 text with LF line ends; refuses NUL bytes, invalid UTF-8 and oversize files."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ParseError(path, 1, f"file is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise ParseError(path, line, "file contains a NUL byte (binary file?)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(path, line, f"invalid UTF-8 at byte {exc.start}") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_frontmatter(text: str, path: str = "") -> tuple[str | None, str, int]:
    """(frontmatter text or None, body, 1-based line where the body starts)."""
    if not text.startswith("---"):
        return None, text, 1
    first_end = text.find("\n")
    if first_end == -1 or text[:first_end].rstrip() != "---":
        return None, text, 1
    pos = first_end + 1
    line = 2
    while True:
        end = text.find("\n", pos)
        current = text[pos:] if end == -1 else text[pos:end]
        if current.rstrip() in ("---", "..."):
            body = "" if end == -1 else text[end + 1 :]
            return text[first_end + 1 : pos], body, line + 1
        if end == -1:
            raise ParseError(path, 1, "frontmatter opened with '---' is never closed")
        pos = end + 1
        line += 1


def load_yaml(fm: str, path: str, first_line: int = 2) -> dict[str, Any]:
    """Parse frontmatter YAML into a mapping with string keys; errors carry the file line."""
    if len(fm.encode()) > MAX_FRONTMATTER_BYTES:
        raise ParseError(path, first_line, f"frontmatter is larger than {MAX_FRONTMATTER_BYTES} bytes")
    if "&" in fm and "*" in fm:  # aliases need an anchor: only then is the event scan worth it
        _refuse_aliases(fm, path, first_line)
    try:
        value = yaml.load(fm, Loader=_LOADER)  # noqa: S506 - CSafeLoader, never the full loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = first_line + (mark.line if mark else 0)
        raise ParseError(path, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ParseError(path, first_line, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ParseError(path, first_line, "YAML is nested too deeply") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(path, first_line, f"frontmatter must be a mapping of keys, not a {type(value).__name__}")
    try:
        return _normalize(value, 0)  # type: ignore[no-any-return]
    except RecursionError:
        raise ParseError(path, first_line, "YAML is nested too deeply") from None
    except ValueError as exc:
        raise ParseError(path, first_line, str(exc)) from None


def _refuse_aliases(fm: str, path: str, first_line: int) -> None:
    try:
        for event in yaml.parse(fm, Loader=_LOADER):
            if isinstance(event, yaml.AliasEvent):
                line = first_line + event.start_mark.line
                raise ParseError(path, line, "YAML aliases (*name) are not allowed in frontmatter")
    except yaml.MarkedYAMLError:
        return  # the real load reports the syntax error with its line


def _normalize(value: Any, depth: int) -> Any:
    """String keys everywhere (JSON needs them) and a bounded depth."""
    if depth > MAX_DEPTH:
        raise ValueError(f"frontmatter is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k.isoformat() if isinstance(k, date) else ("null" if k is None else str(k))
            if isinstance(k, bool):
                key = str(k).lower()
            out[key] = _normalize(v, depth + 1) if isinstance(v, dict | list) else v
        return out
    if isinstance(value, list):
        return [_normalize(v, depth + 1) if isinstance(v, dict | list) else v for v in value]
    return value


def parse_document(data: bytes, path: str) -> ParsedFile:
    """Bytes of a content file -> ParsedFile; raises ParseError(path, line, message)."""
    text = decode(data, path)
    fm, body, body_line = split_frontmatter(text, path)
    if fm is None:
        return ParsedFile({}, text, 1, False)
    return ParsedFile(load_yaml(fm, path), body, body_line, True)


@dataclass(frozen=True, slots=True)
class Location:
    """What a path under content/ is: a document of a type, a taxonomy term, or a schema."""

    kind: str  # "document", "term" or "schema"
    folder: str  # content type or taxonomy name
    slug: str
    lang: str | None = None


def locate(rel: str, reserved: tuple[str, ...]) -> Location | None:
    """Classify a path relative to content/; None for files the CMS ignores.

    `content/<type>/<slug>.md` is a document; nested folders and Hugo page bundles
    (`<type>/<slug>/index.md`) load too; `<slug>.<lang>.md` is a translation; files directly in
    content/ are pages; names starting with `_` or `.` are ignored, except `_type.yaml`.
    """
    parts = PurePosixPath(rel).parts
    if not parts or any(p.startswith((".", "~")) or p.endswith("~") for p in parts):
        return None
    name = parts[-1]
    if name == "_type.yaml" and len(parts) == 2:
        return Location("schema", parts[0], "")
    if not name.endswith(DOCUMENT_SUFFIX) or name.startswith("_"):
        return None
    stem = name[: -len(DOCUMENT_SUFFIX)]
    folder = parts[0] if len(parts) > 1 else "pages"
    if stem == "index" and len(parts) >= 3:
        stem = parts[-2]
    lang = None
    if "." in stem:
        base, _, suffix = stem.rpartition(".")
        if _LANG_RE.fullmatch(suffix):
            stem, lang = base, suffix
    slug = stem if stem == stem.lower() and " " not in stem else slugify(stem)
    kind = "term" if folder in reserved else "document"
    return Location(kind, folder, slug, lang)
