"""Figures as they stood at a past position: the latest snapshot at or below it, plus the same fold the
projector uses over the events between (at most SNAPSHOT_EVERY of them, plus any projection lag).

The cost therefore does not grow with the log: one index lookup per row asked for, and a bounded fold.
"""

from events.regions import level_of
from events.store import Connection, LogFilter, head, read_page
from projections.fold import Deltas, Fold
from projections.tables import Scope, checkpoint, known_facts, latest_snapshot, snapshot_figures

_PAGE = 5000


class BeyondLog(Exception):
    """The position asked for is past the end of the log."""


def scope_of(region: str, level: str | None = None) -> Scope:
    """The rows a view of ``region`` (with its children, or every region of ``level`` within it) reads."""
    prefix = {"nation": "", "province": region[:2], "prefecture": region[:4], "county": region}[level_of(region)]
    return Scope(region, level, prefix)


async def fold_range(conn: Connection, campaign: str, after: int, until: int) -> Deltas:
    """The deltas (all but the daily ones: no past-position read shows a series) that a campaign's events in
    (after, until] produce, read a page at a time."""
    fold = Fold(daily=False)
    while events := await read_page(conn, LogFilter(after=after, campaign=campaign, until=until), _PAGE):
        fold.learn(await known_facts(conn, events))
        for event in events:
            fold.apply(event)
        after = events[-1].position
    return fold.deltas


async def figures_at(conn: Connection, campaign: str, position: int, scope: Scope) -> Deltas:
    """Totals, category figures and report counts of ``scope`` as they stood at ``position``.

    Rows outside ``scope`` may be present too (from the fold); read the result through region_view and
    children_view. Call inside a repeatable-read transaction so the log, the snapshots and the live tables agree.
    """
    end, _ = await head(conn)
    if position > end:
        raise BeyondLog(f"the log ends at position {end}")
    start = await latest_snapshot(conn, min(position, await checkpoint(conn)))
    figures = await fold_range(conn, campaign, start, position)
    if start:
        figures.merge(await snapshot_figures(conn, campaign, start, scope))
    return figures
