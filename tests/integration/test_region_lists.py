"""An imported official code list for a campaign's year decides which prefectures and counties exist."""


import asyncpg
import pytest

from events.errors import ValidationFailed
from events.region_store import import_region_list
from services.regionlists import read_region_list
from tests.factories import event
from tests.integration.appending import count_events, open_campaign, request, running_writer
from tests.shared_data import AREACODES

UNLISTED_COUNTY = "330199"  # under 杭州市, well formed, not in the 2017 list


@pytest.fixture(scope="module")
def codes_2017() -> list[tuple[str, str]]:
    source = AREACODES / "2017.txt"
    if not source.is_file():
        pytest.fail(f"the MCA code list {source} is missing; these tests need /work/shared/data/areacodes")
    return read_region_list(source.read_text("utf-8"))


async def test_an_unlisted_county_is_refused_once_the_years_list_is_imported(
        admin_conn: asyncpg.Connection, pool: asyncpg.Pool, codes_2017: list[tuple[str, str]]) -> None:
    imported = await import_region_list(admin_conn, 2017, codes_2017, source="2017.txt")
    assert imported == len(codes_2017) > 3000
    assert ("330102", "上城区") in codes_2017
    assert UNLISTED_COUNTY not in dict(codes_2017)

    async with running_writer(pool) as writer:
        await open_campaign(writer)
        with pytest.raises(ValidationFailed) as refused:
            await writer.append(request(event(region=UNLISTED_COUNTY)))
        listed = await writer.append(request(event(region="330102")))

    assert [(e.loc, e.index) for e in refused.value.errors] == [(("region",), 0)]
    assert "2017 region list" in refused.value.errors[0].msg
    assert [(r.status, r.position) for r in listed.results] == [("created", 2)]
    async with pool.acquire() as conn:
        assert await count_events(conn) == 2


async def test_one_unlisted_code_refuses_the_whole_batch(
        admin_conn: asyncpg.Connection, pool: asyncpg.Pool, codes_2017: list[tuple[str, str]]) -> None:
    await import_region_list(admin_conn, 2017, codes_2017, source="2017.txt")
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        with pytest.raises(ValidationFailed) as refused:
            await writer.append(request(event(region="330102"), event(region=UNLISTED_COUNTY)))
    assert [(e.loc, e.index) for e in refused.value.errors] == [(("region",), 1)]
    async with pool.acquire() as conn:
        assert await count_events(conn) == 1


async def test_without_a_list_for_the_year_any_well_formed_code_is_accepted(pool: asyncpg.Pool) -> None:
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        accepted = await writer.append(request(event(region=UNLISTED_COUNTY)))
    assert [(r.status, r.position) for r in accepted.results] == [("created", 2)]


async def test_reimporting_a_year_replaces_its_list(
        admin_conn: asyncpg.Connection, pool: asyncpg.Pool, codes_2017: list[tuple[str, str]]) -> None:
    await import_region_list(admin_conn, 2017, codes_2017, source="2017.txt")
    replacement = [("330000", "浙江省"), ("330100", "杭州市"), (UNLISTED_COUNTY, "测试区")]
    assert await import_region_list(admin_conn, 2017, replacement, source="corrected.txt") == 3

    assert await admin_conn.fetchval("SELECT count(*) FROM region_codes WHERE year = 2017") == 3
    listed = await admin_conn.fetchrow("SELECT codes, source FROM region_lists WHERE year = 2017")
    assert listed is not None
    assert (listed["codes"], listed["source"]) == (3, "corrected.txt")
    async with running_writer(pool) as writer:
        await open_campaign(writer)
        accepted = await writer.append(request(event(region=UNLISTED_COUNTY)))
        with pytest.raises(ValidationFailed) as refused:
            await writer.append(request(event(region="330102")))
    assert accepted.results[0].status == "created"
    assert [e.loc for e in refused.value.errors] == [("region",)]
