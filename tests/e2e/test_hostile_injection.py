"""SQL injection through every query and path parameter is inert: a 4xx or an ordinary (empty) answer, no 5xx.

Afterwards the log, the keys and the read tables are exactly as before.
"""

from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from events.stored_chain import verify_log
from tests.conftest import Keys
from tests.e2e.wire import eventually
from tests.factories import event

pytestmark = pytest.mark.usefixtures("campaign")

PAYLOADS = (
    "' OR '1'='1",
    "2017' OR 1=1 --",
    "1; DROP TABLE events; --",
    "'; TRUNCATE events; --",
    "330000' UNION SELECT token_hash FROM api_keys --",
    "1) OR (1=1",
    "$1",
    "$$; DELETE FROM events; $$",
    "%",
    "_",
    "\\",
    "33%",
    "\x00",
    "2017\x00' OR 1=1",
    "\ufeff2017",
    "２０１７",
    "²",
    "9" * 5000,
    "-1",
    "99999999999999999999999",
    "1e3",
    " 1",
    "A" * 3000,
    "\u202e2017",
)

# route → the query parameters it reads, with a valid value for each (so one parameter at a time is hostile).
ROUTES: dict[str, dict[str, str]] = {
    "/v1/events": {"after": "0", "limit": "10", "campaign": "2017", "region": "330000", "type": "raid_conducted"},
    "/v1/events/{event_id}": {},
    "/v1/audit/verify": {"campaign": "2017"},
    "/v1/audit/head": {},
    "/v1/campaigns": {},
    "/v1/campaigns/{campaign}": {},
    "/v1/campaigns/{campaign}/dashboard": {"region": "330000", "level": "county", "at_position": "2"},
    "/v1/campaigns/{campaign}/series": {"metric": "dens_busted", "region": "330000"},
    "/v1/campaigns/{campaign}/completeness": {"date": "2017-09-08", "region": "330000"},
    "/v1/campaigns/{campaign}/figures/{metric}/events": {"region": "330000", "after": "0", "limit": "10",
                                                        "at_position": "2"},
    "/v1/campaigns/{campaign}/summary": {"format": "json", "lang": "zh"},
    "/v1/regions": {"parent": "330000", "year": "2017"},
    "/v1/catalogue": {},
}
POSTS = ("/v1/campaigns/{campaign}/close", "/v1/campaigns/{campaign}/reopen")


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    report = await verify_log(conn)
    return {
        "events": await conn.fetch("SELECT position, event_id, hash FROM events ORDER BY position"),
        "keys": await conn.fetch("SELECT id, token_hash, revoked_at FROM api_keys ORDER BY id"),
        "totals": await conn.fetch("SELECT * FROM projection_totals ORDER BY campaign, region, metric"),
        "tables": await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "chain": (report.ok, report.checked),
    }


def path_of(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


async def test_injection_through_every_parameter_is_inert(client: TestClient, keys: Keys,
                                                          admin_conn: asyncpg.Connection) -> None:
    sent = event()
    assert (await client.post("/v1/events", json=sent, headers=keys.reporter)).status == 201

    async def projected() -> bool:
        return bool(await admin_conn.fetchval("SELECT position = 2 FROM projection_checkpoints"))

    await eventually(projected, seconds=10)
    before = await snapshot(admin_conn)
    assert before["chain"] == (True, 2)
    valid_path = {"campaign": "2017", "event_id": sent["event_id"], "metric": "dens_busted"}
    tried, answers = 0, {}
    for template, query in ROUTES.items():
        hostile_slots = [("query", name) for name in query] + [
            ("path", name) for name in valid_path if "{" + name + "}" in template]
        for where, name in hostile_slots:
            for payload in PAYLOADS:
                params = dict(query) | ({name: payload} if where == "query" else {})
                path = path_of(template, valid_path | ({name: payload} if where == "path" else {}))
                response = await client.get(URL(path, encoded=True), params=params, headers=keys.admin)
                text = await response.text()
                tried += 1
                answers[response.status] = answers.get(response.status, 0) + 1
                assert response.status < 500, (template, name, payload, response.status, text)
                if response.status == 200 and where == "query" and name == "campaign":
                    # A filter that matches nothing reads nothing; it never widens to the whole log.
                    body = await response.json()
                    assert body.get("events", []) == [], (template, payload, text[:300])
                    assert body.get("checked", 0) == 0, (template, payload, text[:300])
    for template in POSTS:
        for payload in PAYLOADS:
            response = await client.post(URL(path_of(template, {"campaign": payload}), encoded=True),
                                         json={"note": payload.replace("\x00", "")}, headers=keys.admin)
            tried += 1
            assert response.status in (404, 422), (template, payload, response.status, await response.text())
    assert await snapshot(admin_conn) == before
    print(f"\ninjection: {tried} hostile requests, statuses {answers}")
