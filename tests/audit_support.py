"""Shared by the audit tests: a small log over two campaigns, tampering behind the service's back, and
dashboard bodies without their freshness fields, `qmstats` commands and a tampered export."""

from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.factories import event
from tests.projection_support import qmstats_env, run_qmstats

# docs/decisions.md: these differ between the live dashboard and the same figures asked at_position.
# ``checkpoint`` is only on answers at a past position: the signed log checkpoint they came from (issue 16).
VOLATILE = ("lag_events", "lag_seconds", "updated_at", "checkpoint")


def figures(body: dict[str, Any]) -> dict[str, Any]:
    """A dashboard body without the fields that say how fresh it is."""
    return {k: v for k, v in body.items() if k not in VOLATILE}


# --- a small log over two campaigns, to tamper with -------------------------------------------------

NEXT_YEAR = {"id": "2018", "theme": "质量第一", "starts_on": "2018-09-01", "ends_on": "2018-09-30"}
TAMPERED = 5  # a 2017 publicity_held, followed by another 2017 event
TAMPERING = {
    "data": "UPDATE events SET data = jsonb_set(data, '{participants}', '2001') WHERE position = $1",
    "hash": "UPDATE events SET hash = sha256(hash) WHERE position = $1",
    "prev_hash": "UPDATE events SET prev_hash = sha256(prev_hash) WHERE position = $1",
    "delete": "DELETE FROM events WHERE position = $1",
}


async def post(client: TestClient, headers: dict[str, str], *envelopes: dict[str, Any]) -> list[int]:
    """Post one batch; the position of each event."""
    response = await client.post("/v1/events", json={"events": list(envelopes)}, headers=headers)
    assert response.status == 201, await response.text()
    return [r["position"] for r in (await response.json())["results"]]


async def two_campaign_log(client: TestClient, keys: Keys) -> None:
    """1 open 2017, 2 open 2018, 3 raid 2017, 4 raid 2018, 5 publicity 2017, 6 raid 2017, 7 inspection 2017,
    8 raid 2018."""
    opened = await client.post("/v1/campaigns", json=NEXT_YEAR, headers=keys.admin)
    assert opened.status == 201, await opened.text()
    in_2018 = {"campaign": "2018", "occurred_at": "2018-09-03T09:00:00+08:00"}
    positions = await post(client, keys.reporter, event(), event(**in_2018), event("publicity_held"), event(),
                           event("inspection_completed"), event(**in_2018))
    assert positions == [3, 4, 5, 6, 7, 8]


async def tamper(admin_conn: asyncpg.Connection, how: str, position: int) -> None:
    """What a superuser can do behind the service's back: disable the triggers and change a row."""
    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    try:
        status = await admin_conn.execute(TAMPERING[how], position)
    finally:
        await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    assert status.endswith(" 1"), status


# --- exports and the command line ---------------------------------------------------------------------


def qmstats_env_for(admin_url: str) -> dict[str, str]:
    """The environment of a `qmstats` command run by an operator against that database."""
    return qmstats_env(admin_url, admin_url)


async def qmstats(admin_url: str, *args: str, within: float = 60) -> tuple[int, str, str]:
    """Run `qmstats ARGS` against that database: (exit code, stdout, stderr)."""
    return await run_qmstats(*args, env=qmstats_env_for(admin_url), within=within)


def change_one_byte(lines: list[bytes], *, start: int | None = None) -> tuple[list[bytes], int]:
    """The export with one digit of one count changed in one event (the line stays valid JSON of the
    same length); returns the lines and that event's position."""
    for index in range(len(lines) // 2 if start is None else start, len(lines)):
        exported = orjson.loads(lines[index])
        for name, value in exported["data"].items():
            text = f'"{name}":{value}'.encode()
            if type(value) is int and lines[index].count(text) == 1:
                changed = f'"{name}":{value + 1 if value % 10 != 9 else value - 1}'.encode()
                out = list(lines)
                out[index] = lines[index].replace(text, changed)
                assert len(out[index]) == len(lines[index])
                return out, int(exported["position"])
    raise AssertionError("no event with a count to change")


def save_export(path: Path, text: str) -> list[bytes]:
    """Write an export printed by `qmstats export` to ``path``; its lines as bytes."""
    path.write_text(text, encoding="utf-8")
    return path.read_bytes().splitlines(keepends=True)
