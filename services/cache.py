"""A small in-memory cache of rendered responses, keyed by projection position."""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

State = tuple[int, int, int, int]
"""Projection position, log head, read-table identity and region-lists version: what a rendered poll answer
depends on."""


class ResponseCache:
    """Rendered bodies by (route, parameters, projection position): a repeated 200 costs no query."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        """A cached body, refreshed as most recently used."""
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        """Remember a body, evicting the least recently used beyond the size."""
        self._items[key] = body
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


@dataclass(frozen=True, slots=True)
class PollAnswer:
    """A rendered answer, valid while the projection state is ``state``."""

    state: State
    body: bytes
    etag: str
    etag_header: str
    """The ETag header of the answer: the weak validator ``W/"<etag>"``."""


class PollAnswers:
    """Rendered answers by path and query, least recently used dropped beyond ``size``."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._items: OrderedDict[str, PollAnswer] = OrderedDict()

    def put(self, path_qs: str, state: State, body: bytes, etag: str) -> None:
        """File an answer the handler rendered for ``state``."""
        self._items[path_qs] = PollAnswer(state, body, etag, f'W/"{etag}"')
        self._items.move_to_end(path_qs)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, path_qs: str, state: State) -> PollAnswer | None:
        """The answer for this path and query if it still reflects ``state``."""
        answer = self._items.get(path_qs)
        return answer if answer is not None and answer.state == state else None
