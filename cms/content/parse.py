"""Reading content files: bytes -> frontmatter + body, with errors that name the file and line.

libyaml's CSafeLoader is the one reader of meaning (the writer quotes whatever it would misread).
Hostile input is refused before it can cost memory or time: documents over 5 MiB, frontmatter
over 1 MiB, NUL bytes, invalid UTF-8, YAML anchors/aliases (a 300-byte alias bomb would expand
to hundreds of millions of nodes once serialized) and nesting deep enough to exhaust the stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from cms.content.names import slugify
from cms.errors import ParseError

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_FRONTMATTER_BYTES = 1024 * 1024
MAX_DEPTH = 64
DOCUMENT_SUFFIX = ".md"
_LANG_RE = re.compile(r"[a-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
_LOADER = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
# Nesting deeper than MAX_DEPTH needs either that many flow/compact openers or a line indented that far.
_NESTER_RE = re.compile(r"[\[{]|[-?](?=\s)")
_DEEP_INDENT_RE = re.compile(rf"^ {{{MAX_DEPTH}}}", re.MULTILINE)
# The closing fence: `---` or `...` alone on a line (trailing whitespace allowed, as str.rstrip() allows).
_FENCE_END_RE = re.compile(r"^(?:---|\.\.\.)[^\S\n]*$", re.MULTILINE)


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
    # One regex search instead of a Python loop over the frontmatter's lines (10,000 files per load).
    fence = _FENCE_END_RE.search(text, first_end + 1)
    if fence is None:
        raise ParseError(path, 1, "frontmatter opened with '---' is never closed")
    end = fence.end()
    body = text[end + 1 :]  # (empty when the fence ends the file)
    return text[first_end + 1 : fence.start()], body, text.count("\n", 0, fence.start()) + 2


def load_yaml(fm: str, path: str, first_line: int = 2) -> dict[str, Any]:
    """Parse frontmatter YAML into a mapping with string keys; errors carry the file line."""
    if len(fm.encode()) > MAX_FRONTMATTER_BYTES:
        raise ParseError(path, first_line, f"frontmatter is larger than {MAX_FRONTMATTER_BYTES} bytes")
    # The event scan costs a second parse, so it runs only when the text could hold an alias (which
    # needs an anchor) or deep nesting; it must run before composing, because libyaml's composer
    # recurses in C: ~40,000 nested `[` (80 KB) crash the whole process with a segfault.
    if ("&" in fm and "*" in fm) or _DEEP_INDENT_RE.search(fm) or _may_nest_deeply(fm):
        _scan_events(fm, path, first_line)
    loader = _Loader(fm)
    loader.first_line = first_line
    try:
        node = loader.get_single_node()
        value = _construct_plain(loader, node) if node is not None else None
        if value is _NOT_PLAIN:  # something the fast path leaves to PyYAML's constructor and its checks
            _check_depth(node, path, first_line)  # before constructing: deep input costs nothing more
            value = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and (mark is None or mark.line >= fm.count("\n")):
            mark = exc.context_mark  # "unexpected end of stream" points at the fence: name where it began
        line = first_line + (mark.line if mark else 0)
        raise ParseError(path, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ParseError(path, first_line, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ParseError(path, first_line, "YAML is nested too deeply") from None
    finally:
        loader.dispose()
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(path, first_line, f"frontmatter must be a mapping of keys, not a {type(value).__name__}")
    return value


def _may_nest_deeply(fm: str) -> bool:
    # Counting the characters is a cheap upper bound of the nesters the regex would find.
    if fm.count("[") + fm.count("{") + fm.count("-") + fm.count("?") <= MAX_DEPTH:
        return False
    return len(_NESTER_RE.findall(fm)) > MAX_DEPTH


class _Loader(_LOADER):  # type: ignore[misc,valid-type]
    """libyaml's safe loader, made strict where a plain load would lose or corrupt data.

    Keys are the text written in the file (`yes: y` -> "yes", `1: x` -> "1", not True and 1, which
    would collide in a dict and cannot be JSON keys); a repeated key is an error instead of the last
    one silently winning; values JSON cannot hold (!!binary, !!set) are refused; and a constructor
    failure (`2024-13-45`, a 5,000-digit int, `!!bool maybe`) becomes a YAML error with its line.
    """

    first_line = 2  # the file line of the frontmatter's first line, for messages

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {node.value!r:.60}: {exc}", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found a {type(node).__name__}", node.start_mark
            )
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _key_text(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = self.first_line + key_node.start_mark.line
        self.flatten_mapping(node)  # `<<` merge keys; explicit keys listed after them win
        return {_key_text(k): self.construct_object(v, deep=deep) for k, v in node.value}

    def _refuse(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.tag.rsplit(':', 1)[-1]} values are not allowed in frontmatter", node.start_mark
        )

    # (True of PyYAML's safe loaders; if a path or wildcard resolver were ever added, PyYAML's resolve stays.)
    if not _LOADER.yaml_path_resolvers and None not in _LOADER.yaml_implicit_resolvers:

        def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
            """A node's tag: PyYAML's Resolver.resolve without the path-resolver and wildcard branches
            a safe loader never takes (libyaml calls this for every node of every file)."""
            if kind is ScalarNode:
                if implicit[0]:  # a plain scalar: `12`, `true`, `2024-01-02` or text, by its first character
                    for tag, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                        if regexp.match(value):
                            return tag  # type: ignore[no-any-return]
                return _STR_TAG
            return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader._refuse)
_Loader.add_constructor("tag:yaml.org,2002:set", _Loader._refuse)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
# Plain scalars the fast path builds with PyYAML's own constructors; any other tag goes the long way.
_PLAIN_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))
_NOT_PLAIN: Any = object()


class _NotPlain(Exception):
    """Raised inside `_construct_plain` to hand a document back to the full constructor."""


def _construct_plain(loader: _Loader, root: yaml.Node) -> Any:
    """The value of a composed document, built directly for what frontmatter almost always is:
    mappings with plain-text keys, lists, strings, numbers, booleans, dates and nulls, nested at
    most MAX_DEPTH deep. Anything else (a merge key, a repeated key, another tag, a value its
    constructor refuses, deeper nesting) returns _NOT_PLAIN, and `load_yaml` runs PyYAML's
    constructor with every check and message. Same values either way, about 3x faster: PyYAML's
    generic construct_object bookkeeping costs more than the values themselves."""
    try:
        return _plain_value(loader, root, 0)
    except Exception:  # _NotPlain, or a constructor's own failure: the full path reports it with its line
        return _NOT_PLAIN


def _plain_value(loader: _Loader, node: yaml.Node, depth: int) -> Any:
    # A module function, not a closure: a recursive closure is a reference cycle that would keep
    # every loader alive until the next garbage collection.
    if depth > MAX_DEPTH:
        raise _NotPlain
    kind = type(node)
    tag = node.tag
    if kind is ScalarNode:
        if tag == _STR_TAG:
            return node.value
        if tag not in _PLAIN_SCALAR_TAGS:
            raise _NotPlain
        return loader.yaml_constructors[tag](loader, node)
    if kind is SequenceNode and tag == _SEQ_TAG:
        return [_plain_value(loader, child, depth + 1) for child in node.value]
    if kind is MappingNode and tag == _MAP_TAG:
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if type(key_node) is not ScalarNode or key_node.tag == _MERGE_TAG:
                raise _NotPlain
            key = str(key_node.value)
            if key in mapping:
                raise _NotPlain
            mapping[key] = _plain_value(loader, value_node, depth + 1)
        return mapping
    raise _NotPlain


def _key_text(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "a key must be plain text, not a list or mapping", node.start_mark
        )
    return str(node.value)


def _check_depth(root: yaml.Node, path: str, first_line: int) -> None:
    """Refuse nesting deeper than MAX_DEPTH, naming the line where it goes too deep."""
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            line = first_line + node.start_mark.line
            raise ParseError(path, line, f"frontmatter is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)


def _scan_events(fm: str, path: str, first_line: int) -> None:
    """Refuse aliases and too-deep nesting from the event stream, stopping at the first one."""
    try:
        _check_events(fm, path, first_line)
    except yaml.MarkedYAMLError as exc:
        # libyaml's scanner reads a whole line of flow openers ahead before it hands over one event, so
        # its own refusal (its nesting limit since PyYAML 6.0.2, or any syntax error further along the
        # line) can come before we see the depth. Scan again what it read before refusing: our limit is
        # then found and reported on its line whatever libyaml's limits and messages are.
        mark = exc.problem_mark or exc.context_mark
        if mark is None or not 0 < mark.index < len(fm):
            return
        try:
            _check_events(fm[: mark.index], path, first_line)
        except yaml.MarkedYAMLError:
            return  # the real load reports the syntax error with its line


def _check_events(fm: str, path: str, first_line: int) -> None:
    depth = 0  # open collections = the depth of the next node (the root mapping is 0)
    for event in yaml.parse(fm, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            line = first_line + (event.start_mark.line if event.start_mark else 0)
            raise ParseError(path, line, "YAML aliases (*name) are not allowed in frontmatter")
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent) and depth > MAX_DEPTH:
            line = first_line + (event.start_mark.line if event.start_mark else 0)
            raise ParseError(path, line, f"frontmatter is nested deeper than {MAX_DEPTH} levels")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_document(data: bytes, path: str) -> ParsedFile:
    """Bytes of a content file -> ParsedFile; raises ParseError(path, line, message)."""
    text = decode(data, path)
    fm, body, body_line = split_frontmatter(text, path)
    if fm is None:
        return ParsedFile({}, text, 1, False)
    return ParsedFile(load_yaml(fm, path), body, body_line, True)


def line_of_key(text: str, key: str) -> int:
    """The line of a frontmatter `key:` in a document's text (1 when not found), for messages about its value."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return 1


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
    if not rel or rel.startswith("/"):
        return None
    parts = tuple(p for p in rel.split("/") if p)  # a plain split: this runs for every file of a load
    if not parts or any(p.startswith((".", "~")) or p.endswith("~") for p in parts):
        return None
    name = parts[-1]
    if name == "_type.yaml" and len(parts) == 2:
        return Location("schema", parts[0], "") if parts[0] not in reserved else None
    if not name.endswith(DOCUMENT_SUFFIX) or name.startswith("_"):
        return None
    stem = name[: -len(DOCUMENT_SUFFIX)]
    folder = parts[0] if len(parts) > 1 else "pages"
    lang = None
    if "." in stem:
        base, _, suffix = stem.rpartition(".")
        if _LANG_RE.fullmatch(suffix):
            stem, lang = base, suffix
    if stem == "index" and len(parts) >= 3:  # after the language: `bundle/index.de.md` is bundle, de
        stem = parts[-2]
    slug = stem if stem == stem.lower() and " " not in stem else slugify(stem)
    kind = "term" if folder in reserved else "document"
    return Location(kind, folder, slug, lang)
