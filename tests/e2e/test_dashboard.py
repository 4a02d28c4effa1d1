"""Dashboards, daily series and reporting completeness show exactly the sums of what was posted."""

from datetime import date
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.e2e.wire import expect_problem
from tests.factories import SAMPLE_DATA, correction, event, retraction
from tests.projection_support import (
    EDGE_TIMES,
    Ledger,
    check_completeness,
    check_dashboard,
    check_every_figure,
    check_series,
    cst_day,
    get_json,
    import_registry,
    post_events,
    post_scenario,
    realistic_mix,
    settled,
)

pytestmark = pytest.mark.usefixtures("campaign")

DASHBOARD = "/v1/campaigns/2017/dashboard"


def test_the_test_reads_days_and_regions_as_the_specification_says() -> None:
    for sent, day in EDGE_TIMES:
        assert cst_day(sent) == day, sent
    scenario = realistic_mix()
    ledger = scenario.ledger
    assert 450 <= scenario.events <= 600
    assert {f.type for f in ledger.standing} == set(SAMPLE_DATA)
    assert len({f.region[:2] for f in ledger.standing}) >= 5
    assert ledger.moved_prefecture >= 5
    assert ledger.moved_day >= 5
    assert ledger.corrected_twice >= 2
    assert ledger.corrected_then_retracted >= 1
    assert ledger.retracted >= 10


async def test_every_figure_of_a_realistic_mix_equals_the_sums_of_what_was_posted(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    await import_registry(admin_conn)
    scenario = realistic_mix(seed=2017)
    head = await post_scenario(client, keys.admin, scenario)
    await settled(client, keys.viewer, head)
    await check_every_figure(client, keys.viewer, scenario.ledger, head)


async def test_a_correction_changes_the_figures_by_exactly_the_difference(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, areacodes: Path) -> None:
    await import_registry(admin_conn)
    ledger = Ledger()
    raid = event(region="330102", occurred_at="2017-09-08T23:30:00+08:00",
                 data=SAMPLE_DATA["raid_conducted"] | {"dens_busted": 3})
    other = event(region="330203", occurred_at="2017-09-09T09:00:00+08:00",
                  data=SAMPLE_DATA["raid_conducted"] | {"dens_busted": 4, "seized_value_yuan": "0.10"})
    head = await post_events(client, keys.reporter, [raid, other])
    ledger.record_all([raid, other])
    before = await settled(client, keys.viewer, head)
    assert before["metrics"]["dens_busted"]["value"] == 7
    assert before["metrics"]["seized_value_yuan"]["value"] == "152000.60"

    # 3 dens in Shangcheng (Hangzhou) on the 8th become 5 in Haishu (Ningbo), 00:10 on the 9th.
    fix = correction(raid["event_id"], SAMPLE_DATA["raid_conducted"] | {"dens_busted": 5},
                     region="330203", occurred_at="2017-09-08T16:10:00Z")
    head = await post_events(client, keys.reporter, [fix])
    ledger.record(fix)
    after = await settled(client, keys.viewer, head)
    assert after["metrics"]["dens_busted"]["value"] == 9
    assert after["metrics"]["seized_value_yuan"]["value"] == "152000.60"
    zhejiang = await check_dashboard(client, keys.viewer, ledger, head, "330000")
    children = {c["code"]: c["metrics"]["dens_busted"] for c in zhejiang["children"]}
    assert (children["330100"], children["330200"]) == (0, 9)
    await check_series(client, keys.viewer, ledger, head, "000000", "dens_busted")
    series = await get_json(client, "/v1/campaigns/2017/series", keys.viewer, metric="dens_busted")
    by_day = {p["date"]: p["value"] for p in series["days"]}
    assert (by_day["2017-09-08"], by_day["2017-09-09"]) == (0, 9)
    await check_completeness(client, keys.viewer, ledger, head, "330000", date(2017, 9, 8))

    withdraw = retraction(raid["event_id"], region="330203")
    head = await post_events(client, keys.reporter, [withdraw])
    ledger.record(withdraw)
    gone = await settled(client, keys.viewer, head)
    assert gone["metrics"]["dens_busted"]["value"] == 4
    assert gone["metrics"]["seized_value_yuan"]["value"] == "0.10"
    assert gone["metrics"]["personnel"]["value"] == SAMPLE_DATA["raid_conducted"]["personnel"]
    await check_dashboard(client, keys.viewer, ledger, head, "330000")
    await check_dashboard(client, keys.viewer, ledger, head, "330200")
    await check_series(client, keys.viewer, ledger, head, "330000", "dens_busted")
    await check_completeness(client, keys.viewer, ledger, head, "330000", date(2017, 9, 9))


async def test_pass_rate_is_the_sum_of_passed_over_the_sum_of_sampled(client: TestClient, keys: Keys) -> None:
    # 1/1 and 1/99: the average of the rates would be 0.5051; Σpassed ÷ Σsampled is 0.02.
    small = event("inspection_completed", data={"batches_sampled": 1, "batches_passed": 1, "enterprises": 1,
                                                "category": "mooncake"})
    large = event("inspection_completed", region="330203",
                  data={"batches_sampled": 99, "batches_passed": 1, "enterprises": 9, "category": "mooncake"})
    toys = event("inspection_completed", region="330302",
                 data={"batches_sampled": 3, "batches_passed": 2, "enterprises": 2, "category": "toys"})
    head = await post_events(client, keys.reporter, [small, large, toys])
    body = await settled(client, keys.viewer, head)
    assert body["pass_rate"]["overall"] == "0.0388349515"  # 4/103, half-even to 10 places (it does not terminate)
    assert body["pass_rate"]["by_category"] == {"mooncake": "0.02", "toys": "0.6666666667"}
    assert (body["pass_rate"]["passed"], body["pass_rate"]["sampled"]) == (4, 103)


FIGURE_ROUTES = (DASHBOARD, "/v1/campaigns/2017/series?metric=dens_busted",
                 "/v1/campaigns/2017/completeness?date=2017-09-08")


async def test_viewers_auditors_and_admins_may_read_figures_reporters_may_not(client: TestClient,
                                                                              keys: Keys) -> None:
    for path in FIGURE_ROUTES:
        for role, headers in (("viewer", keys.viewer), ("auditor", keys.auditor), ("admin", keys.admin)):
            response = await client.get(path, headers=headers)
            assert response.status == 200, (path, role, await response.text())
        await expect_problem(await client.get(path, headers=keys.reporter), 403, "forbidden", path)
        await expect_problem(await client.get(path), 401, "unauthenticated", path)
        bad = {"Authorization": "Bearer qm.nosuchkey.secret"}
        await expect_problem(await client.get(path, headers=bad), 401, "unauthenticated", path)


async def test_an_unknown_campaign_is_404(client: TestClient, keys: Keys) -> None:
    for path in FIGURE_ROUTES:
        unknown = path.replace("2017", "2099", 1)
        await expect_problem(await client.get(unknown, headers=keys.viewer), 404, "not-found", unknown)


BAD_QUERIES = (
    "dashboard?level=city", "dashboard?level=nation", "dashboard?region=330000&level=province",
    "dashboard?region=330100&level=province", "dashboard?region=330102&level=county", "dashboard?region=33",
    "dashboard?region=990000", "series", "series?metric=", "series?metric=dens", "series?metric=pass_rate",
    "series?metric=dens_busted&region=abc", "completeness?date=2017-09-31", "completeness?date=yesterday",
    "completeness?region=1234567")


async def test_bad_parameters_are_422(client: TestClient, keys: Keys) -> None:
    for query in BAD_QUERIES:
        response = await client.get(f"/v1/campaigns/2017/{query}", headers=keys.viewer)
        await expect_problem(response, 422, "invalid-parameter", query)


async def test_a_fresh_campaign_shows_zeros_and_every_province_missing(client: TestClient, keys: Keys) -> None:
    ledger = Ledger()
    await settled(client, keys.viewer, 1)
    body = await check_dashboard(client, keys.viewer, ledger, 1)
    assert body["metrics"]["seized_value_yuan"]["value"] == "0.00"
    assert body["pass_rate"] == {"overall": None, "passed": 0, "sampled": 0, "by_category": {}}
    assert len(body["children"]) == 31
    completeness = await check_completeness(client, keys.viewer, ledger, 1, "000000", date(2017, 9, 1))
    assert (completeness["to_date"]["rate"], len(completeness["to_date"]["not_reported"])) == ("0", 31)
    for metric in ("dens_busted", "destroyed_value_yuan"):
        await check_series(client, keys.viewer, ledger, 1, "000000", metric)
