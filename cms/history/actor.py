"""Who is writing: set once where a request or a command starts, read where the commit is made.

A context variable, so it follows a request into the thread pool (Starlette copies the context)
and never leaks from one request into another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The author of a write: an API key (`key_id` set) or a person (git's user.name/user.email)."""

    name: str
    email: str
    key_id: str | None = None


_current: ContextVar[Actor | None] = ContextVar("cms_actor", default=None)


def current_actor() -> Actor | None:
    """The actor of the write in progress; None when nobody said (a script calling the store)."""
    return _current.get()


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Writes inside this block are authored by `actor`."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def set_actor(actor: Actor | None) -> None:
    """Set the actor for the rest of this context (a request: its context ends with it)."""
    _current.set(actor)
