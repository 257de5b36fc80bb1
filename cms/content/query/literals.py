"""How a value written in a URL reads: the one spelling of booleans, integers and numbers.

Query parameters (`?random=on`, `?page=2`) and filter operands (`filters[rating][$gt]=4`,
`filters[image][$null]=true`) are text; both read it here, so a spelling accepted in one place is
accepted in the other.
"""

from __future__ import annotations

import math

from cms.errors import BadRequest

_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def to_bool(text: str) -> bool | None:
    """The boolean a word spells (true/1/yes/on, false/0/no/off, any case), None for any other text."""
    return _BOOLEANS.get(text.casefold())


def to_int(text: str, name: str) -> int:
    """The integer `text` spells; BadRequest naming the parameter when it is not one."""
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {text!r}") from None


def to_number(text: str) -> float | None:
    """The finite number `text` spells, None when it is not one (`inf` and `nan` are not numbers here)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
