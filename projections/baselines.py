"""The flags projector's baselines kept in memory between batches (issue 15). Pure, no I/O.

Reading every baseline a batch touches from ``quality_facts`` cost the flags projector more than scoring
the batch. The memory holds, per key, a suffix of the key's current facts (one entry per fact: its position,
values and, in a pool, region) in position order — exactly what the table would give for it — and the fold
updates it in place, so a batch reads only the keys it has not met before (none at all when the projection
starts from position 0, where every quality table is empty).

A suffix stays a suffix whatever the fold does (appends come last; a withdrawn fact leaves wherever it is),
so a held list gives the table's baseline as long as it still has a window's worth of facts; the store
re-reads a cut list that a batch's withdrawals could shorten below that. The memory is valid only at the
checkpoint it was settled at: a failed batch (the fold already changed it), a rebuild or another projector
moving the checkpoint discards it. Bounded: a list keeps at most its window plus some slack, and the least
recently used keys leave when too many entries are held.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Generic, TypeVar

from projections.quality import QualityState, Values, own_window, peer_window

SLACK: Final = 16
"""Entries kept beyond a window after a cut: the withdrawals a batch may make in one key without a re-read."""
MAX_ENTRIES: Final = 200_000
"""Entries held in all lists together before the least recently used half of the keys is dropped (a fact is one
entry in each of its up to three lists, sharing one values dict: ~270 B an entry, so ~55 MB at most; the
per-metric lists this replaced held 400,000 values, about 133,000 facts' worth per kind of list)."""

K = TypeVar("K", bound=tuple[str, ...])
V = TypeVar("V")


@dataclass(slots=True)
class HeldLists(Generic[K, V]):
    """One kind of baseline list (own, peers or national): key → a suffix of its entries in position order."""

    window: int
    lists: dict[K, list[V]] = field(default_factory=dict)
    cut: set[K] = field(default_factory=set)
    """Keys whose list may lack older values the table has (read up to its limit, or trimmed)."""
    touched: list[K] = field(default_factory=list)
    """Keys the current batch uses."""

    def needs(self, key: K, withdrawals: int, *, complete: bool) -> bool:
        """Whether ``key`` must be read from the table before a batch that may withdraw ``withdrawals`` of it."""
        held = self.lists.get(key)
        if held is None:
            return not complete
        return key in self.cut and len(held) < self.window + withdrawals

    def read(self, key: K, values: list[V], limit: int) -> None:
        """Hold what the table gave for ``key`` (in position order; ``limit`` was the read's limit)."""
        self.lists[key] = values
        if len(values) >= limit:
            self.cut.add(key)
        else:
            self.cut.discard(key)

    def settle(self) -> None:
        """Trim the lists the batch touched and move them to the back (the front is the least recently used)."""
        for key in self.touched:
            held = self.lists.pop(key, None)
            if held is None:
                continue
            if len(held) > self.window + 2 * SLACK:
                del held[:len(held) - self.window - SLACK]
                self.cut.add(key)
            self.lists[key] = held
        self.touched.clear()

    def size(self) -> int:
        """Entries held."""
        return sum(map(len, self.lists.values()))

    def drop_oldest_half(self) -> None:
        """Forget the least recently used half of the keys."""
        for key in list(self.lists)[:len(self.lists) // 2]:
            del self.lists[key]
            self.cut.discard(key)

    def clear(self) -> None:
        """Forget everything."""
        self.lists.clear()
        self.cut.clear()
        self.touched.clear()


def _own() -> "HeldLists[tuple[str, str], tuple[int, Values]]":
    return HeldLists(own_window())


def _pool() -> "HeldLists[tuple[str, str, str], tuple[int, str, Values]]":
    return HeldLists(peer_window())


def _nation() -> "HeldLists[tuple[str, str], tuple[int, str, Values]]":
    return HeldLists(peer_window())


@dataclass(slots=True)
class BaselineMemory:
    """Baselines and relation sums as of ``position`` (None: not valid; the next batch starts afresh)."""

    max_entries: int = MAX_ENTRIES
    position: int | None = None
    complete: bool = False
    """Every key absent from the lists has no values at all (started from an empty projection, nothing dropped)."""
    history: HeldLists[tuple[str, str], tuple[int, Values]] = field(default_factory=_own)
    """(region, type) → (position, values)"""
    peers: HeldLists[tuple[str, str, str], tuple[int, str, Values]] = field(default_factory=_pool)
    """(campaign, parent, type) → (position, region, values)"""
    national: HeldLists[tuple[str, str], tuple[int, str, Values]] = field(default_factory=_nation)
    """(campaign, type) → (position, region, values)"""
    sums: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    open_relations: dict[str, bool] = field(default_factory=dict)
    provinces: set[tuple[str, str]] = field(default_factory=set)
    """(campaign, province) whose sums and relation flag are held."""

    def valid_at(self, position: int) -> bool:
        """Whether the memory reflects the projection at ``position``."""
        return self.position == position

    def start(self, position: int, *, empty: bool) -> None:
        """Forget everything: the projection is at ``position`` (``empty``: its tables hold nothing yet)."""
        self.position = position
        self.complete = empty
        self.history.clear()
        self.peers.clear()
        self.national.clear()
        self.sums.clear()
        self.open_relations.clear()
        self.provinces.clear()

    def state(self) -> QualityState:
        """A fold state whose baselines and sums are this memory's (the fold updates them in place)."""
        self.position = None  # until settled: a batch that fails half-way leaves the memory changed
        return QualityState(history=self.history.lists, peers=self.peers.lists, national=self.national.lists,
                            sums=self.sums, open_relations=self.open_relations)

    def settle(self, position: int) -> None:
        """The batch is committed: trim what it touched, drop the least recently used keys, valid at ``position``."""
        for held in (self.history, self.peers, self.national):
            held.settle()
        if self.history.size() + self.peers.size() + self.national.size() > self.max_entries:
            self.complete = False  # a dropped key is absent but has values in the table
            for held in (self.history, self.peers, self.national):
                held.drop_oldest_half()
        self.position = position
