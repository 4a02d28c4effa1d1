"""What this process knows about the projection without asking the database on each request."""

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from services.leadership import FollowerMode


@dataclass
class ProjectionState:
    """Projection position and log head as last seen (via NOTIFY, the in-process projector, or a poll)."""

    position: int = 0
    updated_at: datetime | None = None
    head: int = 0
    tables: int = 0
    """Identity (OID) of the live read tables, read by the poll: a rebuild swaps in new tables, and figures
    served from memory or validated by ETag at an unchanged position must not outlive that."""
    projector: FollowerMode = "off"
    error: str | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _pending_since: deque[tuple[int, float]] = field(default_factory=deque)

    def advance(self, position: int, updated_at: datetime | None = None) -> None:
        """The projection reached ``position`` (ignored if not newer)."""
        if position <= self.position:
            return
        self.position = position
        if updated_at is not None:
            self.updated_at = updated_at
        self.saw_head(position)
        while self._pending_since and self._pending_since[0][0] <= position:
            self._pending_since.popleft()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def saw_head(self, head: int) -> None:
        """The log reached ``head``; remember when, to know how old the oldest unprojected event is."""
        if head > self.head:
            self.head = head
            if head > self.position:
                self._pending_since.append((head, time.monotonic()))

    @property
    def lag_events(self) -> int:
        """Events appended but not yet projected."""
        return max(0, self.head - self.position)

    @property
    def lag_seconds(self) -> float:
        """Roughly how long the oldest unprojected event has been waiting (0 when caught up)."""
        if self.lag_events == 0 or not self._pending_since:
            return 0.0
        return time.monotonic() - self._pending_since[0][1]

    async def wait_beyond(self, position: int) -> None:
        """Return once the projection is past ``position`` (wrap in asyncio.timeout to bound it)."""
        while self.position <= position:
            await self._changed.wait()
