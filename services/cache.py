"""A small in-memory cache of rendered responses, keyed by projection position."""

from collections import OrderedDict
from typing import Any


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
