"""Deciding a request exactly as the writer would, without storing it (POST /v1/events?dry_run=true)."""

from datetime import datetime, timedelta

from events.decide import Accepted, AppendRequest, GroupDecider
from events.errors import DomainError
from events.store import Connection, load_state


async def decide_without_storing(conn: Connection, request: AppendRequest, now: datetime,
                                 clock_skew: timedelta = timedelta(minutes=5)) -> Accepted:
    """The outcome a real append would have now: the same checks under the append lock, then nothing is written.

    Raises the DomainError a real append would raise. The transaction writes nothing and ends at once,
    so the append lock is held only for the time of one read.
    """
    async with conn.transaction():
        state = await load_state(conn, request.drafts, [request.actor.key_id])
        outcome = GroupDecider(state, now, clock_skew).decide(request)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome
