"""Figures as they stood at a past position, computed with the same fold the projector uses.

The figures at N are folded forward from nothing over a campaign's events up to N, or,
when N is closer to the live checkpoint P, read live and folded backward: figures(N) =
figures(P) - fold(N, P], or forward from P when N is past it. All read the log and the
live tables in one snapshot.
"""

from collections.abc import AsyncIterator
from decimal import Decimal

import orjson

from events.catalogue import CATALOGUE
from events.records import RecordedEvent
from events.regions import ancestors_and_self, code_prefix, is_within, level_of, parent_of
from events.store import Connection, record_columns, record_from_row
from events.upcasting import upcast
from projections.fold import Deltas, Fold
from projections.tables import checkpoint, known_facts


class BeyondLog(Exception):
    """The position asked for is past the end of the log."""


async def campaign_events(conn: Connection, campaign: str, after: int, until: int,
                          page: int = 5000) -> AsyncIterator[list[RecordedEvent]]:
    """A campaign's events with after < position <= until, a page at a time."""
    while after < until:
        rows = await conn.fetch(
            f"SELECT {record_columns()} FROM events WHERE campaign = $1 AND position > $2 AND position <= $3 "
            "ORDER BY position LIMIT $4", campaign, after, until, page)
        if not rows:
            return
        events = [record_from_row(r) for r in rows]
        yield events
        after = events[-1].position


async def fold_range(conn: Connection, campaign: str, after: int, until: int) -> Deltas:
    """The deltas a campaign's events in (after, until] produce, in bounded memory (page by page)."""
    total = Deltas()
    async for events in campaign_events(conn, campaign, after, until):
        fold = Fold(await known_facts(conn, events))
        for event in events:
            fold.apply(event)
        total.merge(fold.deltas)
    return total


async def live_deltas(conn: Connection, campaign: str) -> Deltas:
    """The live totals and category figures of a campaign, as Deltas from nothing."""
    out = Deltas()
    for row in await conn.fetch("SELECT region, metric, value FROM projection_totals WHERE campaign = $1", campaign):
        out.totals[(campaign, row["region"], row["metric"])] = row["value"]
    for row in await conn.fetch("SELECT region, metric, category, value FROM projection_categories "
                                "WHERE campaign = $1", campaign):
        out.categories[(campaign, row["region"], row["metric"], row["category"])] = row["value"]
    for row in await conn.fetch("SELECT region, day, events FROM projection_reports WHERE campaign = $1", campaign):
        out.reports[(campaign, row["region"], row["day"])] = row["events"]
    return out


async def figures_at(conn: Connection, campaign: str, position: int) -> Deltas:
    """Totals, category figures and report counts of a campaign as they stood at ``position``.

    Call inside a repeatable-read transaction so the log and the live tables agree.
    """
    live = await checkpoint(conn)
    head = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
    if position > head:
        raise BeyondLog(f"the log ends at position {head}")
    if position > live:
        figures = await live_deltas(conn, campaign)
        figures.merge(await fold_range(conn, campaign, live, position))
        return figures
    if position <= live - position:
        return await fold_range(conn, campaign, 0, position)
    figures = await live_deltas(conn, campaign)
    later = await fold_range(conn, campaign, position, live)
    figures.merge(later, sign=-1)
    await _drop_keys_born_later(conn, campaign, position, figures, later)
    return figures


async def _drop_keys_born_later(conn: Connection, campaign: str, position: int, figures: Deltas,
                                later: Deltas) -> None:
    """Remove from a backward answer the keys that events after ``position`` created.

    The live tables keep a row once any event touched it, so live - fold(N, P] also holds, with value 0,
    the regions and categories first reported after N, which the figures at N did not have (a child or
    a category with zeros that was not there). Only a key that comes out 0 can be such a key; whether it
    existed at N is settled by the campaign's facts and corrections up to N within those regions.
    """
    nonzero = {r for (_, r, _), v in figures.totals.items() if v}
    regions = {r for (_, r, _) in later.totals} - nonzero
    categories = {k for k in later.categories if not figures.categories[k]}
    if not regions and not categories:
        return
    scopes = regions | {k[1] for k in categories}
    prefixes = [f"{p}%" for p in {code_prefix(s) or "" for s in scopes}]
    seen_regions: set[str] = set()
    seen_categories: set[tuple[str, str, str]] = set()
    after = 0
    while rows := await conn.fetch(
            "SELECT e.position, e.region, e.type, e.schema_version, e.data, coalesce(t.type, e.type) AS fact_type "
            "FROM events e LEFT JOIN events t ON t.event_id = e.target_event_id "
            "WHERE e.campaign = $1 AND e.position > $2 AND e.position <= $3 AND e.region LIKE ANY($4::text[]) "
            "AND e.type <> 'event_retracted' ORDER BY e.position LIMIT 5000", campaign, after, position, prefixes):
        after = rows[-1]["position"]
        for row in rows:
            spec = CATALOGUE.get(row["fact_type"])
            if spec is None or spec.kind != "fact":
                continue
            data = orjson.loads(row["data"])
            _, data = (upcast(spec.name, spec.latest_version, data["replacement"]) if row["type"] == "event_corrected"
                       else upcast(spec.name, row["schema_version"], data))
            category = data.get(spec.category_field) if spec.category_field else None
            for region in ancestors_and_self(row["region"]):
                seen_regions.add(region)
                if category is not None:
                    seen_categories.update((region, m.name, category) for m in spec.metrics)
    for key in [k for k in figures.totals if k[0] == campaign and k[1] in regions and k[1] not in seen_regions]:
        del figures.totals[key]
    for key_c in [k for k in categories if (k[1], k[2], k[3]) not in seen_categories]:
        del figures.categories[key_c]


def region_view(deltas: Deltas, campaign: str, region: str) -> tuple[dict[str, Decimal], dict[str, dict[str, Decimal]]]:
    """(metric → total, metric → category → value) of one region out of folded deltas."""
    totals = {m: Decimal(v) for (c, r, m), v in deltas.totals.items() if c == campaign and r == region}
    categories: dict[str, dict[str, Decimal]] = {}
    for (c, r, m, category), v in deltas.categories.items():
        if c == campaign and r == region:
            categories.setdefault(m, {})[category] = Decimal(v)
    return totals, categories


def children_view(deltas: Deltas, campaign: str, region: str, level: str | None) -> dict[str, dict[str, Decimal]]:
    """region → metric → total for the direct children of ``region`` (or every region of ``level`` within it)."""
    out: dict[str, dict[str, Decimal]] = {}
    for (c, r, m), v in deltas.totals.items():
        if c != campaign or r == region:
            continue
        wanted = (level_of(r) == level and is_within(r, region)) if level else parent_of(r) == region
        if wanted:
            out.setdefault(r, {})[m] = Decimal(v)
    return out
