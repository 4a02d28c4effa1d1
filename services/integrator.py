"""The integrator: extends the Merkle tree from the log, stores full tiles, signs checkpoints.

One integrator is active at a time (its own advisory lock, like the projector); others wait as hot
standbys. It keeps the tree's right edge (``Frontier``) in memory; on taking the lead it restores it
from the stored tiles and reads the events after the last full level-0 tile again. Before signing a
checkpoint it checks a consistency proof from the previous checkpoint to the new tree: a log must
never sign a tree that does not extend what it signed before. A failed check stops signing loudly.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Final

import asyncpg
import structlog

from events.checkpoints import Checkpoint
from events.coordination import INTEGRATOR_LOCK, ping
from events.errors import StoreUnavailable
from events.merkle import verify_consistency
from events.notes import Signer
from events.store import UNAVAILABLE_ERRORS, Connection
from events.tiles import Frontier
from events.treestore import (
    StoredCheckpoint,
    TreeIncomplete,
    insert_checkpoint,
    insert_tiles,
    latest_checkpoint,
    prove_consistency,
    read_leaves,
    stored_leaf_count,
    upper_partials,
)
from services.leadership import FollowerMode, Setback, follow_as_leader

log = structlog.get_logger("qmstats.integrator")

class TreeInconsistent(Exception):
    """The tree built from the log does not extend the last signed checkpoint."""


_SETBACKS: Final = (
    Setback((TreeInconsistent,), "failed", "integrator refuses to sign: the tree does not extend the last checkpoint",
            str, level="error"),
    Setback((*UNAVAILABLE_ERRORS, StoreUnavailable, asyncpg.PostgresError, TreeIncomplete), "degraded",
            "integrator lost its footing; starting over", lambda exc: f"{exc.__class__.__name__}: {exc}"),
)


@dataclass
class IntegratorState:
    """What this process's integrator is doing, for /readyz and the logs."""

    mode: FollowerMode = "off"
    size: int = 0
    signed_size: int | None = None
    error: str | None = None


class IntegratorWorker:
    """Runs the integrator when it holds the leader lock; waits as a standby otherwise."""

    def __init__(self, pool: asyncpg.Pool, leader_url: str, signer: Signer, *, batch_size: int = 5000,
                 interval_seconds: float = 0.5, poll_seconds: float = 1.0, standby_seconds: float = 1.0,
                 retry_seconds: float = 5.0, state: IntegratorState | None = None) -> None:
        self._pool = pool
        self._leader_url = leader_url
        self._signer = signer
        self._batch = batch_size
        self._interval = interval_seconds
        self._poll = poll_seconds
        self._standby = standby_seconds
        self._retry = retry_seconds
        self.state = state or IntegratorState()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New events were appended (a NOTIFY hint); look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: become leader when possible, then integrate. Returns, failed, on a standby."""
        await follow_as_leader(self._leader_url, INTEGRATOR_LOCK, name="integrator", lead=self._lead,
                               report=self._report, setbacks=_SETBACKS, standby_seconds=self._standby,
                               retry_seconds=self._retry, logger=log)

    def _report(self, mode: FollowerMode, error: str | None) -> None:
        self.state.mode = mode
        self.state.error = error

    async def _restore(self) -> tuple[Frontier, StoredCheckpoint | None]:
        async with self._pool.acquire() as conn:
            size = await stored_leaf_count(conn)
            frontier = Frontier.restore(size, await upper_partials(conn, size))
            return frontier, await latest_checkpoint(conn)

    async def _lead(self, leader: Connection) -> None:
        frontier, last = await self._restore()
        next_sign = 0.0
        signed_behind = False  # the last checkpoint was signed while more events waited to be read
        while True:
            if leader.is_closed():
                raise ConnectionError("leader connection closed")
            # Cleared before reading, not after: an append that notifies while this round reads or signs must
            # cut the wait below short. Cleared after, its wake-up was lost and its events waited a whole poll.
            self._wake.clear()
            async with self._pool.acquire() as conn:
                leaves = await read_leaves(conn, frontier.size, self._batch)
                if leaves:
                    await insert_tiles(conn, frontier.extend(leaves))
                    self.state.size = frontier.size
                behind = len(leaves) == self._batch
                due = (last is None or frontier.size > last.tree_size
                       or last.key_id != self._signer.verifier.key_id)
                # One checkpoint per interval while events arrive; but when the tree catches up with the log
                # after signing on the way, the head is signed at once rather than an interval after that
                # checkpoint of an older size (at most two checkpoints per interval).
                if due and (time.monotonic() >= next_sign or (signed_behind and not behind)):
                    last = await self._sign(conn, frontier, last)
                    next_sign = time.monotonic() + self._interval
                    signed_behind = behind
                    due = False
                elif not behind:
                    signed_behind = False
            if behind:
                continue
            if due:
                # A checkpoint is pending for next_sign, and the round that signs it reads every event appended
                # until then: an append meanwhile need not start a round of its own. (Woken by each one, the
                # integrator read, stored and pinged once per group commit: ~95 µs of CPU per event at 800
                # single-event POSTs/s, for a tree no one can see before it is signed.)
                await asyncio.sleep(max(0.0, next_sign - time.monotonic()))
            else:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races the
                # wake-up, and then SIGTERM leaves the integrator (and its process) running.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()
            await ping(leader)  # notice a dead leader connection promptly

    async def _sign(self, conn: Connection, frontier: Frontier, last: StoredCheckpoint | None) -> StoredCheckpoint:
        size, root = frontier.size, frontier.root()
        if last is not None:
            if last.tree_size > size:
                raise TreeInconsistent(f"a checkpoint of size {last.tree_size} exists but the log has {size} events")
            proof = await prove_consistency(conn, last.tree_size, size, known=frontier.partial_tiles())
            if not verify_consistency(last.tree_size, size, last.root, root, proof):
                raise TreeInconsistent(f"the tree of size {size} is not consistent with the checkpoint of size "
                                       f"{last.tree_size}: an event up to position {last.tree_size} changed")
        note = self._signer.sign(Checkpoint(self._signer.name, size, root).text())
        await insert_checkpoint(conn, size, self._signer.verifier.key_id, root, note, self._signer.verifier.vkey)
        self.state.signed_size = size
        stored = await latest_checkpoint(conn)
        assert stored is not None
        return stored
