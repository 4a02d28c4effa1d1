"""The log is append-only in the database itself, and tampering behind its back shows in the chain."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from events.chain_check import verify_chain
from events.decide import Accepted
from events.writer import append_in_transaction
from tests.conftest import Database
from tests.factories import event
from tests.integration.appending import count_events, lifecycle, read_log, request

CHANGES = ("UPDATE events SET region = '330103' WHERE position = 2",
           "DELETE FROM events WHERE position = 2",
           "TRUNCATE events")


@pytest.fixture
async def three_events(admin_conn: asyncpg.Connection) -> int:
    """A log of campaign_opened and two facts, written as the CLI would (owner connection)."""
    requests = [lifecycle("campaign_opened", {"id": "2017", "theme": "质量月", "starts_on": "2017-09-01",
                                              "ends_on": "2017-09-30"}),
                request(event(), event("publicity_held"))]
    outcomes, head = await append_in_transaction(admin_conn, requests, datetime.now(UTC))
    assert all(isinstance(o, Accepted) for o in outcomes)
    return head


@pytest.fixture
async def service_conn(database: Database) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.service_url)
    yield conn
    await conn.close()


async def test_the_triggers_refuse_changes_even_to_the_superuser(
        admin_conn: asyncpg.Connection, three_events: int) -> None:
    assert await admin_conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    before = [e.hash for e in await read_log(admin_conn)]
    for sql in CHANGES:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="the event log is append-only"):
            await admin_conn.execute(sql)
    assert [e.hash for e in await read_log(admin_conn)] == before
    assert await count_events(admin_conn) == three_events == 3


async def test_the_service_role_has_no_privilege_to_change_events(
        service_conn: asyncpg.Connection, three_events: int) -> None:
    for sql in CHANGES:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for table events"):
            await service_conn.execute(sql)
    assert await count_events(service_conn) == 3


async def test_the_service_role_can_append_and_read(service_conn: asyncpg.Connection, three_events: int) -> None:
    sent = event("materials_distributed")
    (outcome,), head = await append_in_transaction(service_conn, [request(sent)], datetime.now(UTC))
    assert isinstance(outcome, Accepted)
    assert head == 4
    log = await read_log(service_conn)
    assert [e.position for e in log] == [1, 2, 3, 4]
    assert log[-1].event_id == sent["event_id"]
    assert verify_chain(log).ok


async def test_a_superuser_who_disables_the_triggers_leaves_a_broken_chain(
        admin_conn: asyncpg.Connection, service_conn: asyncpg.Connection, three_events: int) -> None:
    more = [request(event("pledge_signed")), request(event("lab_open_day_held"))]
    await append_in_transaction(service_conn, more, datetime.now(UTC))
    assert verify_chain(await read_log(service_conn)).ok

    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    changed = await admin_conn.execute(
        "UPDATE events SET data = jsonb_set(data, '{dens_busted}', '300') WHERE position = 2")
    await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    assert changed == "UPDATE 1"

    log = await read_log(service_conn)
    assert log[1].data["dens_busted"] == 300
    report = verify_chain(log)
    assert (report.ok, report.first_bad_position, report.checked) == (False, 2, 5)
