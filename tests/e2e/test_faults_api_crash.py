"""SIGKILL `qmstats serve` again and again under load: what it acknowledged is in the log exactly once."""

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Database, Keys
from tests.e2e.processes import (
    Ledger,
    assert_figures,
    batches,
    caught_up_dashboard,
    open_campaign,
    qmstats_children,
    reporters,
    stored_positions,
    wait_for_acks,
)

KILLS = 4
CLIENTS = 8


@pytest.mark.slow
async def test_acknowledged_events_survive_repeated_sigkills_of_the_api(database: Database, keys: Keys,
                                                                         tmp_path: Path) -> None:
    work = batches(200, seed=20170908)
    total = sum(len(b) for b in work)
    ledger = Ledger()
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children:
        api = children.serve()
        await api.start_listening()
        await open_campaign(api.url, keys.admin)
        pids = [api.pid]
        async with reporters(api.url, keys.reporter, work, ledger, clients=CLIENTS) as tasks:
            for kill in range(1, KILLS + 1):
                # Kill while every client has a request in flight, a little further into the load each time.
                await wait_for_acks(ledger, total * kill // (KILLS + 1), tasks)
                await api.kill()
                await asyncio.sleep(0.3)  # the clients meanwhile hit a closed port and keep retrying
                await api.start_listening()
                pids.append(api.pid)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)

        # Every client's retries converged on 200/201; nothing but clean 503s and refused connections on the way.
        assert ledger.server_errors == []
        assert set(ledger.statuses) <= {200, 201, 503}, ledger.statuses
        assert len(set(pids)) == KILLS + 1
        assert ledger.connection_errors > 0  # the kills really hit requests

        # Every acknowledged event is in the log exactly once, at the position it was acknowledged with.
        stored = await stored_positions(database.admin_url)
        assert len(ledger.acknowledged) == total
        assert set(stored) == set(ledger.acknowledged)
        assert {event_id: positions for event_id, positions in stored.items() if len(positions) != 1} == {}
        assert {event_id: positions[0] for event_id, positions in stored.items()} == ledger.positions

        async with aiohttp.ClientSession() as session:
            async with session.get(api.url + "/v1/audit/verify", headers=keys.auditor) as response:
                chain = await response.json()
            assert (chain["ok"], chain["checked"], chain["first_bad_position"]) == (True, total + 1, None)

            # The figures equal an independent sum of what was acknowledged, nationally and by prefecture …
            for region in ("000000", "330000"):
                assert_figures(await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor, region=region),
                               ledger.facts())
            # … and a rebuild from position 0 gives exactly the live figures.
            code, out, err = await children.run("rebuild")
            assert code == 0, out + err
            assert "identical" in out
            assert_figures(await caught_up_dashboard(session, api.url, keys.viewer, keys.auditor), ledger.facts())
        print(f"\nAPI crash: {KILLS} SIGKILLs survived; {len(ledger.acknowledged)} events acknowledged, "
              f"{len(stored)} stored; statuses {dict(ledger.statuses)}; "
              f"{ledger.connection_errors} refused/broken connections retried")
