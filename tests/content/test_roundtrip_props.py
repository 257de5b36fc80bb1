"""Frontmatter round-trip properties (reliability plan T5) and YAML dialect agreement (T6).

Everything written goes back through the real reader (`parse_document`, libyaml); T6 also loads
each file with ruamel's round-trip loader, the writer's own dialect, and wants the same values.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from cms.content.frontmatter import DELETE, render_document, update_document
from cms.content.parse import parse_document, split_frontmatter

PROPS = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

AMBIGUOUS = [
    "yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "true", "false", "True", "null", "Null", "~",
    "1e3", "1.5e3", "0x1F", "0o17", "017", "0b101", "1_000", "+1", "-1", ".5", ".inf", "-.inf", ".nan", "1:30",
    "190:20:30", "2024-01-01", "2024-01-01T10:00:00Z", "2024-01-01 10:00:00", ": ", "#", "- x", "-", "?", "? x",
    "", " ", " lead", "trail ", "a: b", "a #b", "'", '"', "\\", "|", ">", "*x", "&x", "!x", "%x", "@x", "`x",
    "{", "[", "]", ",", "---", "...", "=", "<<", "\n", "\n\n", "a\n", "\na", "a\n\nb\n", "a  \nb", "x\r\ny",
]  # fmt: skip
UNICODE = [
    "😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈",
    "שלום עולם",
    "مرحبا بالعالم",
    "e\u0301 n\u0303 a\u030a",
    "\u202eabc\u202c",
    "zero\u200bwidth\u200djoin",
    "ﬁ Ｆｕｌｌ",
    "हिन्दी",
    "\ufeffbom",
    "nel\x85ls\u2028ps\u2029",
    "ctl\x01\x1b\x7f\x9f",
]

keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True),
    st.sampled_from(["yes", "no", "on", "off", "y", "n", "true", "False", "null", "Null", "NO", "id", "title"]),
)
texts = st.one_of(
    st.sampled_from(AMBIGUOUS),
    st.sampled_from(UNICODE),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.text(st.sampled_from("ab :#-'\"\n\t{}[],&*!|>%@`?~"), max_size=12),
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
zones = st.one_of(st.just(UTC), offsets, st.sampled_from([ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")]))
datetimes = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones).map(
    lambda d: d.replace(microsecond=0)
)
scalars = st.one_of(
    texts,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.dates(min_value=date(1000, 1, 1)),
    datetimes,
)
leaf_values = st.one_of(scalars, st.lists(scalars, max_size=4))
values = st.one_of(
    leaf_values,
    st.dictionaries(keys, st.one_of(leaf_values, st.dictionaries(keys, leaf_values, max_size=3)), max_size=3),
)
metas = st.dictionaries(keys, values, max_size=6)
bodies = st.one_of(st.just(""), st.text(max_size=40).filter(lambda t: "\x00" not in t and not _has_surrogate(t)))


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


# -- comparison --------------------------------------------------------------------------------


def same(read: Any, wrote: Any) -> bool:
    """Equal as data and as types: True is not 1, "1" is not 1, a date is not a datetime."""
    if isinstance(wrote, dict):
        return isinstance(read, dict) and list(read) == list(wrote) and all(same(read[k], wrote[k]) for k in wrote)
    if isinstance(wrote, list):
        return isinstance(read, list) and len(read) == len(wrote) and all(map(same, read, wrote))
    if isinstance(wrote, datetime):
        offset = wrote.utcoffset()
        assert offset is not None
        # YAML offsets are whole minutes: a historic local mean time offset is written as UTC.
        expected_offset = offset if offset.seconds % 60 == 0 else timedelta(0)
        return isinstance(read, datetime) and read == wrote and read.utcoffset() == expected_offset
    if wrote is None:
        return read is None
    return type(read) is type(wrote) and read == wrote


def expected_body(body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if not body or body.endswith("\n") else body + "\n"


# -- T5: write -> read -------------------------------------------------------------------------


@PROPS
@given(meta=metas, body=bodies)
def test_render_then_read_gives_the_same_data(meta: dict[str, Any], body: str) -> None:
    data = render_document(meta, body)
    parsed = parse_document(data, "prop.md")
    assert same(parsed.meta, meta), data.decode()
    assert parsed.body == expected_body(body)
    assert data.endswith(b"\n") and b"\r\n" not in data.split(b"\n---\n", 1)[0]


@PROPS
@given(meta=metas)
def test_crlf_copy_reads_the_same(meta: dict[str, Any]) -> None:
    data = render_document(meta, "line one\nline two\n")
    crlf = data.replace(b"\n", b"\r\n")
    parsed = parse_document(crlf, "prop.md")
    assert same(parsed.meta, meta)
    assert parsed.body == "line one\nline two\n"


def top_level_blocks(data: bytes) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The frontmatter lines and, per top-level key, its [start, end) line range."""
    text = data.decode()
    fm, _, _ = split_frontmatter(text, "prop.md")
    assert fm is not None
    lines = fm.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "-", "#", "\n")]
    names = list(parse_document(data, "prop.md").meta)
    assert len(starts) == len(names), fm  # one column-0 line per key: the writer never wraps a key's value there
    ends = [*starts[1:], len(lines)] if starts else []
    return lines, {name: (s, e) for name, s, e in zip(names, starts, ends, strict=True)}


def without(lines: list[str], span: tuple[int, int] | None) -> list[str]:
    return lines if span is None else lines[: span[0]] + lines[span[1] :]


@PROPS
@given(meta=metas, data=st.data())
def test_update_of_one_key_changes_only_its_lines(meta: dict[str, Any], data: st.DataObject) -> None:
    original = render_document(meta, "The body.\n")
    key = data.draw(st.one_of(st.sampled_from(sorted(meta)), keys) if meta else keys, label="key")
    value = data.draw(st.one_of(values, st.just(DELETE)), label="value")
    updated = update_document(original.decode(), {key: value})

    expected = dict(meta)
    if value is DELETE:
        expected.pop(key, None)
    else:
        expected[key] = value
    parsed = parse_document(updated, "prop.md")
    assert same(parsed.meta, expected), updated.decode()
    assert parsed.body == "The body.\n"

    before, before_blocks = top_level_blocks(original)
    after, after_blocks = top_level_blocks(updated)
    assert without(before, before_blocks.get(key)) == without(after, after_blocks.get(key))


@PROPS
@given(meta=metas.filter(bool), data=st.data())
def test_comments_survive_an_update(meta: dict[str, Any], data: st.DataObject) -> None:
    original = render_document(meta, "body\n")
    lines, blocks = top_level_blocks(original)
    starts = {start: name for name, (start, _) in blocks.items()}
    commented_fm = ["# top comment\n"]
    for i, line in enumerate(lines):
        if i in starts:
            commented_fm.append(f"# about {starts[i]}\n")
        commented_fm.append(line)
    commented = "---\n" + "".join(commented_fm) + "---\nbody\n"
    key = data.draw(st.sampled_from(sorted(meta)), label="key")
    value = data.draw(st.one_of(values, st.just(DELETE)), label="value")
    updated = update_document(commented, {key: value}).decode()
    comments = [line for line in commented.splitlines() if line.startswith("# ")]
    assert [line for line in updated.splitlines() if line.startswith("# ")] == comments
    expected = {k: v for k, v in {**meta, key: value}.items() if v is not DELETE}
    assert same(parse_document(updated.encode(), "prop.md").meta, expected)


# -- T6: both dialects agree -------------------------------------------------------------------

_RT = YAML(typ="rt")


def agree(libyaml: Any, ruamel: Any, where: str = "") -> None:
    """libyaml's and ruamel's readings are the same value; a string is a string in both."""
    if isinstance(libyaml, str) or isinstance(ruamel, str):
        assert isinstance(libyaml, str) and isinstance(ruamel, str), f"{where}: {libyaml!r} vs {ruamel!r}"
        assert str(libyaml) == str(ruamel), where
    elif isinstance(libyaml, dict):
        assert isinstance(ruamel, dict), where
        assert [str(k) for k in libyaml] == [str(k) for k in ruamel], where
        for (k, a), b in zip(libyaml.items(), ruamel.values(), strict=True):
            agree(a, b, f"{where}.{k}")
    elif isinstance(libyaml, list):
        assert isinstance(ruamel, list) and len(libyaml) == len(ruamel), where
        for i, (a, b) in enumerate(zip(libyaml, ruamel, strict=True)):
            agree(a, b, f"{where}[{i}]")
    elif isinstance(libyaml, bool) or libyaml is None:
        assert ruamel is libyaml, f"{where}: {libyaml!r} vs {ruamel!r}"
    elif isinstance(libyaml, datetime):
        assert isinstance(ruamel, datetime), where
        assert ruamel.replace(tzinfo=None) == libyaml.replace(tzinfo=None), where
        assert ruamel.utcoffset() == libyaml.utcoffset(), where
    else:
        assert type(libyaml) in (int, float, date), where
        assert isinstance(ruamel, type(libyaml)) and not isinstance(ruamel, bool), f"{where}: {ruamel!r}"
        assert ruamel == libyaml, where


def assert_dialects_agree(data: bytes) -> None:
    fm, _, _ = split_frontmatter(data.decode(), "prop.md")
    assert fm is not None
    agree(yaml.load(fm, Loader=yaml.CSafeLoader) or {}, _RT.load(io.StringIO(fm)) or {})


@PROPS
@given(meta=metas)
def test_dialects_agree_on_new_files(meta: dict[str, Any]) -> None:
    assert_dialects_agree(render_document(meta, ""))


@PROPS
@given(meta=metas, data=st.data())
def test_dialects_agree_on_updated_files(meta: dict[str, Any], data: st.DataObject) -> None:
    original = render_document(meta, "")
    changes = data.draw(st.dictionaries(keys, values, min_size=1, max_size=3), label="changes")
    assert_dialects_agree(update_document(original.decode(), changes))


@PROPS
@given(text=texts)
def test_any_string_value_comes_back_a_string(text: str) -> None:
    assume("\x00" not in text)
    meta = {"v": text, "l": [text], "m": {"k": text}}
    data = render_document(meta, "")
    assert parse_document(data, "prop.md").meta == meta
    assert_dialects_agree(data)
    # Changing an existing value to the text (the old value's quoting style is reused) reads back too.
    for old in ("'single'", '"double"', "plain"):
        updated = update_document(f"---\nv: {old}\n---\n", {"v": text})
        assert parse_document(updated, "prop.md").meta == {"v": text}
        assert_dialects_agree(updated)
