"""Hash-chain verification over a sequence of recorded events. Pure."""

from collections.abc import Iterable
from dataclasses import dataclass

from events.canonical import GENESIS_HASH
from events.records import RecordedEvent


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of verifying a run of the log: ok, how many were checked, the first broken position."""

    ok: bool
    checked: int
    first_bad_position: int | None
    last_position: int
    last_hash: bytes


class ChainVerifier:
    """Feed events in position order; it recomputes each hash and remembers the first broken link."""

    def __init__(self, after_position: int = 0, after_hash: bytes = GENESIS_HASH,
                 pinned: tuple[int, bytes] | None = None, gaps_allowed: bool = False) -> None:
        self._position = after_position
        self._hash = after_hash
        self._checked = 0
        self._bad: int | None = None
        self._pinned = pinned
        self.pinned_seen = pinned is None
        # A filtered export skips positions: then each event is checked against its own prev_hash,
        # and the link to the previous event only where positions are consecutive.
        self._gaps_allowed = gaps_allowed
        self.gaps = 0

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        """Check the next events; positions must continue without a gap."""
        for event in events:
            self._checked += 1
            gap = event.position != self._position + 1
            if gap and self._gaps_allowed and event.position > self._position:
                self.gaps += 1
                linked = True
            else:
                linked = not gap and event.prev_hash == self._hash
            if self._bad is None and (not linked or event.computed_hash() != event.hash):
                self._bad = event.position if event.position == self._position + 1 else self._position + 1
            if self._pinned is not None and event.position == self._pinned[0]:
                # A pinned head: the log up to here must hash to what the auditor recorded earlier.
                self.pinned_seen = True
                if self._bad is None and event.hash != self._pinned[1]:
                    self._bad = event.position
            self._position, self._hash = event.position, event.hash

    def report(self) -> ChainReport:
        """What has been checked so far (a pinned position never reached counts as broken there)."""
        bad = self._bad
        if bad is None and not self.pinned_seen and self._pinned is not None:
            bad = self._pinned[0]
        return ChainReport(bad is None, self._checked, bad, self._position, self._hash)


def verify_chain(events: Iterable[RecordedEvent]) -> ChainReport:
    """Verify a whole log from position 1."""
    verifier = ChainVerifier()
    verifier.feed(events)
    return verifier.report()
