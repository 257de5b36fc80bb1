"""Writing content files: minimal-diff updates, atomic and checked replacement, locks, recovery."""

from __future__ import annotations

import difflib
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cms.content.frontmatter import DELETE, render_document, update_document
from cms.content.model import etag_of
from cms.content.parse import parse_document
from cms.content.write import (
    TEMP_PREFIX,
    atomic_write,
    document_lock,
    ensure_inside,
    read_bytes,
    remove_temp_files,
    replace_checked,
)
from cms.errors import BadRequest, Conflict, ParseError
from tests.conftest import MakeSite

ORIGINAL = """\
---
# Written by hand; keep this comment.
title: 'Hello, world'   # the display title
id: 01J0000000000000000000000A
date: 2024-03-01T09:30:00+01:00
tags: [coffee, brewing]  # flow list

# SEO block below
summary: "A double-quoted summary"
custom_field: 42
draft: no
nested:
  a: 1
  b: [x, y]
list:
  - one
  - two
# trailing comment
---
# Body

Some *Markdown* text.
"""


def meta_of(data: bytes | str) -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    return parse_document(raw, "post.md").meta


def changed_lines(before: str, after: bytes) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) between two texts, from difflib."""
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.ndiff(before.splitlines(), after.decode().splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


# -- render_document ---------------------------------------------------------------------------


def test_render_document_reads_back() -> None:
    meta = {"title": "Hello", "n": 3, "draft": False, "tags": ["a", "b"], "when": date(2024, 1, 2)}
    data = render_document(meta, "Body text")
    text = data.decode()
    assert text.startswith("---\n")
    assert "\r" not in text
    assert text.endswith("Body text\n")
    parsed = parse_document(data, "x.md")
    assert parsed.meta == meta
    assert list(parsed.meta) == list(meta)
    assert parsed.body == "Body text\n"


def test_render_document_normalizes_body_line_ends() -> None:
    data = render_document({"title": "x"}, "a\r\nb\rc")
    assert data == b"---\ntitle: x\n---\na\nb\nc\n"


def test_render_document_empty() -> None:
    assert render_document({}, "") == b"---\n---\n"


@pytest.mark.parametrize("value", ["no", "on", "yes", "1:30", "0x1F", "2024-01-01", "null", "~", "1e3", "017"])
def test_render_quotes_strings_libyaml_would_misread(value: str) -> None:
    data = render_document({"v": value}, "")
    assert meta_of(data) == {"v": value}


@pytest.mark.parametrize("value", [1e16, 1e-05, 5e-324, -2.5e300, 0.1, 3.0])
def test_render_floats_read_back_as_floats(value: float) -> None:
    # ruamel writes 1e+16 without a dot; libyaml (YAML 1.1) reads that as the string "1e+16".
    read = meta_of(render_document({"v": value}, ""))["v"]
    assert type(read) is float
    assert read == value


@pytest.mark.parametrize("value", ["a\x85b", "\x85", "line\u2028sep", "para\u2029sep", "x\r\ny", "tab\there"])
def test_render_keeps_unusual_line_breaks(value: str) -> None:
    # In a single-quoted scalar libyaml folds NEL, LS and PS into a space.
    assert meta_of(render_document({"v": value}, "")) == {"v": value}


@pytest.mark.parametrize("meta", [{"v": "a\x00b"}, {"v": "\ud800"}, {"v": object()}, {"v": ["ok", b"bytes"]}])
def test_render_refuses_values_yaml_cannot_hold(meta: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        render_document(meta, "")


# -- update_document: minimal diffs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "removed", "added"),
    [
        (
            {"title": "Bonjour"},
            ["title: 'Hello, world'   # the display title"],
            ["title: 'Bonjour'   # the display title"],
        ),
        ({"summary": "New"}, ['summary: "A double-quoted summary"'], ['summary: "New"']),
        ({"tags": ["tea"]}, ["tags: [coffee, brewing]  # flow list"], ["tags: [tea]  # flow list"]),
        ({"custom_field": 43}, ["custom_field: 42"], ["custom_field: 43"]),
        ({"draft": True}, ["draft: no"], ["draft: true"]),
        ({"nested": {"a": 2, "b": ["x", "y"]}}, ["  a: 1"], ["  a: 2"]),
        ({"list": ["one", "three"]}, ["  - two"], ["  - three"]),
        ({"custom_field": DELETE}, ["custom_field: 42"], []),
        ({"list": DELETE}, ["list:", "  - one", "  - two"], []),
        ({"nested": DELETE}, ["nested:", "  a: 1", "  b: [x, y]"], []),
        ({"new_key": "value"}, [], ["new_key: value"]),
        ({"new_key": "no"}, [], ['new_key: "no"']),
        ({"title": "Hello, world"}, [], []),
        ({"draft": False}, [], []),
        ({"date": datetime(2024, 3, 1, 8, 30, tzinfo=UTC)}, [], []),
    ],
)
def test_update_changes_only_the_changed_keys_lines(
    changes: dict[str, Any], removed: list[str], added: list[str]
) -> None:
    out = update_document(ORIGINAL, changes)
    assert changed_lines(ORIGINAL, out) == (removed, added)
    expected = meta_of(ORIGINAL)
    for key, value in changes.items():
        if value is DELETE:
            del expected[key]
        else:
            expected[key] = value
    assert meta_of(out) == expected


def test_update_keeps_everything_else_byte_for_byte() -> None:
    out = update_document(ORIGINAL, {"summary": "Changed"}).decode()
    assert out == ORIGINAL.replace('summary: "A double-quoted summary"', 'summary: "Changed"')


def test_new_key_goes_after_the_last_key_before_trailing_comments() -> None:
    lines = update_document(ORIGINAL, {"author": "mara"}).decode().splitlines()
    assert lines[lines.index("  - two") + 1] == "author: mara"
    assert lines[lines.index("author: mara") + 1] == "# trailing comment"


def test_several_changes_at_once() -> None:
    out = update_document(ORIGINAL, {"title": "T", "custom_field": DELETE, "added": [1, 2]})
    removed, added = changed_lines(ORIGINAL, out)
    assert removed == ["title: 'Hello, world'   # the display title", "custom_field: 42"]
    assert added == ["title: 'T'   # the display title", "added:", "  - 1", "  - 2"]


def test_body_replacement_keeps_frontmatter_bytes() -> None:
    out = update_document(ORIGINAL, {}, body="New body\r\nline two").decode()
    frontmatter_end = ORIGINAL.index("# Body")
    assert out[:frontmatter_end] == ORIGINAL[:frontmatter_end]
    assert out[frontmatter_end:] == "New body\nline two\n"


def test_update_of_a_crlf_file_writes_lf() -> None:
    out = update_document(ORIGINAL.replace("\n", "\r\n"), {"custom_field": 7})
    assert b"\r" not in out
    assert out.decode() == ORIGINAL.replace("custom_field: 42", "custom_field: 7")


def test_update_without_frontmatter_adds_it() -> None:
    out = update_document("Just a body.\n", {"title": "Now titled"})
    assert out == b"---\ntitle: Now titled\n---\nJust a body.\n"


def test_update_of_comment_only_frontmatter_keeps_the_comment() -> None:
    out = update_document("---\n# keep me\n---\nbody\n", {"title": "x"})
    assert out == b"---\n# keep me\ntitle: x\n---\nbody\n"


def test_update_quotes_a_value_libyaml_read_differently() -> None:
    # A person wrote `time: 1:30` (libyaml: 90); setting it to the *string* "1:30" must change the file.
    original = "---\ntime: 1:30\nflag: no\n---\n"
    assert meta_of(original) == {"time": 90, "flag": False}
    out = update_document(original, {"time": "1:30", "flag": "no"})
    assert meta_of(out) == {"time": "1:30", "flag": "no"}


def test_update_keeps_the_files_nested_indentation() -> None:
    # render_document's own style: maps indented 2, sequences "  - x". ruamel's indent guess took 4
    # from the sequence and re-indented every nested mapping it rewrote.
    original = render_document({"seo": {"title": "a", "image": "b"}, "tags": ["x", "y"]}, "").decode()
    out = update_document(original, {"seo": {"title": "changed", "image": "b"}})
    assert changed_lines(original, out) == (["  title: a"], ["  title: changed"])


def test_update_keeps_four_space_indentation() -> None:
    original = "---\nseo:\n    title: a\n    image: b\n---\n"
    out = update_document(original, {"seo": {"title": "c", "image": "b"}})
    assert changed_lines(original, out) == (["    title: a"], ["    title: c"])


def test_update_refuses_a_file_it_cannot_edit_without_losing_keys() -> None:
    # ruamel refuses duplicate keys; rebuilding the frontmatter from the changes alone lost the rest.
    original = "---\ntitle: a\ntitle: b\nkeep: me\n---\nbody\n"
    with pytest.raises(ParseError) as info:
        update_document(original, {"other": 1})
    assert info.value.line == 3


@pytest.mark.parametrize("key", ["true", "null", "0x1F", "1", "2024-01-01", "Yes"])
def test_update_finds_keys_the_two_dialects_read_differently(key: str) -> None:
    # ruamel reads `true:` as True and `1:` as 1; the key must still be found, not appended twice.
    original = f"---\n{key}: old\nafter: 1\n---\n"
    out = update_document(original, {key: "new"})
    assert meta_of(out) == {key: "new", "after": 1}
    assert update_document(original, {key: DELETE}) == b"---\nafter: 1\n---\n"


def test_update_of_a_flow_mapping_frontmatter_keeps_all_keys() -> None:
    out = update_document("---\n{a: 1, b: 2}\n---\n", {"c": 3})
    assert meta_of(out) == {"a": 1, "b": 2, "c": 3}


def test_changing_a_quoted_value_to_text_with_a_newline() -> None:
    out = update_document(ORIGINAL, {"title": "two\nlines", "summary": "nel\x85here"})
    assert meta_of(out)["title"] == "two\nlines"
    assert meta_of(out)["summary"] == "nel\x85here"


def test_update_refuses_nul() -> None:
    with pytest.raises(BadRequest):
        update_document(ORIGINAL, {"title": "a\x00"})


# -- files -------------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for one test and restore it."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_atomic_write_creates_a_readable_file(tmp_path: Path, umask: Any) -> None:
    umask(0o022)
    path = tmp_path / "posts" / "new.md"
    atomic_write(path, b"hello\n")
    assert path.read_bytes() == b"hello\n"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o644  # not mkstemp's 0600
    assert mode & 0o044 == 0o044
    assert no_temp_files(tmp_path)


def test_atomic_write_follows_the_umask_in_force_now(tmp_path: Path, umask: Any) -> None:
    umask(0o027)
    path = tmp_path / "private.md"
    atomic_write(path, b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o600, 0o664, 0o640])
def test_atomic_write_keeps_the_existing_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"old")
    path.chmod(mode)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_atomic_write_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_bytes(b"secret")
    link = tmp_path / "content" / "a.md"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(BadRequest):
        atomic_write(link, b"overwritten")
    assert target.read_bytes() == b"secret"
    assert link.is_symlink()
    assert no_temp_files(tmp_path)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert no_temp_files(tmp_path)


def test_read_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    assert read_bytes(path) is None
    path.write_bytes(b"data")
    assert read_bytes(path) == b"data"
    link = tmp_path / "link.md"
    link.symlink_to(path)
    with pytest.raises(BadRequest):
        read_bytes(link)


def test_ensure_inside(tmp_path: Path) -> None:
    root = tmp_path / "content"
    (root / "posts").mkdir(parents=True)
    assert ensure_inside(root / "posts" / "a.md", root) == (root / "posts" / "a.md").resolve()
    with pytest.raises(BadRequest):
        ensure_inside(root / ".." / "cms.toml", root)
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(BadRequest):
        ensure_inside(root / "escape" / "x.md", root)


# -- replace_checked ---------------------------------------------------------------------------


def test_replace_checked_writes_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"v1")
    new_etag = replace_checked(path, b"v2", etag_of(b"v1"))
    assert path.read_bytes() == b"v2"
    assert new_etag == etag_of(b"v2")


def test_replace_checked_creates_when_expected_absent(tmp_path: Path) -> None:
    path = tmp_path / "new.md"
    assert replace_checked(path, b"v1", None) == etag_of(b"v1")
    assert path.read_bytes() == b"v1"


def test_replace_checked_conflict_when_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"hand edit")
    with pytest.raises(Conflict) as info:
        replace_checked(path, b"api write", etag_of(b"what the api read"))
    assert info.value.current_etag == etag_of(b"hand edit")
    assert path.read_bytes() == b"hand edit"


def test_replace_checked_conflict_when_file_deleted(tmp_path: Path) -> None:
    path = tmp_path / "gone.md"
    with pytest.raises(Conflict) as info:
        replace_checked(path, b"api write", etag_of(b"v1"))
    assert info.value.current_etag is None
    assert not path.exists()


def test_replace_checked_conflict_when_create_finds_a_file(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"already here")
    with pytest.raises(Conflict) as info:
        replace_checked(path, b"new", None)
    assert info.value.current_etag == etag_of(b"already here")
    assert path.read_bytes() == b"already here"


def test_replace_checked_catches_an_edit_during_the_swap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A person saves after the check but before the file goes in: the swapped-out file is not the
    # one that was checked, so theirs goes back in place and the API write is a conflict.
    from cms.content import write

    path = tmp_path / "a.md"
    path.write_bytes(b"v1")
    real_exchange = write._exchange
    calls = []

    def exchange_after_a_hand_edit(a: str, b: Path) -> bool:
        if not calls:
            path.write_bytes(b"hand edit")
        calls.append(a)
        return real_exchange(a, b)

    monkeypatch.setattr(write, "_exchange", exchange_after_a_hand_edit)
    if write._renameat2() is None:
        pytest.skip("no renameat2 here")
    with pytest.raises(Conflict) as info:
        replace_checked(path, b"api write", etag_of(b"v1"))
    assert path.read_bytes() == b"hand edit"
    assert info.value.current_etag == etag_of(b"hand edit")
    assert no_temp_files(tmp_path)


def test_replace_checked_create_does_not_clobber_a_file_that_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cms.content import write

    path = tmp_path / "new.md"
    real_read = write.read_bytes

    def read_then_a_person_creates_it(p: Path) -> bytes | None:
        got = real_read(p)
        if p == path and got is None:
            path.write_bytes(b"made by hand")
        return got

    monkeypatch.setattr(write, "read_bytes", read_then_a_person_creates_it)
    with pytest.raises(Conflict) as info:
        replace_checked(path, b"api", None)
    assert path.read_bytes() == b"made by hand"
    assert info.value.current_etag == etag_of(b"made by hand")
    assert no_temp_files(tmp_path)


def test_replace_checked_deletes(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"v1")
    assert replace_checked(path, None, etag_of(b"v1")) is None
    assert not path.exists()


def test_replace_checked_in_a_site(make_site: MakeSite) -> None:
    site = make_site({"content/posts/a.md": "---\ntitle: A\n---\nbody\n"})
    path = site.content_dir / "posts" / "a.md"
    before = path.read_bytes()
    data = update_document(before.decode(), {"title": "B"})
    replace_checked(path, data, etag_of(before))
    assert parse_document(path.read_bytes(), "posts/a.md").meta == {"title": "B"}


# -- remove_temp_files -------------------------------------------------------------------------


def test_remove_temp_files(tmp_path: Path) -> None:
    (tmp_path / "posts" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    leftovers = [tmp_path / f"{TEMP_PREFIX}a.md", tmp_path / "posts" / "deep" / f"{TEMP_PREFIX}b.yaml"]
    keep = [tmp_path / "posts" / "a.md", tmp_path / "posts" / "cms-tmp-not-ours.md", tmp_path / ".git" / "x"]
    for path in [*leftovers, *keep]:
        path.write_bytes(b"x")
    assert remove_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert remove_temp_files(tmp_path / "missing") == 0


# -- document_lock -----------------------------------------------------------------------------


def _hold_lock(lock_dir: str, key: str, held: Any, release: Any) -> None:
    with document_lock(Path(lock_dir), key):
        held.set()
        release.wait(10)


def test_document_lock_excludes_another_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(tmp_path), "posts/a.md", held, release))
    child.start()
    try:
        assert held.wait(30), "the child never took the lock"
        acquired = threading.Event()

        def take() -> None:
            with document_lock(tmp_path, "posts/a.md"):
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(0.3), "the lock was taken while another process held it"
        with document_lock(tmp_path, "posts/other.md"):  # other documents are not blocked
            pass
        release.set()
        assert acquired.wait(10), "the lock was never handed over"
        waiter.join(5)
    finally:
        release.set()
        child.join(10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def test_document_lock_excludes_another_thread(tmp_path: Path) -> None:
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with document_lock(tmp_path, "k"):
            inside.set()
            time.sleep(0.2)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(5)
    with document_lock(tmp_path, "k"):
        order.append("second in")
    thread.join(5)
    assert order == ["first out", "second in"]


def test_datetime_values_keep_their_offset() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    read = meta_of(render_document({"when": when}, ""))["when"]
    assert read == when
    assert read.utcoffset() == when.utcoffset()
