"""The real ``qmstats`` console script, run as an operator would, against the database the API serves."""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Database, Keys
from tests.e2e.wire import answers, eventually, expect_problem, read_log
from tests.factories import CAMPAIGN, event

QMSTATS = Path(sys.executable).with_name("qmstats")
TIMEOUT = 60


@dataclass(frozen=True)
class Run:
    """What one command did."""

    code: int
    stdout: str
    stderr: str


Qmstats = Callable[..., Awaitable[Run]]


@pytest.fixture
def qmstats(database: Database, tmp_path: Path) -> Qmstats:
    """Run ``qmstats ARGS`` with QMSTATS_DATABASE_URL pointing at this test's database."""
    assert QMSTATS.is_file(), f"the console script is not installed at {QMSTATS}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env |= {"QMSTATS_DATABASE_URL": database.admin_url, "QMSTATS_DATA_DIR": str(tmp_path / "never-used"),
            "COLUMNS": "200", "NO_COLOR": "1"}

    async def run(*args: str) -> Run:
        proc = await asyncio.create_subprocess_exec(str(QMSTATS), *args, cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(TIMEOUT):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"qmstats {' '.join(args)} did not finish in {TIMEOUT} s") from None
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    return run


async def test_keys_create_list_revoke(qmstats: Qmstats, client: TestClient, keys: Keys) -> None:
    created = await qmstats("keys", "create", "--role", "reporter", "--region", "330000", "--name", "Zhejiang gateway")
    assert created.code == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("qm.")
    assert " " not in token
    key_id = token.split(".")[1]
    bearer = {"Authorization": f"Bearer {token}"}
    assert key_id in created.stderr
    assert token not in created.stderr

    await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    await eventually(answers(client, bearer, 200))
    sent = event(region="330102")
    posted = await client.post("/v1/events", json=sent, headers=bearer)
    assert posted.status == 201, await posted.text()
    outside = await client.post("/v1/events", json=event(region="440103"), headers=bearer)
    await expect_problem(outside, 403, "forbidden")
    (stored,) = await read_log(client, keys, after=1)
    assert stored["recorded_by"] == key_id

    listed = await qmstats("keys", "list")
    assert listed.code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if key_id in line)
    assert "reporter" in row
    assert "330000" in row
    assert "Zhejiang gateway" in row
    assert token.split(".")[2] not in listed.stdout
    assert all(k in listed.stdout for k in keys.ids.values())

    revoked = await qmstats("keys", "revoke", key_id)
    assert revoked.code == 0, revoked.stderr
    await eventually(answers(client, bearer, 401))
    refused = await client.post("/v1/events", json=event(), headers=bearer)
    await expect_problem(refused, 401, "unauthenticated")

    again = await qmstats("keys", "revoke", key_id)
    assert again.code == 1
    assert key_id in again.stderr


async def test_keys_create_refuses_a_bad_role_or_scope(qmstats: Qmstats, admin_conn: asyncpg.Connection) -> None:
    for args in (("--role", "reporter", "--region", "990000", "--name", "bad scope"),
                 ("--role", "viewer", "--region", "330000", "--name", "scoped viewer")):
        result = await qmstats("keys", "create", *args)
        assert result.code == 1, (args, result)
        assert "qm." not in result.stdout, args
    assert await admin_conn.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_campaigns_open_appends_campaign_opened(qmstats: Qmstats, client: TestClient, keys: Keys) -> None:
    args = ("campaigns", "open", "--id", "2018", "--theme", "质量第一 共建质量强国", "--starts-on", "2018-09-01",
            "--ends-on", "2018-09-30")
    opened = await qmstats(*args)
    assert opened.code == 0, opened.stderr
    assert "position 1" in opened.stderr
    (stored,) = await read_log(client, keys, type="campaign_opened")
    assert stored["campaign"] == "2018"
    assert stored["recorded_by"] == "cli"
    assert stored["data"] == {"id": "2018", "theme": "质量第一 共建质量强国", "starts_on": "2018-09-01",
                              "ends_on": "2018-09-30"}
    campaign = await (await client.get("/v1/campaigns/2018", headers=keys.viewer)).json()
    assert campaign["status"] == "open"
    posted = await client.post("/v1/events", headers=keys.reporter,
                               json=event(campaign="2018", occurred_at="2018-09-15T09:30:00+08:00"))
    assert posted.status == 201

    twice = await qmstats(*args)  # as POST /v1/campaigns answers 200 to the same opening
    assert twice.code == 0, twice.stderr
    assert "campaign 2018 was already opened, at position 1" in twice.stderr
    assert len(await read_log(client, keys, type="campaign_opened")) == 1


async def test_regions_import_names_the_regions(qmstats: Qmstats, client: TestClient, keys: Keys,
                                                areacodes: Path) -> None:
    imported = await qmstats("regions", "import", str(areacodes / "2017.txt"), "--year", "2017")
    assert imported.code == 0, imported.stderr
    lines = [line for line in (areacodes / "2017.txt").read_text("utf-8-sig").splitlines() if line.strip()]
    assert f"imported {len(lines)} region codes for 2017" in imported.stderr
    body = await (await client.get("/v1/regions", params={"parent": "330000"}, headers=keys.viewer)).json()
    assert body["year"] == 2017
    assert {r["code"]: r["name"] for r in body["regions"]}["330100"] == "杭州市"

    missing = await qmstats("regions", "import", str(areacodes / "1900.txt"), "--year", "1900")
    assert missing.code != 0


async def test_migrate_is_idempotent(qmstats: Qmstats, admin_conn: asyncpg.Connection) -> None:
    first = await qmstats("migrate")
    assert first.code == 0, first.stderr
    assert "database is current" in first.stderr
    migrated = await admin_conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
    assert migrated
    again = await qmstats("migrate")
    assert again.code == 0, again.stderr
    assert "applied migration" not in again.stderr
    assert await admin_conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version") \
        == migrated
