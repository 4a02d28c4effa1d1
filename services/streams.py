"""The open Server-Sent Event streams of this process, so they can be ended on purpose.

A stream otherwise lives as long as its client: shutdown would wait for every open page
(until the orchestrator's SIGKILL), and a revoked key would keep watching a quiet campaign.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class OpenStreams:
    """Each open stream's closing signal and the key it was opened with (None: a public reader)."""

    def __init__(self) -> None:
        self._streams: dict[asyncio.Event, str | None] = {}

    @contextmanager
    def opened(self, key_id: str | None) -> Iterator[asyncio.Event]:
        """Register a stream for as long as the block runs; the event is set when it must end."""
        closing = asyncio.Event()
        self._streams[closing] = key_id
        try:
            yield closing
        finally:
            del self._streams[closing]

    def holds(self, key_id: str) -> bool:
        """Whether any open stream was opened with this key."""
        return key_id in self._streams.values()

    def close_key(self, key_id: str) -> int:
        """End every stream of one key (revoked); returns how many."""
        ended = [closing for closing, key in self._streams.items() if key == key_id]
        for closing in ended:
            closing.set()
        return len(ended)

    def close_all(self) -> int:
        """End every stream (shutdown); returns how many."""
        for closing in self._streams:
            closing.set()
        return len(self._streams)
