"""Reads from a real streaming replica (pg_basebackup -R -X stream of the test server, its own postmaster).

The app under test writes, keeps keys and projects on the primary and reads from the replica. Staleness is
made reproducible with the standby's ``recovery_min_apply_delay``.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.app import create_app
from tests.conftest import Database, Keys, Replica
from tests.conftest import test_settings as settings_for
from tests.e2e.test_log_proofs import signed_checkpoint
from tests.e2e.test_stream import next_message
from tests.factories import CAMPAIGN, event
from tests.projection_support import post_events, settled

pytestmark = pytest.mark.usefixtures("campaign")
C = CAMPAIGN["id"]


@pytest.fixture
async def on_replica(database: Database, replica: Replica, campaign: dict[str, str]) -> AsyncIterator[TestClient]:
    """An app whose reads go to the replica (its projector, writer and keys use the primary), opened campaign
    replayed there (a replica answers what it has replayed: without min_position, a campaign opened a moment
    ago may still be unknown to it)."""
    await replica.standby.caught_up()
    app = create_app(settings_for(replica_urls=[replica.service_url]), database.service_url)
    async with TestClient(TestServer(app)) as client:
        yield client


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of the Prometheus exposition ``text``."""
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name}{labels} not in /metrics"
    return float(match.group(1))


async def reads_from(client: TestClient) -> dict[str, float]:
    """How many snapshot reads this app answered from the replica and from the primary so far."""
    text = await (await client.get("/metrics")).text()
    return {source: metric(text, "qmstats_reads_total", f'{{source="{source}"}}') if
            f'qmstats_reads_total{{source="{source}"}}' in text else 0.0 for source in ("replica", "primary")}


async def dashboard(client: TestClient, headers: dict[str, str], query: str = "") -> tuple[int, dict[str, Any]]:
    response = await client.get(f"/v1/campaigns/{C}/dashboard{query}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    assert int(response.headers["X-Qmstats-Position"]) == body["position"]
    return body["position"], body


async def test_figures_read_from_the_replica_equal_the_primarys_once_caught_up(
        client: TestClient, on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    head = await post_events(client, keys.admin, [event(region=r) for r in ("330102", "110101", "440103")])
    primary_body = await settled(client, keys.viewer, head)
    await replica.standby.caught_up()
    before = await reads_from(on_replica)
    for path in (f"/v1/campaigns/{C}/dashboard", f"/v1/campaigns/{C}/dashboard?region=330000",
                 f"/v1/campaigns/{C}/series?metric=personnel", f"/v1/campaigns/{C}/completeness?date=2017-09-08"):
        # The primary-only app and the replica app answer byte-equal figures.
        mine = await on_replica.get(path, headers=keys.viewer)
        theirs = await client.get(path, headers=keys.viewer)
        assert (mine.status, theirs.status) == (200, 200)
        drop = ("updated_at", "lag_seconds")
        assert ({k: v for k, v in (await mine.json()).items() if k not in drop}
                == {k: v for k, v in (await theirs.json()).items() if k not in drop}), path
        assert mine.headers["X-Qmstats-Position"] == str(head)
    after = await reads_from(on_replica)
    assert after["replica"] >= before["replica"] + 4
    assert primary_body["metrics"]["dens_busted"]["value"] == 9


async def test_min_position_after_a_post_shows_the_event_despite_a_1_5_s_apply_delay(
        client: TestClient, on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    first = await post_events(client, keys.admin, [event()])
    await settled(client, keys.viewer, first)
    await replica.standby.caught_up()
    await asyncio.sleep(0.5)  # the monitor has seen the replica catch up
    await replica.standby.set_apply_delay(1.5)
    last = await post_events(client, keys.admin, [event(region="110101")])
    # Without min_position the replica answers what it has: one event behind (its apply is delayed).
    stale, body = await dashboard(on_replica, keys.viewer)
    assert stale < last
    assert "110000" not in {c["code"] for c in body["children"] if c["metrics"].get("dens_busted")}
    # With it, never older than asked: the replica waits up to 1 s, then the primary answers.
    fresh, body = await dashboard(on_replica, keys.viewer, f"?min_position={last}")
    assert fresh >= last
    assert body["metrics"]["dens_busted"]["value"] == 6
    text = await (await on_replica.get("/metrics")).text()
    assert metric(text, "qmstats_replica_fallbacks_total") >= 1
    # The log read the same way.
    response = await on_replica.get(f"/v1/events?after={last - 1}&min_position={last}", headers=keys.auditor)
    assert response.status == 200
    assert [e["position"] for e in (await response.json())["events"]] == [last]
    assert int(response.headers["X-Qmstats-Position"]) >= last


async def test_a_stopped_replica_means_reads_from_the_primary_and_writes_as_usual(
        on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    head = await post_events(on_replica, keys.admin, [event()])
    await settled(on_replica, keys.viewer, head)
    replica.standby.stop()
    for _ in range(3):  # pooled connections to the lost replica are found dead, then it is skipped
        position, body = await dashboard(on_replica, keys.viewer, f"?min_position={head}")
        assert position >= head
    later = await post_events(on_replica, keys.admin, [event(region="110101")])
    assert later == head + 1
    position, body = await dashboard(on_replica, keys.viewer, f"?min_position={later}")
    assert body["metrics"]["dens_busted"]["value"] == 6
    response = await on_replica.get(f"/v1/events?min_position={later}", headers=keys.auditor)
    assert response.status == 200
    assert [e["position"] for e in (await response.json())["events"]] == list(range(1, later + 1))
    ready = await on_replica.get("/readyz")
    assert ready.status == 200
    states = (await ready.json())["replicas"]
    assert list(states.values()) != ["ok"]
    text = await (await on_replica.get("/metrics")).text()
    assert metric(text, "qmstats_replica_in_use", f'{{replica="{next(iter(states))}"}}') == 0.0


async def test_metrics_and_readyz_show_the_replica_and_its_lag(
        client: TestClient, on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    await replica.standby.caught_up()
    await asyncio.sleep(0.5)
    body = await (await on_replica.get("/readyz")).json()
    assert list(body["replicas"].values()) == ["ok"]
    name = next(iter(body["replicas"]))
    await replica.standby.set_apply_delay(2.0)
    head = await post_events(client, keys.admin, [event()])
    await settled(client, keys.viewer, head)
    await asyncio.sleep(0.8)
    text = await (await on_replica.get("/metrics")).text()
    labels = f'{{replica="{name}"}}'
    assert metric(text, "qmstats_replica_lag_positions", labels) >= 1
    assert metric(text, "qmstats_replica_lag_seconds", labels) > 0.3
    assert metric(text, "qmstats_replica_in_use", labels) == 1.0  # 2 s is within the 5 s bound
    await replica.standby.set_apply_delay(0)
    await replica.standby.caught_up()
    await asyncio.sleep(0.5)
    text = await (await on_replica.get("/metrics")).text()
    assert metric(text, "qmstats_replica_lag_positions", labels) == 0
    assert metric(text, "qmstats_replica_projection_position", labels) == head


async def test_a_replica_lagging_past_the_bound_is_skipped(
        client: TestClient, database: Database, replica: Replica, keys: Keys) -> None:
    app = create_app(settings_for(replica_urls=[replica.service_url], replica_max_lag_seconds=0.3),
                     database.service_url)
    async with TestClient(TestServer(app)) as lagging:
        await replica.standby.set_apply_delay(3.0)
        head = await post_events(client, keys.admin, [event()])
        await settled(client, keys.viewer, head)
        await asyncio.sleep(1.0)
        states = (await (await lagging.get("/readyz")).json())["replicas"]
        assert "lagging" in next(iter(states.values()))
        before = await reads_from(lagging)
        position, _ = await dashboard(lagging, keys.viewer)  # no min_position, yet not stale: the primary answered
        assert position == head
        after = await reads_from(lagging)
        assert (after["primary"] - before["primary"], after["replica"] - before["replica"]) == (1, 0)


async def test_every_read_route_carries_the_position_it_reflects(on_replica: TestClient, replica: Replica,
                                                                 keys: Keys) -> None:
    e = event()
    head = await post_events(on_replica, keys.admin, [e])
    await settled(on_replica, keys.viewer, head)
    await replica.standby.caught_up()
    routes = [
        (keys.viewer, f"/v1/campaigns/{C}/dashboard"), (keys.viewer, f"/v1/campaigns/{C}/series?metric=cases"),
        (keys.viewer, f"/v1/campaigns/{C}/completeness"), (keys.viewer, f"/v1/campaigns/{C}/summary"),
        (keys.viewer, f"/v1/campaigns/{C}/summary?format=csv"), (keys.auditor, "/v1/events"),
        (keys.auditor, f"/v1/events/{e['event_id']}"), (keys.auditor, "/v1/audit/verify"),
        (keys.auditor, "/v1/audit/head"), (keys.auditor, f"/v1/campaigns/{C}/figures/cases/events"),
        (keys.viewer, "/v1/campaigns"), (keys.viewer, f"/v1/campaigns/{C}"), (keys.viewer, "/v1/regions"),
    ]
    for headers, path in routes:
        for query in ("", f"{'&' if '?' in path else '?'}min_position={head}"):
            response = await on_replica.get(path + query, headers=headers)
            assert response.status == 200, (path, await response.text())
            assert int(response.headers["X-Qmstats-Position"]) >= head, path
    # The flags answer says how far the flags projection got (its own checkpoint); min_position waits for it.
    for query in (f"?min_position={head}", ""):
        response = await on_replica.get(f"/v1/campaigns/{C}/flags{query}", headers=keys.viewer)
        assert response.status == 200, await response.text()
        assert int(response.headers["X-Qmstats-Position"]) == (await response.json())["position"] >= head
    at = await on_replica.get(f"/v1/campaigns/{C}/dashboard?at_position=1", headers=keys.auditor)
    assert (at.status, at.headers["X-Qmstats-Position"]) == (200, "1")
    ndjson = await on_replica.get("/v1/events", headers={**keys.auditor, "Accept": "application/x-ndjson"})
    assert int(ndjson.headers["X-Qmstats-Position"]) == head
    assert len((await ndjson.text()).splitlines()) == head


async def test_the_verifiable_log_routes_read_like_every_other_read_route(
        client: TestClient, on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    # Checkpoint, key, tiles and proofs (issue 16) came after the replicas: they too take min_position, say the
    # position they reflect, and read from a replica in use.
    e = event()
    head = await post_events(client, keys.admin, [e])
    await settled(client, keys.viewer, head)
    await signed_checkpoint(client, keys, head)
    await replica.standby.caught_up()
    await asyncio.sleep(0.5)  # the monitor has seen the replica catch up
    before = await reads_from(on_replica)
    paths = ["/v1/log/checkpoint", "/v1/log/key", f"/v1/log/tile/0/000.p/{head}", f"/v1/events/{e['event_id']}/proof",
             "/v1/log/consistency?from=1"]
    for path in paths:
        for query in ("", f"{'&' if '?' in path else '?'}min_position={head}"):
            response = await on_replica.get(path + query, headers=keys.auditor)
            assert response.status == 200, (path, await response.text())
            assert int(response.headers["X-Qmstats-Position"]) >= head, path
        beyond = await on_replica.get(path + f"{'&' if '?' in path else '?'}min_position={head + 99}",
                                      headers=keys.auditor)
        assert beyond.status == 422, path
    after = await reads_from(on_replica)
    assert after["replica"] >= before["replica"] + 2 * len(paths)


async def test_min_position_beyond_the_log_is_422_and_a_malformed_one_too(on_replica: TestClient,
                                                                          keys: Keys) -> None:
    for query, needle in (("?min_position=999", "beyond"), ("?min_position=x", "integer"),
                          ("?min_position=-1", "between")):
        response = await on_replica.get(f"/v1/campaigns/{C}/dashboard{query}", headers=keys.viewer)
        assert response.status == 422, query
        assert needle in (await response.json())["detail"]
    response = await on_replica.get("/v1/events?min_position=999", headers=keys.auditor)
    assert response.status == 422


async def test_the_stream_on_a_replica_follows_the_replicated_checkpoint_and_resumes(
        client: TestClient, on_replica: TestClient, replica: Replica, keys: Keys) -> None:
    await replica.standby.caught_up()
    await asyncio.sleep(0.5)
    stream = await on_replica.get("/v1/stream", headers=keys.viewer)
    assert stream.status == 200
    try:
        first = await next_message(stream)
        assert first["id"] == "1"
        await replica.standby.set_apply_delay(1.0)
        head = await post_events(client, keys.admin, [event()])
        await settled(client, keys.viewer, head)
        message = await next_message(stream, within=5)
        assert int(message["id"]) == head == message["data"]["position"]
        # It came from the replica's checkpoint: a read there now shows that position without waiting.
        position, _ = await dashboard(on_replica, keys.viewer)
        assert position >= head
    finally:
        stream.close()
    await replica.standby.set_apply_delay(0)
    resumed = await on_replica.get("/v1/stream", headers={**keys.viewer, "Last-Event-ID": str(head)})
    try:
        with pytest.raises(TimeoutError):
            await next_message(resumed, within=0.8)  # nothing missed, nothing repeated
        later = await post_events(client, keys.admin, [event()])
        message = await next_message(resumed, within=5)
        assert int(message["id"]) == later
    finally:
        resumed.close()


async def test_min_position_the_primary_projection_has_not_reached_is_503_never_an_older_answer(
        client: TestClient, admin_conn: asyncpg.Connection, keys: Keys) -> None:
    await settled(client, keys.viewer, 1)
    async with admin_conn.transaction():
        # Hold the checkpoint row: the projector cannot commit its next batch until this transaction ends.
        await admin_conn.execute("SELECT 1 FROM projection_checkpoints FOR UPDATE")
        head = await post_events(client, keys.admin, [event()])
        response = await client.get(f"/v1/campaigns/{C}/dashboard?min_position={head}", headers=keys.viewer)
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert f"not yet min_position {head}" in (await response.json())["detail"]
        # The log itself has the event: a log read with the same min_position answers.
        response = await client.get(f"/v1/events?min_position={head}", headers=keys.auditor)
        assert response.status == 200
        assert response.headers["X-Qmstats-Position"] == str(head)
    position, _ = await dashboard(client, keys.viewer, f"?min_position={head}")
    assert position == head
