"""Reading content files: frontmatter, errors with file lines, hostile input, and path classification."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import cms
from cms.content import parse as parse_module
from cms.content.parse import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_FRONTMATTER_BYTES,
    Location,
    ParsedFile,
    _Loader,
    load_yaml,
    locate,
    parse_document,
    split_frontmatter,
)
from cms.errors import ParseError
from tests.conftest import MakeSite

RESERVED = ("categories", "tags", "authors")
NESTED = f"frontmatter is nested deeper than {MAX_DEPTH} levels"  # the project's message, not libyaml's


def parse_file(tmp_path: Path, data: bytes, name: str = "post.md") -> ParsedFile:
    """Write the bytes to a real file and parse what is read back, as the index does."""
    path = tmp_path / name
    path.write_bytes(data)
    return parse_document(path.read_bytes(), name)


def parse_error(tmp_path: Path, data: bytes, name: str = "post.md") -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_file(tmp_path, data, name)
    assert str(info.value.path) == name
    return info.value


@pytest.fixture
def events_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """[how many YAML events the parser pulled]: a bound on its work that no clock or machine load can break."""
    count = [0]
    real = yaml.parse

    def counting(stream: Any, Loader: Any = yaml.SafeLoader) -> Any:  # noqa: N803 - PyYAML's own keyword
        for event in real(stream, Loader=Loader):
            count[0] += 1
            yield event

    monkeypatch.setattr(yaml, "parse", counting)
    return count


# -- well-formed files -------------------------------------------------------------------------


def test_normal_file(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\ntitle: Hello\ntags: [a, b]\n---\n# Heading\n\nText.\n")
    assert parsed.meta == {"title": "Hello", "tags": ["a", "b"]}
    assert parsed.body == "# Heading\n\nText.\n"
    assert parsed.body_line == 5
    assert parsed.has_frontmatter is True


def test_file_without_frontmatter(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"# Just Markdown\n\n---\n\nafter a rule\n")
    assert parsed.meta == {}
    assert parsed.body == "# Just Markdown\n\n---\n\nafter a rule\n"
    assert parsed.body_line == 1
    assert parsed.has_frontmatter is False


@pytest.mark.parametrize("data", [b"---\n---\nbody\n", b"---\n# only a comment\n---\nbody\n", b"---\n\n---\nbody\n"])
def test_empty_frontmatter(tmp_path: Path, data: bytes) -> None:
    parsed = parse_file(tmp_path, data)
    assert parsed.meta == {}
    assert parsed.body == "body\n"
    assert parsed.has_frontmatter is True


def test_crlf_input_reads_as_lf(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\r\ntitle: A\r\nlist:\r\n  - x\r\n---\r\nline 1\r\nline 2\r\n")
    assert parsed.meta == {"title": "A", "list": ["x"]}
    assert parsed.body == "line 1\nline 2\n"
    assert parsed.body_line == 6


def test_crlf_error_line_counts_file_lines(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\r\na: 1\r\nb: [1\r\n---\r\n")
    assert err.line in (3, 4)  # the flow list opened on line 3 is found unclosed at the fence


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"\xef\xbb\xbf---\ntitle: Caf\xc3\xa9\n---\nbody\n")
    assert parsed.meta == {"title": "Café"}
    assert parsed.has_frontmatter is True


def test_dots_close_frontmatter_too(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\na: 1\n...\nbody\n")
    assert parsed.meta == {"a": 1}
    assert parsed.body == "body\n"


def test_body_line_counts_frontmatter_lines(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\na: 1\nb: |\n  x\n  y\n---\nbody\n")
    assert parsed.body_line == 7
    assert parsed.meta == {"a": 1, "b": "x\ny\n"}


def test_a_site_file_parses(make_site: MakeSite) -> None:
    site = make_site({"content/posts/hello.md": "---\ntitle: Hello\ndraft: false\n---\nHi.\n"})
    data = (site.content_dir / "posts" / "hello.md").read_bytes()
    parsed = parse_document(data, "posts/hello.md")
    assert parsed.meta == {"title": "Hello", "draft": False}


# -- split_frontmatter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\na: 1\n---\nbody", ("a: 1\n", "body", 4)),
        ("---\n---\n", ("", "", 3)),
        ("---\na: 1\n---", ("a: 1\n", "", 4)),
        ("---  \na: 1\n---  \nx\n", ("a: 1\n", "x\n", 4)),
        ("no frontmatter\n", (None, "no frontmatter\n", 1)),
        ("----\na: 1\n----\n", (None, "----\na: 1\n----\n", 1)),
        ("--- a: 1\n---\n", (None, "--- a: 1\n---\n", 1)),
        ("---", (None, "---", 1)),
    ],
)
def test_split_frontmatter(text: str, expected: tuple[str | None, str, int]) -> None:
    assert split_frontmatter(text, "x.md") == expected


def test_split_frontmatter_unclosed() -> None:
    with pytest.raises(ParseError) as info:
        split_frontmatter("---\na: 1\nbody\n", "x.md")
    assert info.value.line == 1


# -- errors name the file line -----------------------------------------------------------------


def test_unclosed_frontmatter_is_reported_on_line_1(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\ntitle: a\n\nbody without a closing fence\n")
    assert err.line == 1
    assert "never closed" in err.message
    assert str(err) == f"post.md:1: {err.message}"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("---\ntitle: a\nsummary: b\nbad: c: d\n---\n", 4),
        ("---\na: 1\nb: 2\nc: 3\nd: 4\n  e: 5\n---\n", 6),
        ("---\na: 1\nb: 2\nc: 3\nd: 4\ne\n---\n", 6),
        ("---\na: [1\nb: 2\n---\n", 3),
        ('---\ntitle: "unterminated\nb: 2\n---\n', 2),
        ("---\na: 1\n\tb: 2\n---\n", 3),
        ("---\na: 1\nb: !!int abc\n---\n", 3),
        ("---\na: 1\nb: 2\nc: 2024-13-45\n---\n", 4),
        ("---\nd: !!timestamp bad\n---\n", 2),
        ("---\na: 1\nd: !!bool maybe\n---\n", 3),
        ("---\nd: 2024-01-01T10:00:00+25:00\n---\n", 2),
        ("---\na: 1\nbig: 1" + "0" * 5000 + "\n---\n", 3),
        ("---\na: 1\n? [x, y]\n: z\n---\n", 3),
    ],
)
def test_broken_yaml_reports_the_file_line(tmp_path: Path, text: str, line: int) -> None:
    err = parse_error(tmp_path, text.encode())
    assert err.line == line, err.message
    assert err.message


def test_schema_file_lines_start_at_1() -> None:
    with pytest.raises(ParseError) as info:
        load_yaml("label: Posts\nfields:\n  title: [\n", "posts/_type.yaml", first_line=1)
    assert info.value.line in (3, 4)
    assert str(info.value.path) == "posts/_type.yaml"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("---\ntitle: a\nx: 1\ntitle: b\n---\n", 4, "title"),
        ("---\n1: a\n'1': b\n---\n", 3, "1"),
        ("---\nnested:\n  k: 1\n  k: 2\n---\n", 4, "k"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, line: int, key: str) -> None:
    # Silently keeping the last one would hide a person's edit (and ruamel, the writer, refuses them).
    err = parse_error(tmp_path, text.encode())
    assert err.line == line
    assert f"duplicate key {key!r}" in err.message


# -- hostile input -----------------------------------------------------------------------------

ALIAS_BOMB = textwrap.dedent(
    """\
    ---
    a: &a [x,x,x,x,x,x,x,x,x]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    ---
    body
    """
)


def test_alias_bomb_is_refused_at_the_first_alias(tmp_path: Path, events_read: list[int]) -> None:
    data = ALIAS_BOMB.encode()
    assert len(data) < 320
    err = parse_error(tmp_path, data)
    assert err.line == 3  # the first alias
    assert err.message == "YAML aliases (*name) are not allowed in frontmatter"
    assert events_read[0] < 30  # stopped at the first alias: nothing was expanded


def test_a_single_alias_is_refused(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\nbase: &b {x: 1}\nother: *b\n---\n")
    assert err.line == 3


def test_python_tags_are_refused_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"---\ntitle: x\nrun: !!python/object/apply:os.system ['touch {marker}']\n---\n"
    err = parse_error(tmp_path, text.encode())
    assert err.line == 3
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["!!binary aGVsbG8=", "!!set {a, b}"])
def test_values_json_cannot_hold_are_refused(tmp_path: Path, tag: str) -> None:
    err = parse_error(tmp_path, f"---\na: 1\nb: {tag}\n---\n".encode())
    assert err.line == 3


def test_document_at_the_size_limit_is_read(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"a" * MAX_DOCUMENT_BYTES)
    assert len(parsed.body) == MAX_DOCUMENT_BYTES


def test_document_over_5_mib_is_refused(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\ntitle: x\n---\n" + b"a" * MAX_DOCUMENT_BYTES)
    assert err.line == 1
    assert str(MAX_DOCUMENT_BYTES) in err.message


def test_frontmatter_over_1_mib_is_refused(tmp_path: Path) -> None:
    data = b"---\ntitle: x\nsummary: '" + b"a" * MAX_FRONTMATTER_BYTES + b"'\n---\nbody\n"
    assert len(data) < MAX_DOCUMENT_BYTES
    err = parse_error(tmp_path, data)
    assert err.line == 2
    assert "frontmatter" in err.message


def test_nul_byte_is_refused_with_its_line(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\ntitle: a\n---\nline 4\nline\x005\n")
    assert err.line == 5
    assert "NUL" in err.message


def test_invalid_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    err = parse_error(tmp_path, b"---\ntitle: a\nsummary: caf\xe9\n---\n")
    assert err.line == 3
    assert "UTF-8" in err.message


def test_binary_junk_never_crashes(tmp_path: Path) -> None:
    rng = random.Random(1)
    outcomes = {"parsed": 0, "refused": 0}
    for i in range(300):
        junk = rng.randbytes(rng.randint(0, 3000))
        data = b"---\n" + junk + b"\n---\n" if i % 2 else junk
        try:
            parse_document(data, f"junk-{i}.md")
        except ParseError as err:
            assert err.line >= 1
            outcomes["refused"] += 1
        else:
            outcomes["parsed"] += 1
    assert outcomes["refused"] > 0


YAML_PIECES = [
    "a", "b: ", ": ", "- ", "? ", "[", "]", "{", "}", ", ", "\n", "  ", "'", '"', "#", "&x ", "*x", "!!str ",
    "!!int ", "!!float ", "!!timestamp ", "!!bool ", "!!binary ", "!!set ", "!!omap ", "!custom ", "|", ">",
    "2024-13-45", "1:30", "0x1F", "~", "yes", "<<: ", "1" * 50, "%YAML 1.1\n", "---\n", "...\n", "\t", "\\",
]  # fmt: skip


def test_yaml_shaped_junk_never_crashes() -> None:
    rng = random.Random(1)
    for i in range(1500):
        fm = "".join(rng.choice(YAML_PIECES) for _ in range(rng.randint(1, 30)))
        try:
            parse_document(f"---\n{fm}\n---\nbody\n".encode(), f"fuzz-{i}.md")
        except ParseError as err:
            assert err.line >= 1


@pytest.mark.parametrize(
    "deep",
    [
        "[" * 10_000 + "]" * 10_000,  # PyYAML >= 6.0.2: libyaml refuses this itself, before any event
        "[" * (MAX_DEPTH + 5) + "a, @b" + "]" * (MAX_DEPTH + 5),  # a syntax error on the line, after the depth
    ],
    ids=["past-libyaml-limit", "syntax-error-after"],
)
def test_deep_flow_nesting_is_refused_with_our_message(tmp_path: Path, deep: str, events_read: list[int]) -> None:
    # libyaml's scanner reads the whole line of `[` before the first event: its refusal must not hide ours.
    err = parse_error(tmp_path, f"---\ntitle: x\ndeep: {deep}\n---\n".encode())
    assert (err.line, err.message) == (3, NESTED)
    assert events_read[0] < 4 * MAX_DEPTH  # stopped at the first level too deep, not after 10,000


@pytest.mark.parametrize(
    "fm",
    [
        "deep: " + "{a: " * 10_000 + "1" + "}" * 10_000,
        "deep:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200)) + " " * 200 + "leaf",
        "deep:\n  " + "- " * 10_000 + "x",
        "deep: " + "[" * 10_000,  # unclosed as well as deep
    ],
    ids=["flow-mapping", "block-mapping", "compact-sequences", "unclosed"],
)
def test_deep_nesting_of_every_kind_is_refused(tmp_path: Path, fm: str, events_read: list[int]) -> None:
    err = parse_error(tmp_path, f"---\n{fm}\n---\n".encode())
    assert err.message == NESTED
    assert err.line >= 2
    assert events_read[0] < 4 * MAX_DEPTH  # stopped at the first level too deep, not after 10,000


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    depth = MAX_DEPTH  # the root mapping is level 0, so the innermost list is level MAX_DEPTH
    parsed = parse_file(tmp_path, f"---\nx: {'[' * depth}{']' * depth}\n---\n".encode())
    value = parsed.meta["x"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == []
    err = parse_error(tmp_path, f"---\nx: {'[' * (depth + 1)}{']' * (depth + 1)}\n---\n".encode())
    assert (err.line, err.message) == (2, NESTED)


def test_very_deep_nesting_does_not_crash_the_process(tmp_path: Path) -> None:
    # libyaml's composer recurses in C: 40,000 levels used to kill the interpreter with SIGSEGV,
    # which no except clause catches. Run it in a child so a regression fails this test only.
    code = textwrap.dedent(
        """
        from cms.content.parse import parse_document
        from cms.errors import ParseError
        for n in (40_000, 200_000):
            try:
                parse_document(b"---\\nx: " + b"[" * n + b"]" * n + b"\\n---\\n", "deep.md")
            except ParseError as err:
                print(err.line)
        """
    )
    root = str(Path(cms.__file__).resolve().parent.parent)  # the same cms package as this test imports
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", "2"]


@pytest.mark.parametrize(("fm", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_frontmatter_must_be_a_mapping(tmp_path: Path, fm: str, kind: str) -> None:
    err = parse_error(tmp_path, f"---\n{fm}---\n".encode())
    assert err.line == 2
    assert kind in err.message


# -- meaning -----------------------------------------------------------------------------------


def test_non_string_keys_become_the_text_written(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\n1: x\nyes: y\n2024-01-01: z\n1.5: f\nnull: n\n---\n")
    assert parsed.meta == {"1": "x", "yes": "y", "2024-01-01": "z", "1.5": "f", "null": "n"}
    assert all(type(k) is str for k in parsed.meta)


def test_nested_keys_become_strings_too(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\nsizes:\n  1: small\n  on: lit\n---\n")
    assert parsed.meta == {"sizes": {"1": "small", "on": "lit"}}


@pytest.mark.parametrize(
    ("yaml_text", "value"),
    [
        ("no", False),
        ("yes", True),
        ("on", True),
        ("off", False),
        ("y", "y"),
        ("~", None),
        ("null", None),
        ("1:30", 90),
        ("0x1F", 31),
        ("017", 15),
        ("1e3", "1e3"),
        ("1.0e+3", 1000.0),
        ("'no'", "no"),
        ('"1:30"', "1:30"),
    ],
)
def test_yaml_1_1_scalars_are_read_as_libyaml_reads_them(tmp_path: Path, yaml_text: str, value: object) -> None:
    parsed = parse_file(tmp_path, f"---\nv: {yaml_text}\n---\n".encode())
    assert parsed.meta["v"] == value
    assert type(parsed.meta["v"]) is type(value)


def test_dates_and_datetimes(tmp_path: Path) -> None:
    from datetime import date, datetime, timedelta, timezone

    parsed = parse_file(tmp_path, b"---\nd: 2024-01-02\nt: 2024-01-02T10:30:00+02:00\nz: 2024-01-02T08:30:00Z\n---\n")
    assert parsed.meta["d"] == date(2024, 1, 2)
    assert parsed.meta["t"] == datetime(2024, 1, 2, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    assert parsed.meta["t"].utcoffset() == timedelta(hours=2)
    assert parsed.meta["z"] == parsed.meta["t"]


# -- the fast paths read exactly what the full ones read ---------------------------------------


class _PyYAMLResolver(_Loader):
    resolve = yaml.resolver.BaseResolver.resolve  # PyYAML's own, with the branches the override skips


def _reference_load(fm: str) -> dict[str, Any]:
    """load_yaml as it was before its fast paths: PyYAML's resolver, the depth check, PyYAML's
    constructor (the error handling is load_yaml's, by raising the same way)."""
    if (
        ("&" in fm and "*" in fm)
        or parse_module._DEEP_INDENT_RE.search(fm)
        or len(parse_module._NESTER_RE.findall(fm)) > MAX_DEPTH
    ):
        parse_module._scan_events(fm, "x.md", 2)
    loader = _PyYAMLResolver(fm)
    try:
        node = loader.get_single_node()
        if node is not None:
            parse_module._check_depth(node, "x.md", 2)
        value = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and (mark is None or mark.line >= fm.count("\n")):
            mark = exc.context_mark
        raise ParseError(
            "x.md", 2 + (mark.line if mark else 0), f"invalid YAML: {exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise ParseError("x.md", 2, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError("x.md", 2, f"frontmatter must be a mapping of keys, not a {type(value).__name__}")
    return value


def _typed(value: Any) -> Any:
    """A value with the type of every part spelled out (True is not 1, 1.0 is not 1, nan equals nan)."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value), repr(getattr(value, "tzinfo", None)))


def _fast_load(fm: str) -> dict[str, Any]:
    return load_yaml(fm, "x.md")


def _outcome(load: Callable[[str], dict[str, Any]], fm: str) -> Any:
    try:
        return _typed(load(fm))
    except ParseError as err:
        return ("error", err.line, err.message)


FRONTMATTERS = [
    'id: 01HTPJFDPT40E3RQHJG6HM7BXT\ntitle: "10 ways"\ndate: 2024-04-05T07:27:24Z\ntags:\n  - a\n  - b\n',
    "d: 2024-01-02\nt: 2024-01-02 10:30:00.123456789 +02:00\nu: 2024-1-2t3:04:05.5Z\nv: 2002-12-14t21:59:43.10-05:00\n",
    "bad: 2024-13-45\n",
    "n: [1, -2, +3, 0x1F, 017, 0b101, 1_000, 1:30, 190:20:30, .5, 1.5e3, .inf, -.Inf, .nan, 1e3]\n",
    "b: [yes, No, on, OFF, y, n, true, False, ~, null, Null, '', \"yes\"]\n",
    "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n",
    "base: &b {x: 1}\nother: 2\n",
    "m: {a: 1, b: [1, {c: d}], e: {f: {g: [h, i]}}}\n",
    "? complex\n: value\n",
    "s: !!str 12\ni: !!int '12'\nf: !!float '1'\n",
    "x: !custom thing\n",
    "x: !!binary aGVsbG8=\n",
    "x: !!set {a, b}\n",
    "x: !!omap [{a: 1}]\n",
    "x: !!python/object:os.system ls\n",
    "a: 1\na: 2\n",
    "outer:\n  a: 1\n  b: 2\n  a: 3\n",
    "[1, 2]: x\n",
    "1: one\nyes: y\n2024-01-01: z\nnull: n\n",
    "text: |\n  line 1\n  line 2\nfolded: >\n  a\n  b\n",
    "- just\n- a list\n",
    "42\n",
    "",
    "# only a comment\n",
    "x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n",
    "x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
    "x:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 63)) + " " * 63 + "[" * 10 + "]" * 10 + "\n",
    "big: " + "9" * 5000 + "\n",
    "u: caf\u00e9 \u2603\nk\u00e9y: v\n",
]


@pytest.mark.parametrize("fm", FRONTMATTERS)
def test_fast_yaml_path_reads_what_pyyaml_reads(fm: str) -> None:
    assert _outcome(_fast_load, fm) == _outcome(_reference_load, fm)


def test_fast_yaml_path_reads_what_pyyaml_reads_from_junk() -> None:
    rng = random.Random(2)
    for _ in range(3000):
        fm = "".join(rng.choice(YAML_PIECES) for _ in range(rng.randint(1, 30)))
        assert _outcome(_fast_load, fm) == _outcome(_reference_load, fm), fm


def _reference_split(text: str, path: str = "") -> tuple[str | None, str, int]:
    """split_frontmatter as it was: a loop over the lines."""
    if not text.startswith("---"):
        return None, text, 1
    first_end = text.find("\n")
    if first_end == -1 or text[:first_end].rstrip() != "---":
        return None, text, 1
    pos, line = first_end + 1, 2
    while True:
        end = text.find("\n", pos)
        current = text[pos:] if end == -1 else text[pos:end]
        if current.rstrip() in ("---", "..."):
            return text[first_end + 1 : pos], "" if end == -1 else text[end + 1 :], line + 1
        if end == -1:
            raise ParseError(path, 1, "frontmatter opened with '---' is never closed")
        pos, line = end + 1, line + 1


def test_split_frontmatter_finds_the_fence_the_line_loop_found() -> None:
    pieces = ["---", "...", "\n", " ", "\t", "\u00a0", "\x1c", "\u2028", "a: 1", "----", "-- -", ". ..", "x"]
    rng = random.Random(3)
    for _ in range(5000):
        text = "---\n" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            expected: Any = _reference_split(text, "x.md")
        except ParseError as err:
            expected = ("error", err.line)
        try:
            got: Any = split_frontmatter(text, "x.md")
        except ParseError as err:
            got = ("error", err.line)
        assert got == expected, repr(text)


# -- locate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("posts/a.md", Location("document", "posts", "a")),
        ("posts/_type.yaml", Location("schema", "posts", "")),
        ("categories/x.md", Location("term", "categories", "x")),
        ("authors/mara.md", Location("term", "authors", "mara")),
        ("posts/bundle/index.md", Location("document", "posts", "bundle")),
        ("posts/bundle/index.de.md", Location("document", "posts", "bundle", "de")),
        ("posts/a.de.md", Location("document", "posts", "a", "de")),
        ("posts/a.pt-BR.md", Location("document", "posts", "a", "pt-BR")),
        ("about.md", Location("document", "pages", "about")),
        ("posts/My Post.md", Location("document", "posts", "my-post")),
        ("posts/2024/nested.md", Location("document", "posts", "nested")),
        ("posts/.hidden.md", None),
        ("posts/_index.md", None),
        ("posts/a.md~", None),
        ("posts/.#a.md", None),
        ("posts/#a.md#", None),
        ("posts/4913", None),
        ("posts/a.swp", None),
        ("posts/.a.md.swp", None),
        ("posts/.cms-tmp-1234.md", None),
        ("posts/notes.txt", None),
        ("_type.yaml", None),
        ("posts/sub/_type.yaml", None),
        (".git/config.md", None),
        ("posts/../x.md", None),
        ("/posts/a.md", None),
        ("", None),
    ],
)
def test_locate(rel: str, expected: Location | None) -> None:
    assert locate(rel, RESERVED) == expected


def test_locate_custom_taxonomy_folder_is_a_term() -> None:
    assert locate("series/intro.md", (*RESERVED, "series")) == Location("term", "series", "intro")
    assert locate("series/intro.md", RESERVED) == Location("document", "series", "intro")
