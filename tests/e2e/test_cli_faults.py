"""Issue 12, the command line: one clear line and a documented exit code for every error, nothing
half-done, the same answers as HTTP, no second database by accident, no "ok" about nothing."""

import asyncio
import json
import os
import socket
import uuid
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from tests.audit_support import qmstats, qmstats_env_for
from tests.conftest import Database, Keys
from tests.factories import CAMPAIGN, event
from tests.integration.test_exchange import fresh_database
from tests.projection_support import QMSTATS, ROOT

OPEN_2018 = ("campaigns", "open", "--id", "2018", "--theme", "质量第一", "--starts-on", "2018-09-01",
             "--ends-on", "2018-09-30")


def one_error_line(stderr: str) -> str:
    """The CLI's error: a single line starting with 'error:' and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


async def shell(command: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_shell(command, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_replay_of_a_pipe_checks_every_event_and_an_empty_input_is_an_error(
        client: TestClient, keys: Keys, database: Database, tmp_path: Path) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    posted = await client.post("/v1/events", json={"events": [event(), event("publicity_held")]},
                               headers=keys.reporter)
    assert posted.status == 201
    env = qmstats_env_for(database.admin_url)
    code, out, err = await shell(f"{QMSTATS} export --campaign 2017 | {QMSTATS} replay /dev/stdin", env)
    assert code == 0, err
    assert json.loads(out)["chain"]["checked"] == 3
    code, out, err = await shell(f"{QMSTATS} export --campaign 2017 | {QMSTATS} replay -", env)
    assert (code, json.loads(out)["chain"]["checked"]) == (0, 3), err

    code, out, err = await shell(f"true | {QMSTATS} replay /dev/stdin", env)
    assert (code, out) == (1, ""), err
    assert "nothing was checked" in one_error_line(err)
    (tmp_path / "blank.ndjson").write_text("\n\n")
    code, out, err = await qmstats(database.admin_url, "replay", str(tmp_path / "blank.ndjson"))
    assert (code, out) == (1, "")
    assert "holds no exported events" in one_error_line(err)
    (tmp_path / "junk.ndjson").write_text("not json\n")
    code, out, err = await qmstats(database.admin_url, "replay", str(tmp_path / "junk.ndjson"))
    assert (code, out) == (1, "")
    assert "line 1" in one_error_line(err)


async def test_import_leaves_the_projections_at_the_imported_head(
        client: TestClient, keys: Keys, database: Database, pg_server: str, template_name: str,
        tmp_path: Path) -> None:
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    data = {"dens_busted": 7, "personnel": 10, "vehicles": 1, "cases": 0, "seized_value_yuan": "100.00",
            "category": "liquor"}
    assert (await client.post("/v1/events", json=event(data=data), headers=keys.reporter)).status == 201
    code, out, err = await qmstats(database.admin_url, "export")
    assert code == 0, err
    (tmp_path / "log.ndjson").write_text(out)

    async with fresh_database(pg_server, template_name) as copy:
        code, _, err = await qmstats(copy.admin_url, "import", str(tmp_path / "log.ndjson"))
        assert code == 0, err
        assert "projected 2 events" in err
        code, out, err = await qmstats(copy.admin_url, "report", "--campaign", "2017", "--format", "json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["figures"]["dens_busted"]["value"] == 7
        # The data-quality flags are a projection too: scored up to the head, not "none open, checked to 0".
        assert summary["quality"]["scored_to"] == summary["position"] == 2
        assert "behind" not in err
        assert "note:" not in err

        # With no projector running, an event appended now leaves the projections behind: report says so,
        # and rebuild brings them to the head of the log.
        code, _, err = await qmstats(copy.admin_url, *OPEN_2018)
        assert code == 0, err
        code, out, err = await qmstats(copy.admin_url, "report", "--campaign", "2017", "--format", "json")
        assert code == 0, err
        assert "projections are at position 2 and the log at 3" in err
        code, out, err = await qmstats(copy.admin_url, "rebuild")
        assert code == 0, err
        assert "up to position 3" in err
        code, out, err = await qmstats(copy.admin_url, "report", "--campaign", "2017", "--format", "json")
        assert code == 0, err
        assert "projections are at position" not in err
        # rebuild brought the figures to 3; the data-quality flags (no projector ran) are still at 2: said too.
        assert json.loads(out)["quality"]["scored_to"] == 2
        assert "data-quality flags are scored up to position 2 and this summary is at 3" in err


def no_database_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    return env | {"QMSTATS_DATA_DIR": str(data_dir), "NO_COLOR": "1", "COLUMNS": "200"}


async def test_commands_refuse_a_data_directory_without_a_cluster(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (("keys", "list"), ("keys", "create", "--role", "viewer", "--name", "x"), ("export",),
                 ("report", "--campaign", "2017"), ("campaigns", "close", "--id", "2017")):
        proc = await asyncio.create_subprocess_exec(
            str(QMSTATS), *args, env=no_database_env(tmp_path / "elsewhere" / ".qmstats"), cwd=elsewhere,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            _out, err = await proc.communicate()
        line = one_error_line(err.decode())
        assert proc.returncode == 2, (args, err)
        assert str(elsewhere / ".qmstats") in line, line
        assert "--data-dir" in line, line
        assert not (elsewhere / ".qmstats" / "pgdata").exists(), args


async def test_serve_on_a_busy_port_says_so_and_creates_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(QMSTATS), "serve", "--port", str(port), "--data-dir", str(tmp_path / "new"),
            env=no_database_env(tmp_path / "unused"), cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    assert proc.returncode == 2, err
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(err.decode())
    assert not (tmp_path / "new").exists()


async def test_bad_dates_and_bad_region_files_are_one_line_and_change_nothing(
        database: Database, admin_conn: asyncpg.Connection, tmp_path: Path) -> None:
    code, _, err = await qmstats(database.admin_url, "campaigns", "open", "--id", "2018", "--theme", "质量第一",
                                 "--starts-on", "2018-09-31", "--ends-on", "2018-10-30")
    assert code == 1, err
    assert "starts_on" in one_error_line(err)
    code, _, err = await qmstats(database.admin_url, "campaigns", "open", "--id", "2018", "--theme", "质量第一",
                                 "--starts-on", "2018-09-30", "--ends-on", "2018-09-01")
    assert code == 1, err
    assert "ends_on is before starts_on" in one_error_line(err)

    (tmp_path / "bad.txt").write_text("110000 北京市\n11010 东城区\n", encoding="utf-8")
    code, _, err = await qmstats(database.admin_url, "regions", "import", str(tmp_path / "bad.txt"), "--year", "2018")
    assert code == 1, err
    assert "line 2" in one_error_line(err)
    (tmp_path / "latin1.txt").write_bytes("110000 Pékin\n".encode("latin-1"))
    code, _, err = await qmstats(database.admin_url, "regions", "import", str(tmp_path / "latin1.txt"), "--year",
                                 "2018")
    assert code == 1, err
    assert "UTF-8" in one_error_line(err)
    assert await admin_conn.fetchval("SELECT count(*) FROM events") == 0
    assert await admin_conn.fetchval("SELECT count(*) FROM region_lists") == 0


async def test_campaign_lifecycle_on_the_command_line_answers_as_http_does(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection) -> None:
    code, _, err = await qmstats(database.admin_url, *OPEN_2018)
    assert code == 0, err
    assert "campaign 2018 opened at position 1" in err
    code, _, err = await qmstats(database.admin_url, *OPEN_2018)  # HTTP: 200, the original opening
    assert code == 0, err
    assert "already opened, at position 1" in err
    code, _, err = await qmstats(database.admin_url, *OPEN_2018[:5], "另一个主题", *OPEN_2018[6:])
    assert code == 1  # HTTP: 409
    assert "different theme or window" in one_error_line(err)

    close_id = str(uuid.uuid4())
    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2018", "--event-id", close_id)
    assert code == 0, err
    assert "campaign 2018 closed at position 2" in err
    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2018", "--event-id", close_id)
    assert code == 0, err
    assert "already closed, at position 2" in err
    over_http = await client.post("/v1/campaigns/2018/close", json={"event_id": close_id}, headers=keys.admin)
    assert over_http.status == 200
    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2018")
    assert code == 1
    assert "already closed" in one_error_line(err)
    code, _, err = await qmstats(database.admin_url, "campaigns", "reopen", "--id", "2018", "--note",
                                 "late reports")
    assert code == 0, err
    assert "campaign 2018 reopened at position 3" in err
    code, _, err = await qmstats(database.admin_url, "campaigns", "close", "--id", "2099")
    assert code == 1
    assert "no campaign 2099" in one_error_line(err)
    assert (await (await client.get("/v1/campaigns/2018", headers=keys.viewer)).json())["status"] == "open"
    assert await admin_conn.fetchval("SELECT count(*) FROM events") == 3


async def test_a_reporter_key_needs_a_region_that_exists(database: Database, admin_conn: asyncpg.Connection,
                                                         areacodes: Path) -> None:
    code, _, err = await qmstats(database.admin_url, "regions", "import", str(areacodes / "2017.txt"), "--year",
                                 "2017")
    assert code == 0, err
    code, out, err = await qmstats(database.admin_url, "keys", "create", "--role", "reporter", "--region", "339999",
                                   "--name", "nowhere")
    assert code == 1
    assert "339999" in one_error_line(err)
    assert "qm." not in out
    code, out, err = await qmstats(database.admin_url, "keys", "create", "--role", "reporter", "--region", "330500",
                                   "--name", "Huzhou")
    assert code == 0, err
    assert await admin_conn.fetchval("SELECT count(*) FROM api_keys") == 1


async def test_every_cli_filter_is_checked_as_the_http_api_checks_it(
        client: TestClient, keys: Keys, database: Database, campaign: dict[str, str], tmp_path: Path) -> None:
    assert (await client.post("/v1/events", json=event(), headers=keys.reporter)).status == 201
    code, out, err = await qmstats(database.admin_url, "export")
    assert code == 0, err
    (tmp_path / "log.ndjson").write_text(out)
    log = str(tmp_path / "log.ndjson")

    # (command, the HTTP request that asks the same, its status, words of the one error line)
    cases = [
        (("export", "--type", "bogus"), "/v1/events?type=bogus", 422, "unknown event type 'bogus'"),
        (("export", "--campaign", "20 17"), "/v1/events?campaign=20%2017", 422, "campaign id"),
        (("export", "--region", "99"), "/v1/events?region=99", 422, "GB/T 2260"),
        (("export", "--region", "990000"), "/v1/events?region=990000", 422, "GB/T 2260"),
        (("verify", "--campaign", "nope"), "/v1/audit/verify?campaign=nope", 404, "no campaign nope"),
        (("verify", "--campaign", "no/pe"), "/v1/audit/verify?campaign=no%2Fpe", 422, "campaign id"),
        (("replay", log, "--campaign", "nope"), "/v1/campaigns/nope/dashboard", 404, "no campaign nope"),
        (("replay", log, "--region", "99"), "/v1/campaigns/2017/dashboard?region=99", 422, "GB/T 2260"),
    ]
    for args, path, status, words in cases:
        assert (await client.get(path, headers=keys.admin)).status == status, path
        code, out, err = await qmstats(database.admin_url, *args)
        assert (code, out) == (1, ""), (args, code, out, err)
        assert words in one_error_line(err), (args, err)
    code, out, err = await qmstats(database.admin_url, "replay", log, "--campaign", "2017")
    assert code == 0, err
    assert list(json.loads(out)["dashboards"]) == ["2017"]


async def test_a_pinned_head_without_its_hash_is_refused_not_a_tamper_alarm(database: Database) -> None:
    for since in ("5", "5:", "5:abc", ":" + "0" * 64, "-1:" + "0" * 64, "5:" + "g" * 64, "0:" + "1" * 64):
        code, out, err = await qmstats(database.admin_url, "verify", "--since-head", since)
        assert (code, out) == (1, ""), (since, out)
        assert "POSITION:HASH" in one_error_line(err), since
    code, out, _ = await qmstats(database.admin_url, "verify", "--since-head", "0:" + "0" * 64)
    assert (code, json.loads(out)["ok"]) == (0, True)


async def test_serve_refuses_a_port_or_host_it_cannot_listen_on(tmp_path: Path) -> None:
    for args, words in ((("--port", "99999"), "--port"), (("--port", "0"), "--port"),
                        (("--host", "999.1.1.1", "--port", "18649"), "cannot listen on 999.1.1.1:18649")):
        proc = await asyncio.create_subprocess_exec(
            str(QMSTATS), "serve", *args, "--data-dir", str(tmp_path / "new"), env=no_database_env(tmp_path / "x"),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode == 2, (args, err)
        assert "Traceback" not in err.decode()
        assert "listening" not in err.decode() + out.decode()
        assert words in err.decode(), (args, err)
        assert "another qmstats" not in err.decode()
    assert not (tmp_path / "new").exists()


async def test_a_bad_setting_is_one_line_naming_it(database: Database, tmp_path: Path) -> None:
    for name, value in (("DATABASE_URL", "notaurl"), ("PORT", "99999"), ("POOL_MAX_SIZE", "0"),
                        ("PROJECTOR_BATCH_SIZE", "-5"), ("RATE_LIMIT_PER_SECOND", "0")):
        env = qmstats_env_for(database.admin_url) | {f"QMSTATS_{name}": value}
        for args in (("keys", "list"), ("serve", "--data-dir", str(tmp_path / "new"))):
            proc = await asyncio.create_subprocess_exec(str(QMSTATS), *args, env=env, cwd=tmp_path,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            async with asyncio.timeout(60):
                _, err = await proc.communicate()
            assert proc.returncode == 2, (name, args, err)
            assert f"QMSTATS_{name}" in one_error_line(err.decode()), (name, err)
    assert not (tmp_path / "new").exists()


async def test_key_names_and_reporter_regions_are_checked(database: Database, admin_conn: asyncpg.Connection) -> None:
    code, out, err = await qmstats(database.admin_url, "keys", "create", "--role", "reporter", "--region", "999999",
                                   "--name", "x")
    assert (code, out) == (1, "")
    line = one_error_line(err)
    assert "999999" in line, line
    assert "needs --region" not in line, line
    for name in ("", "   ", "x" * 201):
        code, out, err = await qmstats(database.admin_url, "keys", "create", "--role", "viewer", "--name", name)
        assert (code, out) == (1, ""), name
        assert "--name" in one_error_line(err)
    assert await admin_conn.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_a_region_list_year_is_bounded_as_over_http(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection, tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("110000 北京市\n", encoding="utf-8")
    for year in ("-5", "0", "123456"):
        assert (await client.get(f"/v1/regions?year={year}", headers=keys.viewer)).status == 422, year
        code, _, err = await qmstats(database.admin_url, "regions", "import", str(tmp_path / "list.txt"), "--year",
                                     year)
        assert code == 2, (year, err)
        assert "--year" in err, err
    assert await admin_conn.fetchval("SELECT count(*) FROM region_lists") == 0


async def test_a_reader_that_closes_the_pipe_early_is_not_a_database_error(
        client: TestClient, keys: Keys, database: Database) -> None:
    # `qmstats export | head -1`: the reader has what it wanted. That is no "database error" (exit 2), and no
    # traceback either: the command stops quietly, exit 1 like every command whose output is cut short.
    assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
    for _ in range(3):  # a log larger than the pipe's buffer, so the writes meet the closed pipe
        batch = {"events": [event() for _ in range(1000)]}
        assert (await client.post("/v1/events", json=batch, headers=keys.reporter)).status == 201
    read, write = os.pipe()
    process = await asyncio.create_subprocess_exec(QMSTATS, "export", env=qmstats_env_for(database.admin_url),
                                                   cwd=ROOT, stdout=write, stderr=asyncio.subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        assert reader.readline().startswith(b"{")  # one line, then the reader goes away
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert (process.returncode, err.decode()) == (1, "")
