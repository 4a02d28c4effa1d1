"""A group decided without the append lock: another group appended in between either leaves its decisions
standing (its events move after it, chained again from the new head) or is noticed, and the group is decided
again under the lock with exactly today's answers."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

import events.writer
from events.chain_check import verify_chain
from events.decide import Accepted, AppendRequest
from events.errors import CampaignClosedError, EventIdConflict, KeyRevoked, ValidationFailed
from events.key_store import insert_key, revoke_key
from events.region_store import import_region_list
from events.store import Connection, append_decided
from events.writer import append_group
from tests.factories import CAMPAIGN, correction, event, retraction
from tests.integration.appending import lifecycle, read_log, request

Meanwhile = Callable[[Connection], Awaitable[Any]]


class Interleaved:
    """Runs ``append_group`` on one connection, with ``meanwhile`` run on another one after the group was
    decided and before it is appended; counts the groups decided again under the lock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, conn: Connection, other: Connection) -> None:
        self._monkeypatch = monkeypatch
        self._conn = conn
        self._other = other
        self.decided_again = 0
        real = events.writer._decide_holding_the_lock

        async def counted(*args: Any) -> Any:
            self.decided_again += 1
            return await real(*args)

        monkeypatch.setattr(events.writer, "_decide_holding_the_lock", counted)

    async def append(self, requests: list[AppendRequest], meanwhile: Meanwhile) -> tuple[list[Any], int]:
        async def after_meanwhile(*args: Any) -> int | None:
            self._monkeypatch.setattr(events.writer, "append_decided", append_decided)
            await meanwhile(self._other)
            return await append_decided(*args)

        self._monkeypatch.setattr(events.writer, "append_decided", after_meanwhile)
        return await append_group(self._conn, requests, datetime.now(UTC))


async def appended(conn: Connection, *requests: AppendRequest) -> list[Any]:
    outcomes, _ = await append_group(conn, list(requests), datetime.now(UTC))
    return outcomes


@pytest.fixture
async def interleaved(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> Any:
    async with pool.acquire() as conn, pool.acquire() as other:
        assert await appended(conn, lifecycle("campaign_opened", CAMPAIGN)) != []
        yield Interleaved(monkeypatch, conn, other)


async def assert_log_is_one_chain(pool: asyncpg.Pool, total: int) -> list[Any]:
    async with pool.acquire() as conn:
        log = await read_log(conn)
    assert [e.position for e in log] == list(range(1, total + 1))
    report = verify_chain(log)
    assert (report.ok, report.checked, report.first_bad_position) == (True, total, None)
    return log


async def test_a_group_moves_after_what_was_appended_meanwhile_and_is_chained_again(
        interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    stored = event("publicity_held")
    async with pool.acquire() as conn:
        assert await appended(conn, request(stored)) != []  # position 2
    retry_and_new, fresh, batch = event(), event("pledge_signed"), [event("media_reported"), event("brand_awarded")]
    others = [event("materials_distributed"), event("lab_open_day_held"), event("goods_destroyed")]

    async def three_others(other: Connection) -> None:
        assert await appended(other, request(others[0]), request(others[1], others[2])) != []  # 3, 4, 5

    outcomes, head = await interleaved.append(
        [request(stored, retry_and_new), request(fresh), request(*batch)], three_others)

    assert interleaved.decided_again == 0, "nothing appended meanwhile touches the group: its decisions stand"
    assert all(isinstance(o, Accepted) for o in outcomes)
    # Decided at head 2 as 3..6, stored after the three others: created positions move by 3, the duplicate's
    # stored position does not.
    assert [[(r.status, r.position) for r in o.results] for o in outcomes] == [
        [("duplicate", 2), ("created", 6)], [("created", 7)], [("created", 8), ("created", 9)]]
    assert head == 9
    log = await assert_log_is_one_chain(pool, 9)
    assert [e.event_id for e in log[1:]] == [
        e["event_id"] for e in (stored, *others, retry_and_new, fresh, *batch)]


async def test_a_group_appended_after_an_unmoved_head_keeps_its_positions(
        interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    async def nothing(_: Connection) -> None:
        return None

    outcomes, head = await interleaved.append([request(event()), request(event(), event())], nothing)
    assert [[r.position for r in o.results] for o in outcomes] == [[2], [3, 4]]
    assert (head, interleaved.decided_again) == (4, 0)
    await assert_log_is_one_chain(pool, 4)


async def test_the_same_event_appended_meanwhile_is_answered_as_a_duplicate(
        interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    retried = event()

    async def the_retry_elsewhere(other: Connection) -> None:
        assert await appended(other, request(retried)) != []  # position 2

    (outcome,), head = await interleaved.append([request(retried)], the_retry_elsewhere)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, Accepted)
    assert [(r.status, r.position) for r in outcome.results] == [("duplicate", 2)]
    assert head == 2
    await assert_log_is_one_chain(pool, 2)


async def test_the_same_event_id_with_other_content_appended_meanwhile_is_a_conflict(
        interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    sent = event()

    async def other_content(other: Connection) -> None:
        assert await appended(other, request(sent | {"region": "330103"})) != []

    (outcome, fine), _ = await interleaved.append([request(sent), request(event())], other_content)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, EventIdConflict)
    assert isinstance(fine, Accepted)
    assert [r.position for r in fine.results] == [3]
    await assert_log_is_one_chain(pool, 3)


async def test_a_campaign_closed_meanwhile_refuses_the_group(interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    async def close(other: Connection) -> None:
        assert await appended(other, lifecycle("campaign_closed", {"id": CAMPAIGN["id"]})) != []

    (outcome,), head = await interleaved.append([request(event())], close)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, CampaignClosedError)
    assert head == 2
    await assert_log_is_one_chain(pool, 2)


async def test_a_target_retracted_meanwhile_cannot_be_corrected(interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    original = event()
    async with pool.acquire() as conn:
        assert await appended(conn, request(original)) != []  # position 2

    async def retract(other: Connection) -> None:
        assert await appended(other, request(retraction(original["event_id"]))) != []  # position 3

    fix = correction(original["event_id"], {**original["data"], "cases": 3})
    (outcome,), _ = await interleaved.append([request(fix)], retract)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, ValidationFailed)
    assert [e.msg for e in outcome.errors] == [f"event {original['event_id']} has been retracted"]
    await assert_log_is_one_chain(pool, 3)


async def test_a_key_revoked_meanwhile_appends_nothing(
        interleaved: Interleaved, admin_conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    sender = request(event())
    await insert_key(admin_conn, key_id=sender.actor.key_id, name="reporter", role="reporter", region="330000",
                     token_hash=b"\x01" * 32)

    async def revoke(_: Connection) -> None:
        assert await revoke_key(admin_conn, sender.actor.key_id)

    (outcome,), head = await interleaved.append([sender], revoke)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, KeyRevoked)
    assert head == 1
    await assert_log_is_one_chain(pool, 1)


async def test_a_region_list_imported_meanwhile_refuses_a_code_it_does_not_hold(
        interleaved: Interleaved, admin_conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    unlisted = event(region="330199")

    async def import_a_list(_: Connection) -> None:
        await import_region_list(admin_conn, 2017, [("330000", "浙江省"), ("330100", "杭州市"), ("330102", "上城区")],
                                 source="test")

    (outcome, listed), _ = await interleaved.append([request(unlisted), request(event(region="330102"))],
                                                    import_a_list)
    assert interleaved.decided_again == 1
    assert isinstance(outcome, ValidationFailed)
    assert [e.loc for e in outcome.errors] == [("region",)]
    assert isinstance(listed, Accepted)
    assert [r.position for r in listed.results] == [2]
    await assert_log_is_one_chain(pool, 2)


async def test_a_group_of_refusals_and_duplicates_only_takes_no_lock(
        interleaved: Interleaved, pool: asyncpg.Pool) -> None:
    stored = event()
    async with pool.acquire() as conn:
        assert await appended(conn, request(stored)) != []
    taken: list[int] = []

    async def another(other: Connection) -> None:
        taken.append(1)

    outcomes, head = await interleaved.append([request(stored), request(event(campaign="2018"))], another)
    assert taken == [], "nothing to append: the group stands on its snapshot"
    assert isinstance(outcomes[0], Accepted)
    assert isinstance(outcomes[1], ValidationFailed)
    assert head == 2
