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

    def __init__(self, after_position: int = 0, after_hash: bytes = GENESIS_HASH) -> None:
        self._position = after_position
        self._hash = after_hash
        self._checked = 0
        self._bad: int | None = None

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        """Check the next events; positions must continue without a gap."""
        for event in events:
            self._checked += 1
            if self._bad is None and (
                event.position != self._position + 1
                or event.prev_hash != self._hash
                or event.computed_hash() != event.hash
            ):
                self._bad = event.position if event.position == self._position + 1 else self._position + 1
            self._position, self._hash = event.position, event.hash

    def report(self) -> ChainReport:
        """What has been checked so far."""
        return ChainReport(self._bad is None, self._checked, self._bad, self._position, self._hash)


def verify_chain(events: Iterable[RecordedEvent]) -> ChainReport:
    """Verify a whole log from position 1."""
    verifier = ChainVerifier()
    verifier.feed(events)
    return verifier.report()
