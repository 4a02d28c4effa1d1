"""Append requests, a running writer and log reads for the integration tests."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from events.campaigns import lifecycle_draft
from events.decide import Actor, AppendRequest
from events.intake import read_events
from events.records import RecordedEvent
from events.store import Connection, LogFilter, read_page
from events.writer import GroupCommitted, GroupCommitWriter
from tests.factories import CAMPAIGN

ADMIN = Actor("k1", "admin")
REPORTER = Actor("k2", "reporter", "330000")


def request(*envelopes: dict[str, Any], actor: Actor = REPORTER) -> AppendRequest:
    """One append request (one HTTP POST) carrying these envelopes, with a fresh request id."""
    body = envelopes[0] if len(envelopes) == 1 else {"events": list(envelopes)}
    return AppendRequest(read_events(body), actor, f"req-{uuid.uuid4().hex[:12]}")


def lifecycle(type_: str, data: dict[str, Any]) -> AppendRequest:
    """An admin request with one lifecycle event (campaign_opened / _closed / _reopened)."""
    draft = lifecycle_draft(type_, data["id"], data, event_id=str(uuid.uuid4()), now=datetime.now(UTC))
    return AppendRequest([draft], ADMIN, f"req-{uuid.uuid4().hex[:12]}")


@dataclass
class CommitLog:
    """Every GroupCommitted the writer reported."""

    commits: list[GroupCommitted] = field(default_factory=list)

    def __call__(self, committed: GroupCommitted) -> None:
        self.commits.append(committed)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.commits)


@asynccontextmanager
async def running_writer(pool: asyncpg.Pool, **options: Any) -> AsyncIterator[GroupCommitWriter]:
    """A GroupCommitWriter with its run() loop as a task; drained and stopped on exit."""
    writer = GroupCommitWriter(pool, **options)
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        writer.stop_accepting()
        async with asyncio.timeout(30):
            await task


async def open_campaign(writer: GroupCommitWriter, campaign: dict[str, Any] = CAMPAIGN) -> int:
    """Open a campaign through the writer; returns the position of campaign_opened."""
    accepted = await writer.append(lifecycle("campaign_opened", campaign))
    return accepted.results[0].position


async def read_log(conn: Connection, page_size: int = 500) -> list[RecordedEvent]:
    """The whole log, read page by page with read_page."""
    events: list[RecordedEvent] = []
    after = 0
    while page := await read_page(conn, LogFilter(after=after), page_size):
        events.extend(page)
        after = page[-1].position
    return events


async def count_events(conn: Connection) -> int:
    """Rows in the events table."""
    count: int = await conn.fetchval("SELECT count(*) FROM events")
    return count
