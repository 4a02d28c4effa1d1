"""SIGTERM drains: requests in flight are answered, the group-commit queue is committed, nothing half-written."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from events.stored_chain import verify_log
from tests.conftest import Database, Keys
from tests.e2e.processes import PROBLEM, batches, open_campaign, qmstats_children

CLIENTS = 24


@pytest.mark.slow
async def test_sigterm_under_a_flood_drops_nothing_accepted(database: Database, keys: Keys, tmp_path: Path,
                                                            admin_conn: asyncpg.Connection) -> None:
    work = batches(3000, seed=20170930)
    answered: list[tuple[list[dict[str, Any]], int, str, str]] = []
    answered_at: list[float] = []
    flooding = asyncio.Event()  # set once enough answers have come back to be well into the load
    unanswered: list[list[dict[str, Any]]] = []
    stop_sending = asyncio.Event()

    async def flood(api_url: str, mine: list[list[dict[str, Any]]]) -> None:
        # Each batch is sent once: a client that gets no answer does not know whether it was stored.
        async with aiohttp.ClientSession() as session:
            for batch in mine:
                if stop_sending.is_set():
                    return
                try:
                    async with session.post(api_url + "/v1/events", json={"events": batch}, headers=keys.reporter,
                                            timeout=aiohttp.ClientTimeout(total=30)) as response:
                        answered.append((batch, response.status, response.content_type, await response.text()))
                        answered_at.append(time.monotonic())
                        if len(answered) >= 150:
                            flooding.set()
                except (aiohttp.ClientError, TimeoutError):
                    unanswered.append(batch)
                    await asyncio.sleep(0.01)

    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve()
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        tasks = [asyncio.create_task(flood(api.url, work[i::CLIENTS])) for i in range(CLIENTS)]
        try:
            await asyncio.wait_for(flooding.wait(), timeout=60)
            sent_sigterm = time.monotonic()
            code = await api.terminate(seconds=20)
            exited_after = time.monotonic() - sent_sigterm
            stop_sending.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        finally:
            stop_sending.set()
            for task in tasks:
                task.cancel()
    assert code == 0, api.tail()

    stored = {r["id"]: r["position"] for r in await admin_conn.fetch(
        "SELECT event_id::text AS id, position FROM events WHERE type NOT LIKE 'campaign_%'")}
    acknowledged = 0
    for batch, status, ctype, text in answered:
        ids = [e["event_id"] for e in batch]
        if status in (200, 201):
            # Every 2xx is stored, at the position it was acknowledged with.
            acknowledged += len(batch)
            assert [(r["event_id"], r["position"]) for r in json.loads(text)["results"]] == [
                (i, stored.get(i)) for i in ids]
        else:
            # The only other answer is a clean 503 (the writer no longer takes work), and nothing of it was stored.
            assert (status, ctype) == (503, PROBLEM), (status, text)
            assert json.loads(text)["type"] == "urn:qmstats:problem:unavailable"
            assert not set(ids) & set(stored)
    for batch in unanswered:
        # A batch whose connection was cut is stored whole or not at all, never in part.
        assert len({e["event_id"] for e in batch} & set(stored)) in (0, len(batch))
    # Nothing was stored that nobody sent, and the chain is whole.
    sent = {e["event_id"] for batch in work for e in batch}
    assert set(stored) <= sent
    report = await verify_log(admin_conn)
    assert (report.ok, report.checked) == (True, len(stored) + 1)
    assert exited_after < 15
    # Requests in flight when SIGTERM arrived were answered (and, above, stored) rather than dropped.
    drained = sum(1 for at, (_, status, _, _) in zip(answered_at, answered, strict=True)
                  if at > sent_sigterm and status in (200, 201))
    assert drained > 0
    print(f"\nshutdown: SIGTERM after {len(answered) - drained} answers, {drained} requests answered after it, "
          f"exited {code} in {exited_after:.2f} s; {acknowledged} events acknowledged, all stored "
          f"({len(stored)} in the log); "
          f"statuses {sorted({s for _, s, _, _ in answered})}; {len(unanswered)} requests cut off")
