"""One spelling of booleans and integers for every query parameter and filter operand."""

from __future__ import annotations

import pytest

from cms.content.query import compile_filter, parse_query, to_bool, to_int, to_number
from cms.errors import BadRequest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("Off", False),
        ("", None),
        ("maybe", None),
    ],
)
def test_boolean_spellings(text: str, expected: bool | None) -> None:
    assert to_bool(text) is expected


@pytest.mark.parametrize("text", ["on", "yes", "true", "1", ""])
def test_every_boolean_parameter_reads_the_same_words(text: str) -> None:
    query = parse_query({"random": text, "draft": text})
    assert query.random is True
    assert query.statuses is not None  # draft: every status but trash


@pytest.mark.parametrize("text", ["on", "off", "yes", "no", "true", "false", "1", "0"])
def test_null_operands_read_the_same_words_as_parameters(text: str) -> None:
    compile_filter({"rating": {"$null": text}})


def test_a_word_that_is_no_boolean_is_refused_naming_the_parameter() -> None:
    with pytest.raises(BadRequest, match="random must be true or false"):
        parse_query({"random": "maybe"})
    with pytest.raises(BadRequest, match=r"filters\[rating\]\[\$null\] must be true or false"):
        compile_filter({"rating": {"$null": "maybe"}})


def test_integers_are_read_by_one_parser() -> None:
    assert to_int("12", "page") == 12
    assert parse_query({"seed": "7", "page": "3"}).seed == 7
    for params, name in (({"seed": "x"}, "seed"), ({"page": "x"}, "page"), ({"per_page": "1.5"}, "per_page")):
        with pytest.raises(BadRequest, match=f"{name} must be an integer, got"):
            parse_query(params)


def test_numbers_are_finite() -> None:
    assert to_number("2.5") == 2.5
    assert to_number("inf") is None
    assert to_number("n/a") is None
