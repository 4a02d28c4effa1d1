"""The verifiable log over HTTP: checkpoint and key, inclusion proofs (JSON and tlog-proof receipts),
consistency proofs and tiles, checked with the client-side code only, against events read from the API."""

import asyncio
import hashlib
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.checkpoints import Checkpoint, check_inclusion, open_checkpoint, parse_receipt
from events.merkle import leaf_hash, root_of, verify_consistency
from events.notes import Verifier
from events.tiles import split_hashes
from services.settings import Settings
from tests.conftest import LOG_SIGNER, Keys
from tests.conftest import test_settings as settings_for
from tests.e2e.wire import expect_problem, logged
from tests.factories import event
from tests.projection_support import post_events

pytestmark = pytest.mark.usefixtures("campaign")
FIELDS = ("campaign", "data", "event_id", "occurred_at", "position", "recorded_at", "recorded_by", "region",
          "request_id", "schema_version", "type")


def canonical(exported: dict[str, Any]) -> bytes:
    """docs/canonical-form.md, as an outside verifier writes it."""
    body = {k: exported[k] for k in FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def signed_checkpoint(client: TestClient, keys: Keys, size: int, *, within: float = 15) -> tuple[str, Checkpoint]:
    """Poll GET /v1/log/checkpoint until it covers ``size`` events; the note and what it states."""
    async with asyncio.timeout(within):
        while True:
            response = await client.get("/v1/log/checkpoint", headers=keys.viewer)
            if response.status == 200:  # before the integrator's first signature: 404 with Retry-After
                verifier = Verifier.parse(await (await client.get("/v1/log/key", headers=keys.viewer)).text())
                note = await response.text()
                checkpoint = open_checkpoint(note, verifier)
                if checkpoint.size >= size:
                    return note, checkpoint
            await asyncio.sleep(0.05)


async def exported(client: TestClient, keys: Keys, event_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get(f"/v1/events/{event_id}", headers=keys.auditor)).json()
    return body["event"]  # type: ignore[no-any-return]


async def test_checkpoint_and_key_are_c2sp_text_signed_by_the_log_key(client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event() for _ in range(5)])
    note, checkpoint = await signed_checkpoint(client, keys, head)
    key = await client.get("/v1/log/key", headers=keys.reporter)
    assert key.status == 200
    assert key.content_type == "text/plain"
    assert (await key.text()).strip() == LOG_SIGNER.verifier.vkey
    response = await client.get("/v1/log/checkpoint", headers=keys.reporter)
    assert response.content_type == "text/plain"
    assert response.charset == "utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert checkpoint.origin == "qmstats.test/log"
    lines = note.split("\n")
    assert lines[:3] == [checkpoint.origin, str(checkpoint.size), lines[2]]
    assert lines[3] == ""
    assert lines[4].startswith("— qmstats.test/log ")
    log = [await exported(client, keys, e["event_id"]) for e in
           (await (await client.get("/v1/events", headers=keys.auditor)).json())["events"]]
    assert checkpoint.root == root_of([leaf_hash(canonical(e)) for e in log[:checkpoint.size]])


async def test_an_inclusion_proof_verifies_offline_in_json_and_as_a_receipt(client: TestClient, keys: Keys) -> None:
    mine = event()
    head = await post_events(client, keys.reporter, [event(), mine, *[event() for _ in range(9)]])
    note, checkpoint = await signed_checkpoint(client, keys, head)
    proof = await client.get(f"/v1/events/{mine['event_id']}/proof", headers=keys.reporter)
    assert proof.status == 200, await proof.text()
    assert proof.headers["Cache-Control"] == "no-cache"  # "the latest checkpoint" moves on
    body = await proof.json()
    record = await exported(client, keys, mine["event_id"])
    leaf = leaf_hash(canonical(record))
    assert body["leaf_index"] == record["position"] - 1 == 2
    assert body["tree_size"] == checkpoint.size
    assert body["leaf_hash"] == leaf.hex()
    assert body["checkpoint"] == note
    path = [bytes.fromhex(h) for h in body["audit_path"]]
    assert check_inclusion(leaf, body["leaf_index"], path, body["checkpoint"], LOG_SIGNER.verifier).size == head

    for how in ({"params": {"format": "tlog-proof"}}, {"headers": {"Accept": "text/plain"}}):
        headers = {**keys.auditor, **how.get("headers", {})}
        response = await client.get(f"/v1/events/{mine['event_id']}/proof", params=how.get("params"), headers=headers)
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
        assert text.startswith("c2sp.org/tlog-proof@v1\nindex 2\n")
        receipt = parse_receipt(text)
        assert receipt.path == path
        assert receipt.checkpoint == note
        check_inclusion(leaf, receipt.index, receipt.path, receipt.checkpoint, LOG_SIGNER.verifier)
        tampered = dict(record, data={**record["data"], "dens_busted": 4})
        with pytest.raises(ValueError, match="does not lead"):
            check_inclusion(leaf_hash(canonical(tampered)), receipt.index, receipt.path, receipt.checkpoint,
                            LOG_SIGNER.verifier)


async def test_the_proof_route_negotiates_media_ranges_with_q_values(client: TestClient, keys: Keys) -> None:
    # Issue 12.3's kind on the newer route: Accept is parsed, not searched for a substring.
    mine = event()
    head = await post_events(client, keys.reporter, [mine])
    await signed_checkpoint(client, keys, head)
    url = f"/v1/events/{mine['event_id']}/proof"
    for accept, expected in (("text/plain", "text/plain"), ("text/plain;q=0, */*", "application/json"),
                             ("application/json;q=0, text/plain", "text/plain"),
                             ("text/plain, application/json;q=0.1", "text/plain"),
                             ("application/json, text/plain", "application/json"), ("*/*", "application/json"),
                             ("text/*", "text/plain"), ("", "application/json")):
        response = await client.get(url, headers={**keys.auditor, "Accept": accept})
        assert (response.status, response.content_type) == (200, expected), accept
    for accept in ("text/plainx", "image/png", "text/plain;q=0"):
        response = await client.get(url, headers={**keys.auditor, "Accept": accept})
        await expect_problem(response, 406, "not-acceptable", accept)
    # format= wins over Accept, as documented.
    response = await client.get(url + "?format=tlog-proof", headers={**keys.auditor, "Accept": "application/json"})
    assert (response.status, response.content_type) == (200, "text/plain")


async def test_proofs_against_an_older_checkpoint_and_consistency_between_them(
        client: TestClient, keys: Keys) -> None:
    first = event()
    head = await post_events(client, keys.reporter, [first, event(), event()])
    old_note, old = await signed_checkpoint(client, keys, head)
    head = await post_events(client, keys.reporter, [event() for _ in range(300)])
    new_note, new = await signed_checkpoint(client, keys, head)
    assert new.size > old.size

    pinned = await client.get(f"/v1/events/{first['event_id']}/proof", params={"tree_size": old.size},
                              headers=keys.auditor)
    assert "immutable" in pinned.headers["Cache-Control"]  # a named tree size: the answer never changes
    at_old = await pinned.json()
    assert (at_old["tree_size"], at_old["checkpoint"]) == (old.size, old_note)

    consistency = await client.get("/v1/log/consistency", params={"from": old.size}, headers=keys.auditor)
    assert consistency.status == 200, await consistency.text()
    body = await consistency.json()
    assert (body["from"], body["to"], body["checkpoint"]) == (old.size, new.size, new_note)
    proof = [bytes.fromhex(h) for h in body["proof"]]
    assert verify_consistency(old.size, new.size, old.root, new.root, proof)
    assert not verify_consistency(old.size, new.size, hashlib.sha256(b"other").digest(), new.root, proof)
    explicit = await (await client.get("/v1/log/consistency", params={"from": old.size, "to": new.size},
                                       headers=keys.admin)).json()
    assert explicit == body

    await expect_problem(await client.get("/v1/log/consistency", headers=keys.auditor), 422, "invalid-parameter")
    await expect_problem(await client.get("/v1/log/consistency", params={"from": old.size, "to": old.size - 1},
                                          headers=keys.auditor), 404, "no-checkpoint")
    await expect_problem(await client.get("/v1/log/consistency", params={"from": new.size + 1, "to": new.size},
                                          headers=keys.auditor), 422, "invalid-parameter")


async def test_tree_sizes_without_a_checkpoint_and_events_beyond_the_tree(
        client: TestClient, keys: Keys, admin_conn: asyncpg.Connection) -> None:
    _, older = await signed_checkpoint(client, keys, 0)
    first = event()
    head = await post_events(client, keys.reporter, [first, event()])
    _, checkpoint = await signed_checkpoint(client, keys, head)
    beyond = await client.get(f"/v1/events/{first['event_id']}/proof", params={"tree_size": checkpoint.size + 100},
                              headers=keys.auditor)
    problem = await expect_problem(beyond, 404, "no-checkpoint")
    assert "Retry-After" not in beyond.headers
    assert str(checkpoint.size) in problem["detail"]
    # An older checkpoint whose tree ends before the event: waiting will not change that.
    not_in = await client.get(f"/v1/events/{first['event_id']}/proof", params={"tree_size": older.size},
                              headers=keys.auditor)
    await expect_problem(not_in, 409, "not-in-tree")
    assert "Retry-After" not in not_in.headers
    unsigned = await admin_conn.fetchval("SELECT min(s) FROM generate_series(1, $1) s WHERE s NOT IN "
                                         "(SELECT tree_size FROM log_checkpoints)", checkpoint.size)
    if unsigned is not None:
        await expect_problem(await client.get(f"/v1/events/{first['event_id']}/proof",
                                              params={"tree_size": unsigned}, headers=keys.auditor),
                             404, "no-checkpoint")
    await expect_problem(await client.get("/v1/events/00000000-0000-4000-8000-000000000000/proof",
                                          headers=keys.auditor), 404, "not-found")
    await expect_problem(await client.get("/v1/events/not-a-uuid/proof", headers=keys.auditor), 404, "not-found")
    await expect_problem(await client.get(f"/v1/events/{first['event_id']}/proof", params={"format": "xml"},
                                          headers=keys.auditor), 422, "invalid-parameter")


@pytest.mark.parametrize("settings", [settings_for(log_checkpoint_interval_seconds=3600)], ids=["hourly"])
async def test_an_event_after_the_latest_checkpoint_says_when_to_ask_again(
        client: TestClient, keys: Keys, settings: Settings) -> None:
    # The first checkpoint is signed at once; with an hour between checkpoints, later events wait.
    _, first = await signed_checkpoint(client, keys, 0)
    waiting = event()
    head = await post_events(client, keys.reporter, [waiting])
    assert head > first.size
    response = await client.get(f"/v1/events/{waiting['event_id']}/proof", headers=keys.auditor)
    problem = await expect_problem(response, 409, "not-in-tree")
    assert response.headers["Retry-After"] == "1"
    assert "within about a second" in problem["detail"]


@pytest.mark.parametrize("settings", [settings_for(run_integrator=False)], ids=["no-integrator"])
async def test_before_the_first_checkpoint_the_log_routes_say_so(
        client: TestClient, keys: Keys, settings: Settings) -> None:
    posted = event()
    await post_events(client, keys.reporter, [posted])
    for path in ("/v1/log/checkpoint", "/v1/log/key", f"/v1/events/{posted['event_id']}/proof", "/v1/log/tile/0/000"):
        response = await client.get(path, headers=keys.auditor)
        await expect_problem(response, 404, "no-checkpoint", path)
        assert response.headers["Retry-After"] == "1"
    readiness = await (await client.get("/readyz")).json()
    assert "integrator" not in readiness["checks"]


async def test_tiles_follow_tlog_tiles_and_match_the_events(client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event() for _ in range(300)])
    _, checkpoint = await signed_checkpoint(client, keys, head)
    assert checkpoint.size == 301
    events = (await (await client.get("/v1/events", headers=keys.auditor)).json())["events"]
    leaves = [leaf_hash(canonical(await exported(client, keys, e["event_id"]))) for e in events]

    full = await client.get("/v1/log/tile/0/000", headers=keys.viewer)
    assert full.status == 200
    assert full.content_type == "application/octet-stream"
    assert "immutable" in full.headers["Cache-Control"]
    assert split_hashes(await full.read()) == leaves[:256]
    partial = await client.get("/v1/log/tile/0/001.p/45", headers=keys.reporter)
    assert split_hashes(await partial.read()) == leaves[256:301]
    shorter = await client.get("/v1/log/tile/0/001.p/3", headers=keys.reporter)
    assert split_hashes(await shorter.read()) == leaves[256:259]
    up = await client.get("/v1/log/tile/1/000.p/1", headers=keys.viewer)
    assert split_hashes(await up.read()) == [root_of(leaves[:256])]
    for path in ("/v1/log/tile/0/001", "/v1/log/tile/0/001.p/46", "/v1/log/tile/0/1", "/v1/log/tile/0/x000/000",
                 "/v1/log/tile/entries/000", "/v1/log/tile/1/000"):
        await expect_problem(await client.get(path, headers=keys.viewer), 404, "not-found", path)


async def test_a_reporter_proves_only_events_in_its_scope(client: TestClient, keys: Keys) -> None:
    own, other = event(region="330102"), event(region="110101")
    await post_events(client, keys.reporter, [own])
    head = await post_events(client, keys.admin, [other])
    await signed_checkpoint(client, keys, head)
    assert (await client.get(f"/v1/events/{own['event_id']}/proof", headers=keys.reporter)).status == 200
    await expect_problem(await client.get(f"/v1/events/{other['event_id']}/proof", headers=keys.reporter),
                         403, "forbidden")
    await expect_problem(await client.get(f"/v1/events/{own['event_id']}/proof", headers=keys.viewer),
                         403, "forbidden")
    await expect_problem(await client.get("/v1/log/consistency", params={"from": 1}, headers=keys.reporter),
                         403, "forbidden")


@pytest.mark.parametrize("settings", [settings_for(public_dashboard=True)], ids=["public"])
async def test_a_public_dashboard_opens_checkpoint_key_and_tiles_but_not_proofs(
        client: TestClient, keys: Keys, settings: Settings) -> None:
    posted = event()
    head = await post_events(client, keys.reporter, [posted])
    await signed_checkpoint(client, keys, head)
    for path in ("/v1/log/checkpoint", "/v1/log/key", "/v1/log/tile/0/000.p/1"):
        assert (await client.get(path)).status == 200, path
    for path in (f"/v1/events/{posted['event_id']}/proof", "/v1/log/consistency?from=1"):
        await expect_problem(await client.get(path), 401, "unauthenticated", path)


async def test_figures_at_a_position_and_the_final_summary_name_their_checkpoint(
        client: TestClient, keys: Keys) -> None:
    head = await post_events(client, keys.reporter, [event() for _ in range(4)])
    note = await logged(client, keys.viewer, head)
    at = await client.get("/v1/campaigns/2017/dashboard", params={"at_position": 3}, headers=keys.auditor)
    body = await at.json()
    assert "ETag" in at.headers
    first = body["checkpoint"]
    assert first["tree_size"] >= 3
    checkpoint = open_checkpoint(first["note"], LOG_SIGNER.verifier)
    assert (checkpoint.size, checkpoint.root.hex()) == (first["tree_size"], first["root"])
    assert checkpoint.size <= int(note.split("\n")[1])
    # The covering checkpoint is the first one that holds the position: it never changes afterwards.
    await post_events(client, keys.reporter, [event()])
    again = await client.get("/v1/campaigns/2017/dashboard", params={"at_position": 3}, headers=keys.auditor)
    assert (await again.json())["checkpoint"] == first

    # The identical sample events are possible duplicates (issue 15): closing over them needs force and a note.
    closed = await client.post("/v1/campaigns/2017/close", json={"force": True, "note": "test data"},
                               headers=keys.admin)
    assert closed.status in (200, 201), await closed.text()
    position = (await closed.json())["event"]["position"]
    await logged(client, keys.viewer, position)
    summary = await (await client.get("/v1/campaigns/2017/summary", headers=keys.viewer)).json()
    assert summary["final"] is True
    assert summary["checkpoint"]["tree_size"] >= position
    stated = open_checkpoint(summary["checkpoint"]["note"], LOG_SIGNER.verifier)
    assert stated.size == summary["checkpoint"]["tree_size"]
