"""The ULID codec, pure: Crockford base32 text of a number, and the moment an id's first 10 characters hold.

Layer 0 (like `model.py`, which reads a document's creation time from its id): no clock, no randomness.
Making new ids (monotonic within a process, reset after fork) is `names.new_id`.
"""

from __future__ import annotations

from datetime import datetime

from cms.clock import from_timestamp

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U


def encode(n: int, length: int = 26) -> str:
    """The low `5 * length` bits of `n` as Crockford base32, most significant first."""
    return "".join(ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(length)))


def id_time_ms(text: str) -> int | None:
    """Milliseconds since the epoch a ULID encodes (48 bits, its first 10 characters); None for other text."""
    if len(text) != 26 or text[0] not in "01234567":  # 26 characters are 130 bits: a ULID's 128 start with 0-7
        return None
    ms = 0
    for ch in text[:10]:
        digit = ALPHABET.find(ch)
        if digit < 0:
            return None
        ms = ms * 32 + digit
    return ms


def id_moment(text: str) -> datetime | None:
    """The creation moment a ULID encodes, as an aware UTC datetime; None for other text."""
    ms = id_time_ms(text)
    return None if ms is None else from_timestamp(ms / 1000)
