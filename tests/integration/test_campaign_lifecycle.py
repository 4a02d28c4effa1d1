"""A campaign's state is the fold of its lifecycle events in the log; a closed campaign takes nothing."""

from datetime import UTC, datetime

import asyncpg
import pytest

from events.errors import CampaignClosedError, CampaignConflict
from events.store import read_campaigns
from services.lifecycle import append_lifecycle
from tests.factories import CAMPAIGN, event
from tests.integration.appending import count_events, lifecycle, open_campaign, request, running_writer

CLOSE = {"id": "2017", "note": "final figures"}
REOPEN = {"id": "2017", "reason": "late reports from Zhejiang"}


async def test_close_refuses_events_until_reopened_and_the_history_records_each_close(pool: asyncpg.Pool) -> None:
    async with running_writer(pool) as writer:
        assert await open_campaign(writer) == 1
        await writer.append(request(event()))
        closed = await writer.append(lifecycle("campaign_closed", CLOSE))
        with pytest.raises(CampaignClosedError) as refused:
            await writer.append(request(event("publicity_held"), event("pledge_signed")))
        async with pool.acquire() as conn:
            assert await count_events(conn) == 3
            history = (await read_campaigns(conn))["2017"]
        assert (history.status, history.closed_at, history.last_position) == ("closed", (3,), 3)

        reopened = await writer.append(lifecycle("campaign_reopened", REOPEN))
        late = await writer.append(request(event("publicity_held")))
        await writer.append(lifecycle("campaign_closed", {"id": "2017"}))

    assert refused.value.campaign == "2017"
    assert [r.position for r in closed.results + reopened.results + late.results] == [3, 4, 5]
    async with pool.acquire() as conn:
        campaigns = await read_campaigns(conn)
        assert await count_events(conn) == 6
    history = campaigns["2017"]
    assert (history.status, history.opened_position, history.closed_at, history.last_position) == \
        ("closed", 1, (3, 6), 6)
    assert (history.theme, str(history.starts_on), str(history.ends_on)) == \
        (CAMPAIGN["theme"], CAMPAIGN["starts_on"], CAMPAIGN["ends_on"])


async def test_read_campaigns_keeps_campaigns_apart(pool: asyncpg.Pool) -> None:
    campaign_2018 = {"id": "2018", "theme": "质量第一", "starts_on": "2018-09-01", "ends_on": "2018-09-30"}
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        await open_campaign(writer, campaign_2018)
        await writer.append(lifecycle("campaign_closed", CLOSE))
        accepted = await writer.append(request(event(campaign="2018", occurred_at="2018-09-03T09:00:00+08:00")))
    assert accepted.results[0].position == 4
    async with pool.acquire() as conn:
        everything = await read_campaigns(conn)
        only_2018 = await read_campaigns(conn, ["2018"])
    assert {c: (h.status, h.closed_at) for c, h in everything.items()} == \
        {"2017": ("closed", (3,)), "2018": ("open", ())}
    assert list(only_2018) == ["2018"]


async def test_lifecycle_changes_that_do_not_fit_the_state_are_refused(admin_conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    with pytest.raises(CampaignConflict, match="has not been opened"):
        await append_lifecycle(admin_conn, "campaign_closed", "2017", CLOSE, now=now)
    assert await append_lifecycle(admin_conn, "campaign_opened", "2017", CAMPAIGN, now=now) == 1
    with pytest.raises(CampaignConflict, match="already been opened"):
        await append_lifecycle(admin_conn, "campaign_opened", "2017", CAMPAIGN, now=now)
    with pytest.raises(CampaignConflict, match="only a closed campaign can reopen"):
        await append_lifecycle(admin_conn, "campaign_reopened", "2017", REOPEN, now=now)
    assert await append_lifecycle(admin_conn, "campaign_closed", "2017", CLOSE, now=now) == 2
    with pytest.raises(CampaignConflict, match="already closed"):
        await append_lifecycle(admin_conn, "campaign_closed", "2017", CLOSE, now=now)
    assert await count_events(admin_conn) == 2
