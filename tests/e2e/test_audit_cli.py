"""The auditor's command line: `qmstats verify` (whole log, one campaign, a pinned head) and
`qmstats replay` of an export, run as real processes against the database the API serves."""

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.audit_support import (
    TAMPERED,
    TAMPERING,
    change_one_byte,
    figures,
    post,
    qmstats,
    save_export,
    tamper,
    two_campaign_log,
)
from tests.conftest import Database, Keys
from tests.e2e.wire import logged
from tests.factories import event
from tests.projection_support import get_json, post_scenario, realistic_mix, settled

pytestmark = pytest.mark.usefixtures("campaign")


async def verify(database: Database, *args: str) -> tuple[int, dict[str, Any]]:
    """`qmstats verify ARGS`: its exit code and the JSON it printed."""
    code, out, err = await qmstats(database.admin_url, "verify", *args)
    assert code in (0, 4), f"verify {args}: exit {code}: {err}"
    return code, json.loads(out)


@pytest.mark.parametrize("how", list(TAMPERING))
async def test_verify_exits_4_naming_the_tampered_position(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection, how: str) -> None:
    await two_campaign_log(client, keys)
    pinned = await get_json(client, "/v1/audit/head", keys.auditor)
    assert (await get_json(client, "/v1/audit/verify", keys.auditor))["ok"] is True

    await tamper(admin_conn, how, TAMPERED)

    whole, campaign = await asyncio.gather(verify(database), verify(database, "--campaign", "2017"))
    for name, (code, report) in {"whole log": whole, "--campaign 2017": campaign}.items():
        assert (code, report["ok"], report["first_bad_position"]) == (4, False, TAMPERED), f"{name}: {report}"
    assert whole[1]["head"] == pinned  # the head row itself was not touched


async def test_a_pinned_head_proves_the_log_was_only_appended_to(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection) -> None:
    await post(client, keys.reporter, event(), event("publicity_held"), event("media_reported"))
    pinned = await get_json(client, "/v1/audit/head", keys.auditor)
    assert pinned["position"] == 4
    since = f"{pinned['position']}:{pinned['hash']}"
    await post(client, keys.reporter, event("pledge_signed"), event("materials_distributed"))
    await post(client, keys.reporter, event("lab_open_day_held"))

    wrong = pinned["hash"][:-1] + ("0" if pinned["hash"][-1] != "0" else "1")
    appended, wrong_hash, never_reached, campaign_pinned, campaign_wrong = await asyncio.gather(
        verify(database, "--since-head", since), verify(database, "--since-head", f"4:{wrong}"),
        verify(database, "--since-head", f"99:{pinned['hash']}"),
        verify(database, "--campaign", "2017", "--since-head", since),
        verify(database, "--campaign", "2017", "--since-head", f"4:{wrong}"))
    head = await get_json(client, "/v1/audit/head", keys.auditor)
    assert appended[1].pop("tree")["ok"] is True  # the Merkle tree over the whole log (test_log_cli.py)
    assert appended == (0, {"ok": True, "checked": 7, "first_bad_position": None, "head": head})
    assert head["position"] == 7
    assert (wrong_hash[0], wrong_hash[1]["first_bad_position"]) == (4, 4), wrong_hash
    assert (never_reached[0], never_reached[1]["first_bad_position"]) == (4, 99), never_reached
    # With --campaign the pin is checked too, not silently dropped.
    assert campaign_pinned[0] == 0, campaign_pinned
    assert (campaign_wrong[0], campaign_wrong[1]["first_bad_position"]) == (4, 4), campaign_wrong

    code, _, err = await qmstats(database.admin_url, "verify", "--since-head", "four:abc")
    assert code == 1
    assert "POSITION:HASH" in err

    # Cutting the tail off leaves a chain that is intact on its own; the pinned head shows it, and so does
    # the signed checkpoint of the Merkle tree that covered position 7 (issue 16).
    await logged(client, keys.auditor, 7)
    await tamper(admin_conn, "delete", 7)
    plain, cut = await asyncio.gather(verify(database),
                                      verify(database, "--since-head", f"7:{head['hash']}"))
    assert (plain[0], plain[1]["ok"], plain[1]["tree"]["ok"]) == (4, True, False), plain
    assert plain[1]["tree"]["first_bad_checkpoint"] == 7
    assert (cut[0], cut[1]["first_bad_position"]) == (4, 7), cut
    # Tampering after the pinned position is found as well (the whole chain is recomputed), and
    # tampering before it is found where it happened.
    await tamper(admin_conn, "data", 6)
    code, after_pin = await verify(database, "--since-head", since)
    assert (code, after_pin["first_bad_position"]) == (4, 6)
    await tamper(admin_conn, "hash", 3)
    code, before_pin = await verify(database, "--since-head", since)
    assert (code, before_pin["first_bad_position"]) == (4, 3)


async def export(database: Database, path: Path, *args: str) -> list[bytes]:
    code, out, err = await qmstats(database.admin_url, "export", *args)
    assert code == 0, err
    return save_export(path, out)


async def replay(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await qmstats("postgresql://nobody@127.0.0.1:1/none", "replay", str(path), *args)
    assert code in (0, 4), err
    return code, json.loads(out)


async def test_replaying_an_export_gives_the_figures_the_service_shows(
        client: TestClient, keys: Keys, database: Database, tmp_path: Path) -> None:
    head = await post_scenario(client, keys.admin, realistic_mix(seed=31))
    await settled(client, keys.viewer, head)
    pinned = await get_json(client, "/v1/audit/head", keys.auditor)
    lines = await export(database, tmp_path / "log.ndjson")
    assert len(lines) == head

    # The replay needs no database: it is pointed at one that does not exist.
    regions = ("000000", "330000", "440300")
    replays = await asyncio.gather(*(replay(tmp_path / "log.ndjson", "--region", r) for r in regions))
    for region, (code, replayed) in zip(regions, replays, strict=True):
        assert code == 0
        assert replayed["chain"] == {"ok": True, "checked": head, "first_bad_position": None, "complete": True,
                                     "last_position": head, "last_hash": pinned["hash"], "unresolved": 0}
        assert list(replayed["dashboards"]) == ["2017"]
        live = await get_json(client, "/v1/campaigns/2017/dashboard", keys.viewer, region=region)
        offline = replayed["dashboards"]["2017"]
        assert offline["metrics"] == live["metrics"], region
        assert offline["pass_rate"] == live["pass_rate"], region
        assert offline["children"] == live["children"], region
        assert figures(offline) == figures(live), region

    tampered, position = change_one_byte(lines)
    (tmp_path / "tampered.ndjson").write_bytes(b"".join(tampered))
    code, broken = await replay(tmp_path / "tampered.ndjson")
    assert code == 4
    assert broken["chain"]["ok"] is False
    assert broken["chain"]["first_bad_position"] == position


async def test_a_region_export_replays_with_what_it_cannot_resolve_counted(
        client: TestClient, keys: Keys, database: Database, tmp_path: Path) -> None:
    await post_scenario(client, keys.admin, realistic_mix(seed=31))
    lines = await export(database, tmp_path / "guangdong.ndjson", "--region", "440000")
    events = [json.loads(line) for line in lines]
    assert events
    assert all(e["region"].startswith("44") for e in events)
    held = {e["event_id"] for e in events}
    # Corrections that moved a fact into Guangdong come without the original reported elsewhere.
    refers = [e["data"].get("corrects") or e["data"].get("retracts") for e in events]
    dangling = [target for target in refers if target is not None and target not in held]
    assert dangling, "the scenario moves no fact into Guangdong"

    code, replayed = await replay(tmp_path / "guangdong.ndjson", "--region", "440000")
    assert code == 0
    chain = replayed["chain"]
    assert (chain["ok"], chain["complete"], chain["checked"]) == (True, False, len(events))
    assert chain["unresolved"] == len(dangling)
    assert replayed["dashboards"]["2017"]["region"]["code"] == "440000"
