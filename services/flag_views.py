"""Flags in their wire form, and the flags a dry run would raise."""

from datetime import timedelta
from typing import Any

from events.records import RecordedEvent
from events.store import Connection
from projections.flag_tables import load_state
from projections.quality import Flag, fold_flags
from schemas.api import FlagOut


def flag_out(row: dict[str, Any]) -> FlagOut:
    """A flags-table row (or a dry run's flag) in its wire form."""
    return FlagOut.model_validate({**row, "score": float(row["score"])})


def dry_run_flag(flag: Flag) -> FlagOut:
    """A flag a dry run would raise (open, not stored)."""
    return flag_out({**{k: getattr(flag, k) for k in flag.__slots__}, "status": "open"})


async def dry_run_flags(conn: Connection, records: list[RecordedEvent], late_after_days: float) -> list[FlagOut]:
    """The flags these (undecided-to-store) records would raise against the baselines as they are now."""
    state = await load_state(conn, records)
    changes = fold_flags(state, records, late_after=timedelta(days=late_after_days))
    return [dry_run_flag(f) for f in sorted(changes.raised, key=lambda f: (-f.score, f.id))]
