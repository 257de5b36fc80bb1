"""The ULID codec: Crockford base32 out, the moment of an id back, and None for text that is no ULID."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cms.content.names import new_id, path_id
from cms.content.ulid import ALPHABET, encode, id_moment, id_time_ms


def test_encode_writes_the_low_bits_most_significant_first() -> None:
    assert encode(0) == "0" * 26
    assert encode(31, 2) == "0Z"
    assert encode(32, 2) == "10"
    assert encode(2**130 - 1) == "Z" * 26
    assert len(ALPHABET) == 32 and not set("ILOU") & set(ALPHABET)


def test_the_time_of_a_new_id_comes_back() -> None:
    doc_id = new_id(now_ms=1_700_000_000_123)
    assert id_time_ms(doc_id) == 1_700_000_000_123
    assert id_moment(doc_id) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",  # 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",  # 27
        "8" + "0" * 25,  # past 128 bits: not a ULID
        "01ARZ3NDEI" + "0" * 16,  # I is not Crockford
        "01arz3ndek" + "0" * 16,  # lower case
    ],
)
def test_other_text_has_no_time(text: str) -> None:
    assert id_time_ms(text) is None
    assert id_moment(text) is None


def test_a_path_id_past_the_ulid_range_has_no_time() -> None:
    ids = [path_id("posts", f"slug-{n}") for n in range(64)]
    assert all(len(i) == 26 for i in ids)
    assert any(id_time_ms(i) is None for i in ids)  # 130 bits: most start past 7
