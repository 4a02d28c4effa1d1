"""The flags projection's read tables: loading what a batch needs, writing its changes, reading flags.

SQL lives here and only here. The checkpoint row is moved in the same transaction as the rows.
"""

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

import orjson

from events.catalogue import CATALOGUE
from events.records import RecordedEvent
from events.regions import code_prefix, is_within, parent_of
from events.store import Connection, translating
from projections.baselines import BaselineMemory, HeldLists, K, V
from projections.quality import (
    BLOCKING_CODES,
    Current,
    FlagChanges,
    QualityState,
    Values,
    fingerprint,
    flag_id,
    min_history,
    own_window,
    peer_window,
    province_of,
)
from projections.tables import CheckpointMoved

CHECKPOINT: Final = "flags"
TABLES: Final = ("quality_facts", "quality_sums", "quality_fingerprints", "quality_flags")
Status = Literal["open", "reviewed", "resolved", "all"]
_STATUS_SQL: Final = (
    "CASE WHEN resolved_at IS NOT NULL THEN 'resolved' WHEN review IS NOT NULL THEN 'reviewed' ELSE 'open' END")
_FLAG_COLUMNS: Final = ("id, code, severity, campaign, event_id::text AS event_id, region, type, metric, observed, "
                        "expected, score, message_zh, message_en, basis, related_event_id::text AS related_event_id, "
                        f"raised_at, resolved_at, reviewed_at, review, {_STATUS_SQL} AS status")


@translating
async def flags_checkpoint(conn: Connection) -> int:
    """The position the flags projection reflects."""
    value = await conn.fetchval("SELECT position FROM quality_checkpoint WHERE name = $1", CHECKPOINT)
    return int(value or 0)


@translating
async def load_state(conn: Connection, events: Sequence[RecordedEvent],
                     memory: BaselineMemory | None = None) -> QualityState:
    """The slice of the quality tables that scoring ``events`` needs, as of just before them.

    With ``memory`` (the flags projector's, valid at the checkpoint), baselines and sums come from it and only
    what it lacks is read; the fold then updates the memory in place.
    """
    state = QualityState() if memory is None else memory.state()
    targets = {t for e in events if (t := e.target) is not None}
    current = state.current
    if targets:
        rows = await conn.fetch("SELECT event_id::text AS event_id, campaign, region, type, amounts::text AS amounts, "
                                "position FROM quality_facts WHERE event_id = ANY($1::uuid[])", list(targets))
        for row in rows:
            if row["event_id"] not in current:
                current[row["event_id"]] = Current(row["type"], row["campaign"], row["region"], row["position"],
                                                   _values(row["amounts"]))
    keys, withdrawn = _touched(events, current)
    if keys:
        withdrawals = sum(1 for e in events if e.target is not None)
        if memory is None:
            await _load_baselines(conn, state, keys, withdrawals)
        else:
            await _recall_baselines(conn, memory, keys, withdrawn, withdrawals)
    facts = [e for e in events if e.type in CATALOGUE and CATALOGUE[e.type].kind == "fact"]
    if facts:
        state.batch_prints = {e.event_id: fingerprint(e) for e in facts}
        rows = await conn.fetch("SELECT fingerprint, event_id::text AS event_id FROM quality_fingerprints "
                                "WHERE fingerprint = ANY($1::bytea[])", list(state.batch_prints.values()))
        state.fingerprints = {bytes(r["fingerprint"]): r["event_id"] for r in rows}
    retracted = [e.target for e in events if e.type == "event_retracted" and e.target is not None]
    if retracted:
        rows = await conn.fetch("SELECT fingerprint, event_id::text AS event_id FROM quality_fingerprints "
                                "WHERE event_id = ANY($1::uuid[])", retracted)
        state.fingerprints.update({bytes(r["fingerprint"]): r["event_id"] for r in rows})
    state.fingerprint_of = {owner: print_ for print_, owner in state.fingerprints.items()}
    await _load_sums(conn, state, {(c, p) for c, r, _ in keys if (p := province_of(r)) is not None}, memory)
    reviewed = [str(e.data["flag_id"]) for e in events if e.type == "flag_reviewed"]
    if reviewed:
        rows = await conn.fetch("SELECT id, region FROM quality_flags WHERE id = ANY($1::text[])", reviewed)
        state.flag_regions = {r["id"]: r["region"] for r in rows}
    return state


def _touched(events: Sequence[RecordedEvent], current: Mapping[str, Current | None]) -> tuple[
        set[tuple[str, str, str]], Counter[tuple[str, str, str]]]:
    """The (campaign, region, type) a batch touches, and how many values it may withdraw from each as it stood
    before the batch (``current``: the targets' values as they stand)."""
    keys: set[tuple[str, str, str]] = set()
    withdrawn: Counter[tuple[str, str, str]] = Counter()
    in_batch: dict[str, str] = {}  # event_id → type of the facts in this batch
    for event in events:
        if event.type in CATALOGUE and CATALOGUE[event.type].kind == "fact":
            keys.add((event.campaign, event.region, event.type))
            in_batch[event.event_id] = event.type
        elif (target := event.target) is not None:
            if (known := current.get(target)) is not None:
                for key in ((known.campaign, event.region, known.type), (known.campaign, known.region, known.type)):
                    keys.add(key)
                    withdrawn[key] += 1
            elif target in in_batch:  # a correction may move the fact to another region
                keys.add((event.campaign, event.region, in_batch[target]))
    return keys, withdrawn


async def _load_sums(conn: Connection, state: QualityState, provinces: set[tuple[str, str]],
                     memory: BaselineMemory | None) -> None:
    """The relation sums and relation flags of (campaign, province); with ``memory``, only those it lacks."""
    if memory is not None:
        if memory.complete:
            memory.provinces |= provinces
        provinces -= memory.provinces
        memory.provinces |= provinces
    if not provinces:
        return
    rows = await conn.fetch(
        "SELECT campaign, region, metric, value FROM quality_sums WHERE (campaign, region) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[]))", [c for c, _ in provinces], [p for _, p in provinces])
    state.sums.update({(r["campaign"], r["region"], r["metric"]): r["value"] for r in rows})
    ids = [flag_id("relation", c, p, "destroyed_value_yuan") for c, p in provinces]
    rows = await conn.fetch("SELECT id, region, resolved_at IS NULL AS open FROM quality_flags "
                            "WHERE id = ANY($1::text[])", ids)
    state.open_relations.update({r["id"]: r["open"] for r in rows})


async def _load_baselines(conn: Connection, state: QualityState, keys: Iterable[tuple[str, str, str]],
                          withdrawals: int) -> None:
    """The last facts of every key the batch touches: a window, plus one per withdrawal in the batch (a
    correction or retraction may take a fact out, and the next older one then belongs to the window)."""
    own: set[tuple[str, str]] = set()
    peers: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    nations: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for campaign, region, type_ in keys:
        own.add((region, type_))
        nations.setdefault((campaign, type_), []).append((region, type_))
        if (parent := parent_of(region)) is not None:
            peers.setdefault((campaign, parent, type_), []).append((region, type_))
    state.history.update(await _read_own(conn, sorted(own), own_window() + withdrawals))
    # Peers are a fallback: a pool is needed only if some region of the batch under that parent may have too
    # few facts of its own, even after every withdrawal in the batch took one of them.
    enough = min_history() + withdrawals
    pools = sorted(key for key, regions in peers.items()
                   if any(len(state.history.get(own_key, ())) < enough for own_key in regions))
    state.peers.update(await _read_pools(conn, pools, peer_window() + withdrawals))
    countries = sorted(key for key, regions in nations.items()
                       if any(len(state.history.get(own_key, ())) < enough for own_key in regions))
    state.national.update(await _read_nations(conn, countries, peer_window() + withdrawals))


async def _recall_baselines(conn: Connection, memory: BaselineMemory, keys: Iterable[tuple[str, str, str]],
                            withdrawn: Mapping[tuple[str, str, str], int], withdrawals: int) -> None:
    """Read into ``memory`` every list the batch touches that it lacks, or holds too short for the batch's
    withdrawals from it (``withdrawn``: per (campaign, region, type))."""
    own: dict[tuple[str, str], int] = {}
    pools: dict[tuple[str, str, str], int] = {}
    nations: dict[tuple[str, str], int] = {}
    for campaign, region, type_ in keys:
        taken = withdrawn.get((campaign, region, type_), 0)
        own[(region, type_)] = own.get((region, type_), 0) + taken
        nations[(campaign, type_)] = nations.get((campaign, type_), 0) + taken
        if (parent := parent_of(region)) is not None:
            pools[(campaign, parent, type_)] = pools.get((campaign, parent, type_), 0) + taken
    await _recall(conn, memory.history, own, _read_own, complete=memory.complete, withdrawals=withdrawals)
    await _recall(conn, memory.peers, pools, _read_pools, complete=memory.complete, withdrawals=withdrawals)
    await _recall(conn, memory.national, nations, _read_nations, complete=memory.complete, withdrawals=withdrawals)


async def _recall(conn: Connection, held: HeldLists[K, V], wanted: Mapping[K, int],
                  read: Callable[[Connection, Sequence[K], int], Awaitable[dict[K, list[V]]]], *, complete: bool,
                  withdrawals: int) -> None:
    held.touched.extend(wanted)
    missing = sorted(k for k, taken in wanted.items() if held.needs(k, taken, complete=complete))
    if not missing:
        return
    limit = held.window + withdrawals
    lists = await read(conn, missing, limit)
    for key in missing:
        held.read(key, lists.get(key, []), limit)


def _values(amounts: str) -> Values:
    """A fact's values as quality_facts holds them (jsonb: metric → the value as a decimal string)."""
    return {metric: Decimal(text) for metric, text in orjson.loads(amounts).items()}


async def _read_own(conn: Connection, keys: Sequence[tuple[str, str]],
                    limit: int) -> dict[tuple[str, str], list[tuple[int, Values]]]:
    """(region, type) → its last ``limit`` facts in position order (keys without facts left out)."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT k.i, v.position, v.amounts::text AS amounts FROM unnest($1::text[], $2::text[]) "
        "WITH ORDINALITY AS k(region, type, i) CROSS JOIN LATERAL (SELECT position, amounts FROM "
        "quality_facts q WHERE q.region = k.region AND q.type = k.type ORDER BY position DESC LIMIT $3) v",
        *_columns(keys), limit)
    lists: dict[tuple[str, str], list[tuple[int, Values]]] = {}
    for row in rows:
        lists.setdefault(keys[row["i"] - 1], []).append((row["position"], _values(row["amounts"])))
    for entries in lists.values():
        entries.reverse()  # read newest first; the fold wants position order
    return lists


async def _read_pools(conn: Connection, keys: Sequence[tuple[str, str, str]],
                      limit: int) -> dict[tuple[str, str, str], list[tuple[int, str, Values]]]:
    """(campaign, parent, type) → the last ``limit`` facts of parent's children in position order."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT k.i, v.position, v.region, v.amounts::text AS amounts FROM unnest($1::text[], $2::text[], "
        "$3::text[]) WITH ORDINALITY AS k(campaign, parent, type, i) CROSS JOIN LATERAL (SELECT position, region, "
        "amounts FROM quality_facts q WHERE q.campaign = k.campaign AND q.parent = k.parent AND q.type = k.type "
        "ORDER BY position DESC LIMIT $4) v", *_columns(keys), limit)
    return _pool_lists(keys, rows)


async def _read_nations(conn: Connection, keys: Sequence[tuple[str, str]],
                        limit: int) -> dict[tuple[str, str], list[tuple[int, str, Values]]]:
    """(campaign, type) → the last ``limit`` facts of every region in position order."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT k.i, v.position, v.region, v.amounts::text AS amounts FROM unnest($1::text[]) WITH ORDINALITY AS "
        "k(key, i) CROSS JOIN LATERAL (SELECT position, region, amounts FROM quality_facts q WHERE "
        "(q.campaign || '|' || q.type) = k.key ORDER BY position DESC LIMIT $2) v",
        ["|".join(key) for key in keys], limit)
    return _pool_lists(keys, rows)


def _pool_lists(keys: Sequence[K], rows: Iterable[Any]) -> dict[K, list[tuple[int, str, Values]]]:
    lists: dict[K, list[tuple[int, str, Values]]] = {}
    for row in rows:
        lists.setdefault(keys[row["i"] - 1], []).append((row["position"], row["region"], _values(row["amounts"])))
    for entries in lists.values():
        entries.reverse()
    return lists


@translating
async def write_changes(conn: Connection, changes: FlagChanges, *, from_position: int, to_position: int) -> None:
    """Write a batch's changes and move the checkpoint. Call inside a transaction; CheckpointMoved if it moved."""
    moved = await conn.fetchval("UPDATE quality_checkpoint SET position = $2, updated_at = now() "
                                "WHERE name = $1 AND position = $3 RETURNING position",
                                CHECKPOINT, to_position, from_position)
    if moved is None:
        raise CheckpointMoved(f"flags checkpoint is no longer at {from_position}")
    gone = [e for e, v in changes.values.items() if v is None]
    if gone:
        await conn.execute("DELETE FROM quality_facts WHERE event_id = ANY($1::uuid[])", gone)
    kept = [(event_id, campaign, region, parent, type_, _amounts(values), position)
            for event_id, fact in changes.values.items() if fact is not None
            for campaign, region, parent, type_, values, position in (fact,)]
    fresh = [row for row in kept if row[0] in changes.new_facts]
    if fresh:  # COPY: a new fact has no row to conflict with (an upsert cost most of the flags projector's time)
        await conn.copy_records_to_table("quality_facts", records=fresh, columns=[
            "event_id", "campaign", "region", "parent", "type", "amounts", "position"])
    moved = [row for row in kept if row[0] not in changes.new_facts]
    if moved:
        await conn.execute(
            "INSERT INTO quality_facts (event_id, campaign, region, parent, type, amounts, position) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], "
            "$7::bigint[]) ON CONFLICT (event_id) DO UPDATE SET campaign = excluded.campaign, region = "
            "excluded.region, parent = excluded.parent, amounts = excluded.amounts, position = excluded.position",
            *_columns(moved))
    if changes.sums:
        await conn.execute(
            "INSERT INTO quality_sums AS s (campaign, region, metric, value) SELECT * FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::text[]::numeric[]) ON CONFLICT (campaign, region, metric) DO UPDATE "
            "SET value = s.value + excluded.value", *_columns([(*k, v) for k, v in changes.sums.items()], numeric=3))
    if changes.dropped_fingerprints:
        await conn.execute("DELETE FROM quality_fingerprints WHERE fingerprint = ANY($1::bytea[])",
                           list(changes.dropped_fingerprints))
    added = [(p, *v) for p, v in changes.fingerprints.items() if v is not None]
    if added:  # a fingerprint is added only when the table had none (load_state read them): nothing to conflict
        await conn.copy_records_to_table("quality_fingerprints", records=added,
                                         columns=["fingerprint", "event_id", "campaign", "position"])
    latest = {f.id: f for f in changes.raised}  # a relation flag raised twice in one batch: keep the last
    if latest:
        rows = [(f.id, f.code, f.severity, f.campaign, f.event_id, f.region, f.type, f.metric, f.observed,
                 f.expected, str(f.score), f.message_zh, f.message_en, f.basis, f.related_event_id, f.raised_at)
                for f in latest.values()]
        await conn.execute(
            "INSERT INTO quality_flags (id, code, severity, campaign, event_id, region, type, metric, observed, "
            "expected, score, message_zh, message_en, basis, related_event_id, raised_at) SELECT * FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::text[], "
            "$9::text[], $10::text[], $11::text[]::numeric[], $12::text[], $13::text[], $14::text[], $15::uuid[], "
            "$16::bigint[]) ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, observed = excluded.observed, "
            "expected = excluded.expected, score = excluded.score, message_zh = excluded.message_zh, "
            "message_en = excluded.message_en, raised_at = excluded.raised_at, resolved_at = NULL",
            *_columns(rows, numeric=10))
    await _resolve(conn, changes)
    for review in changes.reviews:
        await conn.execute(
            "UPDATE quality_flags SET reviewed_at = $2, review = $3::jsonb WHERE id = $1", review.flag_id,
            review.position, orjson.dumps({"verdict": review.verdict, "note": review.note,
                                           "reviewed_by": review.reviewed_by, "event_id": review.event_id,
                                           "position": review.position}).decode())


async def _resolve(conn: Connection, changes: FlagChanges) -> None:
    for column, mapping, codes in (
            ("event_id", changes.resolved_events, ["unit_scale", "outlier", "possible_duplicate", "late_report"]),
            ("event_id", changes.resolved_values, ["unit_scale", "outlier"]),
            ("related_event_id", changes.resolved_related, ["possible_duplicate"])):
        if mapping:
            await conn.execute(
                f"UPDATE quality_flags f SET resolved_at = r.position FROM unnest($1::uuid[], $2::bigint[]) "
                f"AS r(event_id, position) WHERE f.{column} = r.event_id AND f.resolved_at IS NULL "
                "AND f.raised_at < r.position AND f.code = ANY($3::text[])",
                list(mapping), list(mapping.values()), codes)
    if changes.resolved_ids:
        await conn.execute(
            "UPDATE quality_flags f SET resolved_at = r.position FROM unnest($1::text[], $2::bigint[]) "
            "AS r(id, position) WHERE f.id = r.id AND f.resolved_at IS NULL",
            list(changes.resolved_ids), list(changes.resolved_ids.values()))


def _amounts(values: Values) -> str:
    """A fact's values as jsonb text: decimal strings, so they come back exactly as they went in."""
    return orjson.dumps({metric: str(value) for metric, value in values.items()}).decode()


def _columns(rows: Sequence[tuple[Any, ...]], numeric: int | None = None) -> list[list[Any]]:
    columns = [list(c) for c in zip(*rows, strict=True)]
    if numeric is not None:  # numerics travel as text: asyncpg's Decimal encoder is slow per value
        columns[numeric] = [str(v) for v in columns[numeric]]
    return columns


@translating
async def reset_flags(conn: Connection) -> None:
    """Empty the flags projection and put its checkpoint back to 0 (it then replays the whole log)."""
    async with conn.transaction():
        await conn.execute("SELECT position FROM quality_checkpoint WHERE name = $1 FOR UPDATE", CHECKPOINT)
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute("UPDATE quality_checkpoint SET position = 0, updated_at = now() WHERE name = $1",
                           CHECKPOINT)


@dataclass(frozen=True, slots=True)
class FlagQuery:
    """Which flags a reader wants."""

    campaign: str
    region: str | None = None
    status: Status = "open"
    code: str | None = None
    limit: int = 1000


@translating
async def read_flags(conn: Connection, query: FlagQuery) -> list[dict[str, Any]]:
    """Flags of a campaign, highest score first (then by id, so the order is stable)."""
    args: list[Any] = [query.campaign]
    where = ["campaign = $1"]
    if query.region is not None and (prefix := code_prefix(query.region)) is not None:
        args.append(prefix + "%")
        where.append(f"region LIKE ${len(args)}")
    if query.code is not None:
        args.append(query.code)
        where.append(f"code = ${len(args)}")
    if query.status != "all":
        args.append(query.status)
        where.append(f"{_STATUS_SQL} = ${len(args)}")
    args.append(query.limit)
    rows = await conn.fetch(f"SELECT {_FLAG_COLUMNS} FROM quality_flags WHERE {' AND '.join(where)} "
                            f"ORDER BY score DESC, id LIMIT ${len(args)}", *args)
    out = []
    for row in rows:
        if query.region is not None and not is_within(row["region"], query.region):
            continue
        item = dict(row)
        item["review"] = orjson.loads(row["review"]) if row["review"] is not None else None
        out.append(item)
    return out


@translating
async def open_blocking_flags(conn: Connection, campaign: str) -> list[dict[str, str]]:
    """The campaign's open flags that block closing it (unit_scale, possible_duplicate; issue 15), highest score
    first, each as {"id", "code", "region", "event_id"} strings: all of them, however many."""
    rows = await conn.fetch("SELECT id, code, region, event_id::text AS event_id FROM quality_flags "
                            "WHERE campaign = $1 AND code = ANY($2::text[]) AND resolved_at IS NULL AND review IS NULL "
                            "ORDER BY score DESC, id", campaign, sorted(BLOCKING_CODES))
    return [{k: str(row[k]) for k in ("id", "code", "region", "event_id")} for row in rows]


@translating
async def open_flag_counts(conn: Connection, campaign: str, *, at_position: int | None = None) -> dict[str, int]:
    """code → number of open flags of a campaign (now, or as they stood at ``at_position``)."""
    if at_position is None:
        rows = await conn.fetch("SELECT code, count(*) AS n FROM quality_flags WHERE campaign = $1 AND "
                                "resolved_at IS NULL AND review IS NULL GROUP BY code", campaign)
    else:
        rows = await conn.fetch(
            "SELECT code, count(*) AS n FROM quality_flags WHERE campaign = $1 AND raised_at <= $2 AND "
            "(resolved_at IS NULL OR resolved_at > $2) AND (reviewed_at IS NULL OR reviewed_at > $2) GROUP BY code",
            campaign, at_position)
    return {r["code"]: int(r["n"]) for r in rows}


@translating
async def find_flag(conn: Connection, flag_id_: str) -> dict[str, Any] | None:
    """One flag by id."""
    row = await conn.fetchrow(f"SELECT {_FLAG_COLUMNS} FROM quality_flags WHERE id = $1", flag_id_)
    if row is None:
        return None
    item = dict(row)
    item["review"] = orjson.loads(row["review"]) if row["review"] is not None else None
    return item
