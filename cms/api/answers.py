"""Ready answers to list requests: the bytes and headers of a list, reused while they still hold.

A list answer depends on the request (path, query string, host for the Link header), on what the
calling key may see, on the index and on time only through publish and expiry moments. So an answer
is kept with the index generation it was computed from and the moment it stops holding (the query
engine's `Page.until`), and a repeat of the same request by a key of the same standing gets the
same bytes without parsing, querying or serializing anything. Authentication and rate limiting
still run first on every request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

MAX_BYTES = 64 * 1024 * 1024  # the bodies kept, at most (least recently used go first)
MAX_BODY_BYTES = 4 * 1024 * 1024  # a bigger answer is not kept: it would push out many small ones


@dataclass(frozen=True)
class Answer:
    body: bytes
    headers: dict[str, str]
    generation: int  # the index generation it was computed from
    since: datetime  # it holds from this moment ...
    until: datetime  # ... to this one (exclusive), while the generation is unchanged


class ReadyAnswers:
    """A bounded, thread-safe map of request key -> Answer, emptied when the index moves on."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        self._bytes = 0
        self._generation = -1
        self._lock = threading.Lock()

    def get(self, key: Hashable, generation: int, now: datetime) -> Answer | None:
        """The answer kept for `key` if it holds for this generation at `now`."""
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                return None
            if answer.generation != generation or not answer.since <= now < answer.until:
                self._drop(key)
                return None
            self._answers.move_to_end(key)
            return answer

    def put(self, key: Hashable, answer: Answer) -> None:
        if len(answer.body) > MAX_BODY_BYTES:
            return
        with self._lock:
            if answer.generation != self._generation:
                if answer.generation < self._generation:
                    return  # computed from an older index than what is already kept
                self._answers.clear()  # every kept answer is from an older index
                self._bytes = 0
                self._generation = answer.generation
            if key in self._answers:
                self._drop(key)
            self._answers[key] = answer
            self._bytes += len(answer.body)
            while self._bytes > self.max_bytes and self._answers:
                self._drop(next(iter(self._answers)))

    def __len__(self) -> int:
        return len(self._answers)

    def _drop(self, key: Hashable) -> None:
        self._bytes -= len(self._answers.pop(key).body)
