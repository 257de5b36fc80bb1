"""The text of a document file: frontmatter written with round-trip YAML and minimal diffs.

An update rewrites only the lines of the top-level keys that changed: every other byte of the
file (key order, comments, quoting, blank lines, the Markdown body) stays as the person wrote it.
New and changed strings that libyaml (YAML 1.1, the index's reader) would read as something else
(`no`, `on`, `1:30`, `0x1F`, `2026-01-01`, `null`) are double-quoted, so both readers agree.
Putting the bytes on disk is `cms.content.write`'s job.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from cms.content.parse import load_yaml, split_frontmatter
from cms.errors import BadRequest, ParseError

DELETE: Any = object()  # a change value that removes the key

_STR_TAG = "tag:yaml.org,2002:str"
_V11 = yaml.resolver.Resolver()
# Line breaks YAML knows but "\n"-only readers do not: in a single-quoted or plain scalar libyaml
# folds them into a space, so such strings are always written double-quoted (escaped as \N \L \P).
_ODD_BREAKS = frozenset("\x85\u2028\u2029")


def _misread_by_libyaml(text: str) -> bool:
    """Whether YAML 1.1 would resolve this plain scalar to a non-string (bool, int, date, null...)."""
    return bool(_V11.resolve(yaml.ScalarNode, text, (True, False)) != _STR_TAG)  # type: ignore[no-untyped-call]


def _needs_double_quotes(text: str) -> bool:
    return _misread_by_libyaml(text) or not _ODD_BREAKS.isdisjoint(text)


class _Representer(RoundTripRepresenter):
    def represent_plain_str(self, data: str) -> Any:
        if _needs_double_quotes(data):
            return self.represent_scalar(_STR_TAG, data, style='"')
        return super().represent_str(data)

    def represent_iso_datetime(self, data: datetime) -> Any:
        offset = data.utcoffset()
        if offset is not None and offset.seconds % 60:
            # YAML offsets are hh:mm; a zone's local mean time (Asia/Kolkata 1900: +05:21:10) is
            # not, and "+05:21:10" would make the file unreadable. The same instant in UTC is.
            data = data.astimezone(UTC)
        return self.represent_scalar("tag:yaml.org,2002:timestamp", data.isoformat())

    def represent_float_11(self, data: float) -> Any:
        # ruamel writes 1e+16 and 1e-05, which YAML 1.1 (libyaml) reads as strings: its float
        # pattern needs a dot. 1.0e+16 reads as the same float in both dialects.
        text = repr(data)
        if data != data or data in (float("inf"), float("-inf")):
            return super().represent_float(data)
        if "e" in text and "." not in text:
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return self.represent_scalar("tag:yaml.org,2002:float", text)


_Representer.add_representer(str, _Representer.represent_plain_str)
_Representer.add_representer(datetime, _Representer.represent_iso_datetime)
_Representer.add_representer(float, _Representer.represent_float_11)


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    y = YAML(typ="rt")
    y.Representer = _Representer
    y.preserve_quotes = True
    y.width = 4096  # never fold long lines: a folded title is a diff nobody asked for
    y.allow_unicode = True
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _dump(y: YAML, data: Any) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def _to_yaml_value(value: Any, old: Any = None) -> Any:
    """A plain Python value as a ruamel node, keeping the old value's flow style or quotes."""
    if isinstance(value, str):
        if isinstance(old, DoubleQuotedScalarString):
            return DoubleQuotedScalarString(value)
        if isinstance(old, SingleQuotedScalarString) and "\n" not in value and _ODD_BREAKS.isdisjoint(value):
            return SingleQuotedScalarString(value)
        return value
    if isinstance(value, list | tuple):
        seq = CommentedSeq([_to_yaml_value(v) for v in value])
        if isinstance(old, CommentedSeq) and old.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, Mapping):
        cmap = CommentedMap()
        for k, v in value.items():
            cmap[str(k)] = _to_yaml_value(v, old.get(k) if isinstance(old, Mapping) else None)
        if isinstance(old, CommentedMap) and old.fa.flow_style():
            cmap.fa.set_flow_style()
        return cmap
    return value


def _check_encodable(value: Any, key: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field {key!r} holds text that is not valid unicode (lone surrogate)") from None
        if "\x00" in value:
            raise BadRequest(f"field {key!r} contains a NUL character")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_encodable(str(k), key)
            _check_encodable(v, key)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_encodable(v, key)
    elif value is not None and not isinstance(value, bool | int | float | date | datetime):
        raise BadRequest(f"field {key!r} has a value YAML cannot hold: {type(value).__name__}")


def normal_body(body: str) -> str:
    """A body as a file holds it: LF line ends, and a final one unless the body is empty."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") or not body else body + "\n"


def render_document(meta: Mapping[str, Any], body: str) -> bytes:
    """The bytes of a new file: frontmatter in the given key order, then the body."""
    for key, value in meta.items():
        _check_encodable(key, key)
        _check_encodable(value, key)
    _check_encodable(body, "content")
    cmap = CommentedMap()
    for key, value in meta.items():
        if value is not DELETE:
            cmap[key] = _to_yaml_value(value)
    fm = _dump(_yaml(), cmap) if cmap else ""
    return f"---\n{fm}---\n{normal_body(body)}".encode()


def update_document(original: str, changes: Mapping[str, Any], body: str | None = None) -> bytes:
    """Apply `changes` (key -> value, or DELETE) to a file's text, rewriting only those keys' lines."""
    for key, value in changes.items():
        _check_encodable(key, key)
        if value is not DELETE:
            _check_encodable(value, key)
    if body is not None:
        _check_encodable(body, "content")
    original = original.replace("\r\n", "\n").replace("\r", "\n")
    fm, old_body, _ = split_frontmatter(original)
    new_body = old_body if body is None else normal_body(body)
    if fm is None:
        meta = {k: v for k, v in changes.items() if v is not DELETE}
        return render_document(meta, new_body) if meta else new_body.encode()
    new_fm = _splice(fm, changes)
    if not new_fm.strip():
        return f"---\n---\n{new_body}".encode()
    if not new_fm.endswith("\n"):
        new_fm += "\n"
    return f"---\n{new_fm}---\n{new_body}".encode()


def _splice(fm: str, changes: Mapping[str, Any]) -> str:
    """Replace, delete or append the blocks of the changed top-level keys of a YAML mapping."""
    try:
        current = _yaml().load(fm)
    except Exception as exc:  # noqa: BLE001 - ruamel raises many types; none may cost the file its keys
        # Rewriting from the changes alone would silently drop every other key (a duplicate key, for
        # one, makes ruamel refuse a file libyaml used to accept): refuse, naming the line.
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = 2 + (mark.line if mark is not None else 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParseError("frontmatter", at, f"cannot update this frontmatter safely: {problem}") from None
    mapping, offset = _guess_indent(fm)
    y = _yaml(mapping, max(mapping, offset + 2), offset)
    if current is None:  # no keys, perhaps comments: keep them, add the new keys after them
        head = fm if not fm or fm.endswith("\n") else fm + "\n"
        new = CommentedMap([(k, _to_yaml_value(v)) for k, v in changes.items() if v is not DELETE])
        return head + _dump(y, new) if new else head
    if not isinstance(current, CommentedMap):
        raise ParseError("frontmatter", 2, f"frontmatter must be a mapping of keys, not a {type(current).__name__}")
    if current.fa.flow_style() or not current:
        merged = CommentedMap(current)
        for key, value in changes.items():
            if value is DELETE:
                merged.pop(key, None)
            else:
                merged[key] = _to_yaml_value(value, merged.get(key))
        return _dump(y, merged) if merged else ""

    try:  # what the index reads: ruamel (YAML 1.2) reads `no` and `1:30` as strings, libyaml does not
        meaning: Mapping[str, Any] = load_yaml(fm, "frontmatter")
    except ParseError:
        meaning = {}
    lines = fm.splitlines(keepends=True)
    # Keys by the text written, as the reader names them: ruamel reads `true:` as True and `0x1F:`
    # as 31, so str() of its keys missed the block and appended a duplicate key instead.
    rt_key_at = {current.lc.key(k)[0]: k for k in current}
    named = _key_texts(fm) if meaning else {}
    starts = sorted((line, named.get(line, str(k))) for line, k in rt_key_at.items())
    rt_key = {name: rt_key_at[line] for line, name in starts}
    blocks: dict[str, tuple[int, int]] = {}
    for i, (start, key) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
        # Blank and column-0 comment lines before the next key belong to neither block.
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1
        blocks[key] = (start, end)

    replacement: dict[int, str] = {}
    dropped: set[int] = set()
    appended: list[str] = []
    for key, value in changes.items():
        if key in blocks:
            start, end = blocks[key]
            if value is DELETE:
                dropped.update(range(start, end))
                continue
            if key in meaning and _same(meaning[key], value):
                continue
            old = current[rt_key[key]]
            text = _dump(y, CommentedMap([(key, _to_yaml_value(value, old))]))
            text = _keep_line_comment(lines[start], text, current.ca.items.get(rt_key[key]))
            replacement[start] = text
            dropped.update(range(start + 1, end))
        elif value is not DELETE:
            appended.append(_dump(y, CommentedMap([(key, _to_yaml_value(value))])))
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in replacement:
            out.append(replacement[i])
        elif i not in dropped:
            out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    # New keys go after the last key, before any trailing comment lines.
    last_key_end = max((end for s, end in blocks.values() if s not in dropped), default=len(out))
    kept_before = sum(1 for i in range(last_key_end) if i not in dropped)
    return "".join(out[:kept_before] + appended + out[kept_before:])


def _key_texts(fm: str) -> dict[int, str]:
    """{line: key as written} for the top-level keys (call only once load_yaml accepted `fm`)."""
    root = yaml.compose(fm, Loader=yaml.CSafeLoader)  # nodes only: nothing is constructed
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {k.start_mark.line: str(k.value) for k, _ in root.value if isinstance(k, yaml.ScalarNode)}


def _guess_indent(fm: str) -> tuple[int, int]:
    """(mapping indent, sequence dash offset) as the file uses them under its top-level keys.

    ruamel's own guess takes the mapping indent from the first block sequence, so a file with
    `nested:\n  a: 1` and `tags:\n  - x` had its nested mappings rewritten 4 spaces deep.
    """
    mapping = offset = None
    lines = fm.splitlines()
    for i, line in enumerate(lines):
        if not line or line[0] in " #-" or not line.rstrip().endswith(":"):
            continue
        child = next((c for c in lines[i + 1 :] if c.strip() and not c.lstrip().startswith("#")), "")
        indent = len(child) - len(child.lstrip(" "))
        if child.lstrip(" ").startswith("- ") or child.strip() == "-":
            offset = indent if offset is None else offset
        elif indent > 0 and mapping is None:
            mapping = indent
        if mapping is not None and offset is not None:
            break
    return mapping or 2, 2 if offset is None else offset


def _keep_line_comment(old_line: str, new_text: str, comment: Any) -> str:
    """Carry `key: value  # note` over to a replaced one-line value."""
    token = comment[2] if comment and len(comment) > 2 else None
    if token is None or new_text.count("\n") != 1 or getattr(token, "column", None) is None:
        return new_text
    col = token.column
    if col >= len(old_line) or old_line[col] != "#":
        return new_text
    pad = old_line[:col][len(old_line[:col].rstrip()) :] or " "
    return new_text.rstrip("\n") + pad + old_line[col:].rstrip("\n") + "\n"


def _same(old: Any, new: Any) -> bool:
    """Equal as data, with the same types (so 1 vs True vs "1" count as changes)."""
    if isinstance(new, Mapping):
        return isinstance(old, Mapping) and old.keys() == new.keys() and all(_same(old[k], new[k]) for k in new)
    if isinstance(new, list | tuple):
        return isinstance(old, list) and len(old) == len(new) and all(map(_same, old, new))
    for kind in (bool, str, int, float, datetime, date):
        if isinstance(new, kind):
            return isinstance(old, kind) and not (kind is int and isinstance(old, bool)) and old == new
    return old is None and new is None
