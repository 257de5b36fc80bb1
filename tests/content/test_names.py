"""Ids, slugs and the naming rules that keep files inside content/."""

from __future__ import annotations

import contextlib
import os
import unicodedata

import pytest

from cms.content import names
from cms.content.names import (
    check_slug,
    check_type_name,
    is_id,
    new_id,
    path_id,
    slugify,
    unique_slug,
)
from cms.content.ulid import id_time_ms
from cms.errors import BadRequest
from tests.steps import OverBudget, Steps

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

# -- ids ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_id_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the last id made, so a test may pass a now_ms earlier than a previous test's."""
    monkeypatch.setattr(names, "_last_ms", 0)
    monkeypatch.setattr(names, "_last_rand", 0)


def test_new_id_shape() -> None:
    doc_id = new_id()
    assert len(doc_id) == 26
    assert set(doc_id) <= CROCKFORD
    assert is_id(doc_id)
    assert doc_id[0] <= "7"  # 48 bits of time fit in the first 10 characters


def test_new_id_encodes_its_time() -> None:
    assert id_time_ms(new_id(now_ms=1_700_000_000_123)) == 1_700_000_000_123


def test_new_id_sorts_by_time() -> None:
    ids = [new_id(now_ms=ms) for ms in (1_000, 2_000, 1_500_000_000_000, 1_700_000_000_000)]
    assert ids == sorted(ids)


def test_new_id_unique_and_ordered_over_100_000_calls() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_new_id_monotonic_within_one_millisecond() -> None:
    ids = [new_id(now_ms=1_800_000_000_000) for _ in range(1_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1_000
    assert {id_time_ms(i) for i in ids} == {1_800_000_000_000}


def test_new_id_stays_ordered_when_the_clock_goes_back() -> None:
    first = new_id(now_ms=1_900_000_000_000)
    assert new_id(now_ms=1_899_999_999_000) > first


def test_a_forked_process_makes_different_ids() -> None:
    # Parent and child inherit the same "last id"; both used to continue with last + 1.
    now = 2_000_000_000_000
    new_id(now_ms=now)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write_end, new_id(now_ms=now).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert is_id(child_id)
    assert child_id != new_id(now_ms=now)


def test_path_id_is_deterministic() -> None:
    assert path_id("posts", "hello") == path_id("posts", "hello")
    assert len(path_id("posts", "hello")) == 26
    assert is_id(path_id("posts", "hello"))
    assert len({path_id("posts", "hello"), path_id("pages", "hello"), path_id("posts", "hello", "de")}) == 3


@pytest.mark.parametrize(
    "text", ["", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX", "01arz3ndektsv4rrffq69g5fav"]
)
def test_is_id_refuses(text: str) -> None:
    assert not is_id(text)


# -- slugify -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Hello World!", "hello-world"),
        ("Café Crème", "café-crème"),
        ("Cafe\u0301 Cre\u0300me", "café-crème"),  # NFD input gives the NFC slug
        ("東京 タワー", "東京-タワー"),
        ("हिन्दी भाषा", "हिन्दी-भाषा"),  # vowel signs and virama are marks, not separators
        ("العَرَبِيَّة", "العَرَبِيَّة"),
        ("Русский язык", "русский-язык"),
        ("I ❤️ 🐍 Python", "i-python"),
        ("🐍🐍", "untitled"),
        ("", "untitled"),
        ("   ", "untitled"),
        ("--a--b--", "a-b"),
        ("snake_case name", "snake-case-name"),
        ("../../etc/passwd", "etc-passwd"),
        ("ﬁle Ｆｕｌｌ", "file-full"),
        ("con", "untitled-con"),
        ("NUL", "untitled-nul"),
        ("com1", "untitled-com1"),
        ("LPT9", "untitled-lpt9"),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug
    assert check_slug(slugify(title)) == slug


def test_slugify_caps_utf8_bytes() -> None:
    for text in ("a" * 300, "é" * 300, "中" * 300, "word " * 100):
        slug = slugify(text)
        assert len(slug.encode()) <= 80
        assert not slug.endswith("-")
        check_slug(slug)
    assert len(slugify("中" * 300).encode()) == 78  # 26 whole characters, no split UTF-8 sequence
    assert len(slugify("x" * 300, max_bytes=120)) == 120


def test_slugify_output_is_nfc() -> None:
    slug = slugify("Ame\u0301lie")
    assert unicodedata.is_normalized("NFC", slug)


# -- check_slug --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "../x",
        "..",
        ".",
        "a/b",
        "a\\b",
        ".hidden",
        "-x",
        "x-",
        "_x",
        "Hello",
        "a\x00b",
        "a\x01b",
        "tab\there",
        "a\x7fb",
        unicodedata.normalize("NFD", "café"),
        "con",
        "nul",
        "com1",
        "lpt9",
        "com¹",
        "a b",
        "a.",
        "a.md",
        "a\u2024b",  # one-dot leader, a look-alike of "."
        "a\uff0eb",  # full-width full stop
        "a\u202eb",  # right-to-left override
        "a\u200bb",  # zero-width space
        "\u0301a",  # starts with a combining mark
        "é" * 128,  # 256 UTF-8 bytes
        "x" * 201,
        None,
        42,
    ],
)
def test_check_slug_refuses(slug: object) -> None:
    with pytest.raises(BadRequest):
        check_slug(slug)


@pytest.mark.parametrize(
    "slug", ["a", "hello-world", "café", "a_b", "x" * 200, "東京-タワー", "हिन्दी", "2024-recap", "con-artist"]
)
def test_check_slug_accepts(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize(("name", "ok"), [("posts", True), ("my_type-2", True), ("Posts", False), ("../x", False)])
def test_check_type_name(name: str, ok: bool) -> None:
    if ok:
        assert check_type_name(name) == name
    else:
        with pytest.raises(BadRequest):
            check_type_name(name)


# -- unique_slug -------------------------------------------------------------------------------


def test_unique_slug() -> None:
    assert unique_slug("hello", set()) == "hello"
    assert unique_slug("hello", {"hello"}) == "hello-2"
    assert unique_slug("hello", {"hello", "hello-2"}) == "hello-3"


def test_unique_slug_compares_casefolded() -> None:
    # `taken` holds casefolded slugs: "Straße" and "strasse" are one file on a case-folding disk.
    assert unique_slug("straße", {"strasse"}) == "straße-2"
    assert unique_slug("Hello", {"hello"}) == "Hello-2"


# -- slug length: work bounded by the slug, not the title ----------------------------------------


@pytest.mark.parametrize("title", ["a" * 1_000_000, "Wörd " * 200_000, "ab-" * 300_000])
def test_slugify_of_a_huge_title_costs_what_a_short_one_does(title: str) -> None:
    # Counted, not timed: trimming one character at a time re-encoded the whole slug each time
    # (22 s for 1 MB), and the title was walked to its end although 80 bytes were kept.
    with Steps(budget=5_000) as steps:
        with contextlib.suppress(OverBudget):
            slug = slugify(title)
    assert not steps.over, "slugify's work grows with the title"
    assert len(slug.encode()) <= 80 and not slug.endswith("-")


@pytest.mark.parametrize("max_bytes", [5, 20, 80])
def test_slugify_cut_keeps_the_longest_prefix_that_fits(max_bytes: int) -> None:
    for title in ("é" * 200, "a-" * 200, "中文" * 100, "e\u0301" * 200, "हिन्दी " * 50, "a" * 300 + "\u0301" * 5):
        slug = slugify(title, max_bytes)
        whole = slugify(title, 10_000)
        assert len(slug.encode()) <= max_bytes
        assert whole.startswith(slug) and not slug.endswith("-")
        # nothing longer would have fitted: the next character (and a dash before it) overflows
        rest = whole[len(slug) :].lstrip("-")
        if rest:
            assert len((whole[: len(whole) - len(rest)] + rest[0]).encode()) > max_bytes
