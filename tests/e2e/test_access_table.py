"""Who may call what: every route × every role (and no key), against the table in docs/decisions.md.

The table below is written out by hand, independently of the ``@allow`` marks in the handlers, so
a route whose roles drift (or a new route nobody placed in the table) fails here.
"""

import asyncio
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.key_store import revoke_key
from services.app import create_app
from services.appkeys import POOL
from services.keyring import KeyRing, create_key
from services.routes import route_table
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.e2e.processes import qmstats_children
from tests.e2e.wire import answers, eventually, expect_problem, read_log
from tests.factories import CAMPAIGN, SAMPLE_DATA, correction, event, retraction

pytestmark = pytest.mark.usefixtures("campaign")

ROLES = ("reporter", "viewer", "auditor", "admin")
EVERY = frozenset(ROLES)
READERS = frozenset({"viewer", "auditor", "admin"})
AUDIT = frozenset({"auditor", "admin"})
OPEN = None  # no key needed

# (method, path) → the roles that may call it (docs/decisions.md, "Keys and roles").
ACCESS: dict[tuple[str, str], frozenset[str] | None] = {
    ("POST", "/v1/events"): frozenset({"reporter", "admin"}),
    ("GET", "/v1/events"): AUDIT,
    ("GET", "/v1/events/{event_id}"): AUDIT,
    ("GET", "/v1/audit/verify"): AUDIT,
    ("GET", "/v1/audit/head"): AUDIT,
    ("GET", "/v1/campaigns/{campaign}/figures/{metric}/events"): AUDIT,
    ("POST", "/v1/campaigns"): frozenset({"admin"}),
    ("POST", "/v1/campaigns/{campaign}/close"): frozenset({"admin"}),
    ("POST", "/v1/campaigns/{campaign}/reopen"): frozenset({"admin"}),
    ("GET", "/v1/campaigns"): EVERY,
    ("GET", "/v1/campaigns/{campaign}"): EVERY,
    ("GET", "/v1/catalogue"): EVERY,
    ("GET", "/v1/regions"): EVERY,
    ("GET", "/v1/campaigns/{campaign}/dashboard"): READERS,
    ("GET", "/v1/campaigns/{campaign}/series"): READERS,
    ("GET", "/v1/campaigns/{campaign}/completeness"): READERS,
    ("GET", "/v1/campaigns/{campaign}/summary"): READERS,
    ("GET", "/v1/campaigns/{campaign}/flags"): EVERY,  # a reporter sees its own subtree
    ("POST", "/v1/campaigns/{campaign}/flags/{flag_id}/review"): frozenset({"reporter", "admin"}),
    ("GET", "/v1/stream"): READERS,
    ("GET", "/v1/log/checkpoint"): EVERY,
    ("GET", "/v1/log/key"): EVERY,
    ("GET", "/v1/log/tile/{level}/{index}"): EVERY,
    ("GET", "/v1/events/{event_id}/proof"): frozenset({"reporter", "auditor", "admin"}),
    ("GET", "/v1/log/consistency?from=1"): AUDIT,
    ("GET", "/v1/openapi.json"): OPEN,
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
}
# The same route, narrower with a parameter: figures as they stood at a past position are for auditors.
NARROWER = {("GET", "/v1/campaigns/{campaign}/dashboard?at_position=1"): AUDIT}


def concrete(path: str, event_id: str) -> str:
    # Close and reopen go to a campaign that does not exist: an admin then gets 404, and nothing changes.
    campaign = "nosuch" if path.endswith(("/close", "/reopen")) else "2017"
    return (path.replace("{campaign}", campaign).replace("{event_id}", event_id)
            .replace("{metric}", "dens_busted").replace("{flag_id}", "0" * 16).replace("{level}", "0")
            .replace("{index}", "000.p/1"))


def body_for(method: str, path: str) -> Any:
    if method != "POST":
        return None
    return {"/v1/events": event(), "/v1/campaigns": CAMPAIGN}.get(path, {"note": "access table"})


async def call(client: TestClient, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, str]:
    async with client.request(method, path, headers=headers, json=body) as response:
        if response.content_type == "text/event-stream":
            return response.status, response.content_type  # an open stream: the status is what we came for
        await response.read()
        return response.status, response.content_type


async def test_every_route_answers_exactly_the_roles_the_table_allows(client: TestClient, keys: Keys) -> None:
    listed = {(r.method, r.path + ("?from=1" if r.path == "/v1/log/consistency" else "")) for r in route_table()}
    assert listed == set(ACCESS), f"routes missing from the access table: {listed - set(ACCESS)}, " \
                                  f"stale entries: {set(ACCESS) - listed}"
    posted = event()
    assert (await client.post("/v1/events", json=posted, headers=keys.reporter)).status == 201
    checked = 0
    for (method, template), allowed in {**ACCESS, **NARROWER}.items():
        path = concrete(template, posted["event_id"])
        for role in (None, *ROLES):
            headers = {} if role is None else getattr(keys, role)
            status, ctype = await call(client, method, path, headers, body_for(method, template))
            case = (method, path, role, status)
            checked += 1
            if allowed is OPEN:
                assert status in (200, 503), case  # /readyz may say 503 while the listener connects
            elif role is None:
                assert status == 401, case
            elif role in allowed:
                assert status not in (401, 403), case
                assert status < 500, case
            else:
                assert (status, ctype) == (403, "application/problem+json"), case
    print(f"\naccess table: {checked} route × role calls")


async def test_metrics_can_be_closed_and_health_stays_open(database: Database, keys: Keys) -> None:
    """/metrics, /healthz, /readyz are open by default; QMSTATS_OPEN_METRICS=false puts /metrics behind a key."""
    app = create_app(app_settings(open_metrics=False), database.service_url)
    async with TestClient(TestServer(app)) as closed:
        await expect_problem(await closed.get("/metrics"), 401, "unauthenticated")
        await expect_problem(await closed.get("/metrics", headers=keys.reporter), 403, "forbidden")
        for role in ("viewer", "auditor", "admin"):
            response = await closed.get("/metrics", headers=getattr(keys, role))
            assert response.status == 200, role
            assert "qmstats_http_requests_total" in await response.text()
        assert (await closed.get("/healthz")).status == 200
        assert (await closed.get("/readyz")).status in (200, 503)
        assert (await closed.get("/v1/openapi.json")).status == 200


async def test_tokens_are_stored_only_as_hashes_and_compared_in_constant_time(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {role: getattr(keys, role)["Authorization"].removeprefix("Bearer ") for role in ROLES}
    for role, token in tokens.items():
        row = await admin_conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", keys.ids[role])
        assert row is not None
        assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    # No table anywhere in the database holds a token or its secret part, in any column.
    secrets = [t.split(".")[2] for t in tokens.values()]
    for table in await admin_conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        dump = "\n".join(r[0] for r in await admin_conn.fetch(f'SELECT t::text FROM "{table[0]}" t'))
        assert not [s for s in secrets if s in dump], table[0]

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert (await client.get("/v1/catalogue", headers=keys.viewer)).status == 200
    forged = tokens["viewer"][:-3] + ("xyz" if not tokens["viewer"].endswith("xyz") else "abc")
    await expect_problem(await client.get("/v1/catalogue", headers={"Authorization": f"Bearer {forged}"}), 401,
                         "unauthenticated")
    stored = hashlib.sha256(tokens["viewer"].encode()).digest()
    assert compared == [(stored, stored), (stored, hashlib.sha256(forged.encode()).digest())]


@pytest.mark.slow
async def test_a_key_revoked_with_the_cli_fails_on_its_very_next_request(database: Database, keys: Keys,
                                                                         tmp_path: Path) -> None:
    async with qmstats_children(database.service_url, database.admin_url, tmp_path) as children, \
            aiohttp.ClientSession() as session:
        api = children.serve()
        await api.start_listening()
        for role, region in (("reporter", "330100"), ("viewer", None)):
            args = ["keys", "create", "--role", role, "--name", f"revoked {role}"]
            code, out, err = await children.run(*args, *(["--region", region] if region else []))
            assert code == 0, err
            token = out.strip().splitlines()[-1]
            bearer = {"Authorization": f"Bearer {token}"}
            async with session.get(api.url + "/v1/catalogue", headers=bearer) as response:
                assert response.status == 200  # in use, so the service holds it in memory
            code, _, err = await children.run("keys", "revoke", token.split(".")[1])
            assert code == 0, err
            # The very next request, sent the moment the CLI has exited, is refused …
            async with session.post(api.url + "/v1/events", json=event(region="330102"), headers=bearer) as response:
                assert response.status == 401, (role, await response.text())
            async with session.get(api.url + "/v1/catalogue", headers=bearer) as response:
                assert response.status == 401
            # … and other keys are unaffected.
            async with session.get(api.url + "/v1/catalogue", headers=keys.viewer) as response:
                assert response.status == 200


async def test_a_reporter_stays_inside_its_region_subtree(client: TestClient, keys: Keys,
                                                          admin_conn: asyncpg.Connection) -> None:
    _, token = await create_key(admin_conn, name="Hangzhou gateway", role="reporter", region="330100")
    hangzhou = {"Authorization": f"Bearer {token}"}
    await eventually(answers(client, hangzhou, 200))  # the new key reaches the running service by NOTIFY
    own = event(region="330102")
    assert (await client.post("/v1/events", json=own, headers=hangzhou)).status == 201
    ningbo = event(region="330203")  # a sibling prefecture, posted by the provincial key
    assert (await client.post("/v1/events", json=ningbo, headers=keys.reporter)).status == 201
    before = await read_log(client, keys)

    refused = {
        "post in a sibling prefecture": event(region="330203"),
        "post for the province above": event(region="330000"),
        "post for the nation": event(region="000000"),
        "post in another province": event(region="440103"),
        "a batch with one item outside": {"events": [event(region="330106"), event(region="330203")]},
        "correct a sibling's event": correction(ningbo["event_id"], SAMPLE_DATA["raid_conducted"], region="330102"),
        "move its own event outside": correction(own["event_id"], SAMPLE_DATA["raid_conducted"], region="330203"),
        "retract a sibling's event": retraction(ningbo["event_id"], region="330102"),
        "retract its own event from outside": retraction(own["event_id"], region="330203"),
    }
    for case, body in refused.items():
        await expect_problem(await client.post("/v1/events", json=body, headers=hangzhou), 403, "forbidden", case)

    # Nor may it read the raw log, in any form.
    reads = ["/v1/events", f"/v1/events/{own['event_id']}", "/v1/audit/verify", "/v1/audit/head",
             "/v1/campaigns/2017/figures/dens_busted/events", "/v1/campaigns/2017/dashboard?at_position=1"]
    for path in reads:
        await expect_problem(await client.get(path, headers=hangzhou), 403, "forbidden", path)
    ndjson = await client.get("/v1/events", headers=hangzhou | {"Accept": "application/x-ndjson"})
    await expect_problem(ndjson, 403, "forbidden")
    assert await read_log(client, keys) == before


async def test_the_service_role_in_use_cannot_change_the_log(client: TestClient, keys: Keys) -> None:
    """Take a connection from the running service's own pool and try to rewrite history with it."""
    assert (await client.post("/v1/events", json=event(), headers=keys.reporter)).status == 201
    async with client.server.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT session_user") == "qmstats_service"
        assert await conn.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'events'") != "qmstats_service"
        for sql in ("UPDATE events SET region = '330103'", "DELETE FROM events", "TRUNCATE events",
                    "ALTER TABLE events DISABLE TRIGGER USER", "DROP TABLE events",
                    "ALTER TABLE events RENAME TO events_old", "SET ROLE postgres"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
        await conn.execute("GRANT UPDATE, DELETE, TRUNCATE ON events TO qmstats_service")  # only a warning …
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):  # … and nothing granted
            assert not await conn.fetchval("SELECT has_table_privilege('events', $1)", privilege), privilege
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert [e["position"] for e in await read_log(client, keys)] == [1, 2]


async def test_a_burst_is_held_to_the_limit_and_the_key_recovers_after_retry_after(database: Database,
                                                                                    keys: Keys) -> None:
    """test_auth.py checks one request over the limit on a fake clock; this is a real concurrent burst."""
    app = create_app(app_settings(rate_limit_per_second=2, rate_limit_burst=5), database.service_url)
    async with TestClient(TestServer(app)) as limited:
        await limited.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
        burst = [event() for _ in range(40)]
        started = time.monotonic()
        responses = await asyncio.gather(*(limited.post("/v1/events", json=e, headers=keys.reporter)
                                           for e in burst))
        refilled = int((time.monotonic() - started) * 2) + 1  # what 2/s can have added while the burst ran
        statuses = [r.status for r in responses]
        assert 5 <= statuses.count(201) <= 5 + refilled, statuses  # the burst allowance, and no more
        assert statuses.count(429) == len(burst) - statuses.count(201)
        waits = set()
        for response in responses:
            if response.status == 429:
                await expect_problem(response, 429, "rate-limited")
                waits.add(int(response.headers["Retry-After"]))
        assert min(waits) >= 1
        created = {e["event_id"] for e, s in zip(burst, statuses, strict=True) if s == 201}
        assert {e["event_id"] for e in await read_log(limited, keys, after=1)} == created  # a 429 stores nothing

        # The budget is the key's: another key is served during the burst's aftermath …
        assert (await limited.get("/v1/catalogue", headers=keys.viewer)).status == 200
        # … and the limited key is served again once it has waited as long as it was told.
        await asyncio.sleep(max(waits))
        assert (await limited.post("/v1/events", json=event(), headers=keys.reporter)).status == 201


async def test_concurrent_requests_never_authenticate_against_an_empty_or_stale_key_cache(
        pool: asyncpg.Pool, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    """Found by the API crash test: right after a start, valid keys were answered 401 while the first load ran."""
    token = keys.viewer["Authorization"].removeprefix("Bearer ")
    ring = KeyRing(pool)
    ring.set_live(True)  # the listener connected before the first requests arrived
    assert all(await asyncio.gather(*(ring.authenticate(token) for _ in range(20))))
    # A revocation is notified while requests keep coming: none of them may use the keys loaded before it.
    assert await revoke_key(admin_conn, keys.ids["viewer"])
    ring.invalidate()
    assert not any(await asyncio.gather(*(ring.authenticate(token) for _ in range(20))))
