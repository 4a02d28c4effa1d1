"""Verifying the stored log's hash chain, in bounded memory (keyset pages)."""

from collections.abc import Callable

from events.canonical import GENESIS_HASH
from events.chain_check import ChainReport, ChainVerifier
from events.store import Connection, LogFilter, hashes_at, last_position_before, read_page

Progress = Callable[[int], None]


async def verify_log(conn: Connection, *, pinned: tuple[int, bytes] | None = None, page: int = 5000,
                     progress: Progress | None = None) -> ChainReport:
    """Recompute every hash from position 1; with ``pinned`` also prove the log at that position is unchanged."""
    verifier = ChainVerifier(pinned=pinned)
    after = 0
    while events := await read_page(conn, LogFilter(after=after), page):
        verifier.feed(events)
        after = events[-1].position
        if progress is not None:
            progress(after)
    return verifier.report()


async def verify_campaign(conn: Connection, campaign: str, *, pinned: tuple[int, bytes] | None = None,
                          page: int = 5000) -> ChainReport:
    """Check each event of one campaign: its own hash, and its link to the event before it in the log;
    with ``pinned``, also that the hash stored at that position is the pinned one."""
    checked, bad, last_position, last_hash = 0, None, 0, b""
    after = 0
    while events := await read_page(conn, LogFilter(after=after, campaign=campaign), page):
        previous = await hashes_at(conn, [e.position - 1 for e in events])
        for event in events:
            checked += 1
            expected_prev = previous.get(event.position - 1, GENESIS_HASH if event.position == 1 else None)
            if bad is None and (event.prev_hash != expected_prev or event.computed_hash() != event.hash):
                bad = event.position
                if expected_prev is None:  # the event before it is gone: the log breaks where that gap starts
                    bad = 1 + await last_position_before(conn, event.position)
        after = last_position = events[-1].position
        last_hash = events[-1].hash
    if pinned is not None and (await hashes_at(conn, [pinned[0]])).get(pinned[0]) != pinned[1]:
        bad = pinned[0] if bad is None else min(bad, pinned[0])
    return ChainReport(bad is None, checked, bad, last_position, last_hash)
