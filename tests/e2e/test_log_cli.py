"""The verifiable log from the command line: `qmstats log key`, offline `qmstats proof verify`, and
`qmstats verify` recomputing the tree against every stored tile and checkpoint."""

import json
import os
import stat
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.notes import Signer, Verifier
from tests.audit_support import qmstats
from tests.conftest import LOG_SIGNER, Database, Keys
from tests.e2e.wire import logged
from tests.factories import event
from tests.projection_support import post_events, run_qmstats

pytestmark = pytest.mark.usefixtures("campaign")


def offline_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """No database at all: only a data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env["QMSTATS_DATA_DIR"] = str(tmp_path / "data")
    env |= {f"QMSTATS_{k.upper()}": v for k, v in settings.items()}
    return env


async def test_log_key_creates_the_key_once_and_prints_only_the_verifier_key(tmp_path: Path) -> None:
    env = offline_env(tmp_path, log_origin="stats.example.gov.cn/qmstats")
    code, out, err = await run_qmstats("log", "key", env=env)
    assert code == 0, err
    vkey = out.strip()
    verifier = Verifier.parse(vkey)
    assert verifier.name == "stats.example.gov.cn/qmstats"
    key_file = tmp_path / "data" / "log-signing-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip()
    assert Signer.parse(secret).verifier == verifier
    assert secret.split("+", 4)[4] not in out + err
    again = await run_qmstats("log", "key", env=env)
    assert again[1].strip() == vkey  # the same key, not a new one

    given = Signer.generate("given.example/log")
    code, out, _ = await run_qmstats("log", "key", env=offline_env(tmp_path, log_signing_key=given.private_text()))
    assert (code, out.strip()) == (0, given.verifier.vkey)
    code, _, err = await run_qmstats("log", "key", env=offline_env(tmp_path, log_signing_key="PRIVATE+KEY+x"))
    assert code == 1
    assert "not a signing key" in err


async def save(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_proof_verify_checks_a_receipt_or_a_json_proof_offline(
        client: TestClient, keys: Keys, tmp_path: Path) -> None:
    mine = event()
    head = await post_events(client, keys.reporter, [event(), mine, event()])
    note = await logged(client, keys.viewer, head)
    receipt = await (await client.get(f"/v1/events/{mine['event_id']}/proof", params={"format": "tlog-proof"},
                                      headers=keys.auditor)).text()
    proof_json = await (await client.get(f"/v1/events/{mine['event_id']}/proof", headers=keys.auditor)).text()
    record: dict[str, Any] = (await (await client.get(f"/v1/events/{mine['event_id']}",
                                                      headers=keys.auditor)).json())["event"]
    vkey = LOG_SIGNER.verifier.vkey
    env = offline_env(tmp_path)  # no database: the check needs only the files and the key
    receipt_file = await save(tmp_path, "proof.tlog-proof", receipt)
    event_file = await save(tmp_path, "event.json", json.dumps(record, ensure_ascii=False))
    json_file = await save(tmp_path, "proof.json", proof_json)
    checkpoint_file = await save(tmp_path, "checkpoint", note)

    async def verify(*args: str) -> tuple[int, str, str]:
        return await run_qmstats("proof", "verify", *args, env=env)

    code, out, err = await verify(str(receipt_file), "--event", str(event_file), "--key", vkey)
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] is True
    assert (result["leaf_index"], result["event_id"]) == (record["position"] - 1, mine["event_id"])
    code, out, err = await verify(str(json_file), "--event", str(event_file), "--key", vkey,
                                  "--checkpoint", str(checkpoint_file))
    assert code == 0, err
    code, out, err = await verify(str(json_file), "--key", vkey)
    assert code == 0, err
    assert "no --event" in err

    tampered = await save(tmp_path, "tampered.json", json.dumps({**record, "region": "330103"}))
    other_key = Signer.generate(LOG_SIGNER.name).verifier.vkey
    for args, says in [((str(receipt_file), "--event", str(tampered), "--key", vkey), "does not lead"),
                       ((str(receipt_file), "--event", str(event_file), "--key", other_key), "signature"),
                       ((str(json_file), "--event", str(tampered), "--key", vkey), "leaf_hash")]:
        code, _, err = await verify(*args)
        assert code == 4, (args, err)
        assert says in err, err
    code, _, err = await verify(str(receipt_file), "--key", vkey)
    assert code == 1
    assert "--event" in err


async def test_verify_recomputes_the_tree_and_names_a_tampered_position(
        client: TestClient, keys: Keys, database: Database, admin_conn: asyncpg.Connection) -> None:
    head = await post_events(client, keys.reporter, [event() for _ in range(299)])
    await logged(client, keys.viewer, head)
    code, out, err = await qmstats(database.admin_url, "verify")
    assert code == 0, out + err
    tree = json.loads(out)["tree"]
    assert tree["ok"] is True
    assert tree["leaves"] >= 300
    assert tree["tiles"] == 1
    assert tree["checkpoints"] >= 1

    await admin_conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    try:
        await admin_conn.execute("UPDATE events SET region = '330103' WHERE position = 77")
    finally:
        await admin_conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    code, out, err = await qmstats(database.admin_url, "verify")
    report = json.loads(out)
    assert code == 4, err
    assert (report["ok"], report["first_bad_position"]) == (False, 77)
    assert (report["tree"]["ok"], report["tree"]["first_bad_position"]) == (False, 77)
