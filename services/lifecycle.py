"""Appending lifecycle events from the CLI, through the same decision path as the API."""

import uuid
from datetime import datetime
from typing import Any

from events.campaigns import lifecycle_draft
from events.decide import Accepted, Actor, AppendRequest
from events.store import Connection
from events.writer import append_in_transaction

CLI_ACTOR = Actor("cli", "admin")


async def append_lifecycle(conn: Connection, type_: str, campaign_id: str, data: dict[str, Any], *,
                           now: datetime) -> int:
    """Append one lifecycle event as the CLI; returns its position or raises why it was refused."""
    draft = lifecycle_draft(type_, campaign_id, data, event_id=str(uuid.uuid4()), now=now)
    request = AppendRequest([draft], CLI_ACTOR, f"cli-{uuid.uuid4().hex[:12]}")
    (outcome,), _ = await append_in_transaction(conn, [request], now)
    if not isinstance(outcome, Accepted):
        raise outcome
    return outcome.results[0].position
