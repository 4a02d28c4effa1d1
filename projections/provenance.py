"""Provenance: the events behind one figure, each with its effective contribution after corrections."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from events.catalogue import CATALOGUE, METRICS
from events.regions import code_prefix, is_within
from events.store import Connection, feeding_with_changes
from projections.fold import effective_fact, metric_value


@dataclass(frozen=True, slots=True)
class Contribution:
    """One original fact's effective contribution to a figure."""

    event_id: str
    position: int
    type: str
    region: str
    day: date
    value: Decimal
    corrected_by: list[str]
    effective_since: int


def feeding_types(metric: str) -> list[str]:
    """The event types whose payload feeds ``metric``."""
    return [t.name for t in CATALOGUE.values() if any(m.name == metric for m in t.metrics)]


async def contributions(conn: Connection, campaign: str, metric: str, region: str, *, after: int, until: int,
                        limit: int) -> tuple[list[Contribution], int, bool]:
    """A page of contributions (originals with after < position <= until), where to continue, and whether done.

    ``limit`` bounds the originals a page examines (those that could be within ``region``), not the rows scanned.
    """
    spec = METRICS[metric]
    # Candidates: originals reported within the region's code prefix, and those a correction moved into it.
    # The rest cannot end up in the region, so they are skipped inside PostgreSQL; is_within below decides.
    histories = await feeding_with_changes(conn, campaign, feeding_types(metric), after=after, until=until,
                                           limit=limit, region_prefix=code_prefix(region) or "")
    if not histories:
        return [], after, True
    page: list[Contribution] = []
    for history in histories:
        original, changes = history.original, history.changes
        fact = effective_fact(original, changes)
        if fact is None or not is_within(fact.region, region):
            continue
        value = Decimal(metric_value(spec.kind, fact.data[spec.field]))
        if value:
            page.append(Contribution(original.event_id, original.position, original.type, fact.region, fact.day,
                                     value, [c.event_id for c in changes if c.type == "event_corrected"],
                                     fact.changed_at))
    return page, histories[-1].original.position, len(histories) < limit
