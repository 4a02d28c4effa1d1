"""Shared by the projection and dashboard tests: a deterministic realistic mix of events, the figures
it must produce computed independently of ``projections/`` (plain sums, the region rule written out
again), checks of every figure the API shows against those sums, and bounded waits.

Nothing here imports ``projections``: what the projector must produce is restated from the
specification (SPEC.md §1, §4 and docs/decisions.md), so a mistake there cannot hide itself.
"""

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from events.coordination import PROJECTOR_LOCK
from events.region_store import import_region_list
from services.regionlists import read_region_list
from tests.factories import CAMPAIGN, correction, event, retraction
from tests.shared_data import AREACODES

ROOT = Path(__file__).resolve().parents[1]
QMSTATS = Path(sys.executable).parent / "qmstats"

CST = timezone(timedelta(hours=8))
NATION = "000000"
CAMPAIGN_ID = CAMPAIGN["id"]
WINDOW = [date(2017, 9, 1) + timedelta(days=i) for i in range(30)]

# The 31 mainland provincial-level divisions expected to report nationally (not 71, 81, 82).
MAINLAND = ("110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000", "310000", "320000",
            "330000", "340000", "350000", "360000", "370000", "410000", "420000", "430000", "440000", "450000",
            "460000", "500000", "510000", "520000", "530000", "540000", "610000", "620000", "630000", "640000",
            "650000")
MUNICIPALITIES = ("11", "12", "31", "50")

# Payload field → metric, per fact type (SPEC.md §1 with the names of docs/decisions.md).
METRICS_OF: dict[str, dict[str, str]] = {
    "raid_conducted": {"dens_busted": "dens_busted", "personnel": "personnel", "vehicles": "vehicles",
                       "cases": "cases", "seized_value_yuan": "seized_value_yuan"},
    "goods_destroyed": {"destroyed_value_yuan": "destroyed_value_yuan"},
    "inspection_completed": {"batches_sampled": "batches_sampled", "batches_passed": "batches_passed",
                             "enterprises": "inspected_enterprises"},
    "publicity_held": {"participants": "participants", "quality_workers": "quality_workers", "booths": "booths",
                       "consultations": "consultations"},
    "materials_distributed": {"copies": "materials_copies"},
    "media_reported": {"reports": "media_reports"},
    "lab_open_day_held": {"labs": "labs_opened", "visitors": "lab_visitors"},
    "pledge_signed": {"enterprises": "pledged_enterprises"},
    "brand_awarded": {"enterprises": "awarded_enterprises", "products": "awarded_products"},
}
# metric → (unit, label_zh), as SPEC.md §1 lists them.
UNITS: dict[str, tuple[str, str]] = {
    "dens_busted": ("个", "捣毁窝点"), "personnel": ("人次", "出动执法人员"), "vehicles": ("台次", "出动执法车辆"),
    "cases": ("起", "立案查处"), "seized_value_yuan": ("元", "查获货值"), "destroyed_value_yuan": ("元", "销毁货值"),
    "batches_sampled": ("批次", "抽查批次"), "batches_passed": ("批次", "合格批次"),
    "inspected_enterprises": ("家次", "受检企业"), "participants": ("人次", "参加群众"),
    "quality_workers": ("人次", "质量工作者"), "booths": ("个", "摊位"), "consultations": ("件", "咨询投诉"),
    "materials_copies": ("份", "宣传材料"), "media_reports": ("篇次", "新闻报道"), "labs_opened": ("个", "开放实验室"),
    "lab_visitors": ("人次", "接待群众"), "pledged_enterprises": ("家", "质量诚信承诺企业"),
    "awarded_enterprises": ("家", "获奖企业"), "awarded_products": ("个", "名牌产品"),
}
ALL_METRICS = tuple(UNITS)
MONEY = frozenset({"seized_value_yuan", "destroyed_value_yuan"})
LABEL_FIELD = {"raid_conducted": "category", "goods_destroyed": "category", "inspection_completed": "category",
               "media_reported": "channel"}


# --- regions, days and numbers, restated -------------------------------------------------------

def parent(code: str) -> str | None:
    """County XXYYZZ → XXYY00, except municipalities and XX90ZZ → XX0000; prefecture → province → nation."""
    if code == NATION:
        return None
    if code.endswith("0000"):
        return NATION
    if code.endswith("00") or code[:2] in MUNICIPALITIES or code[2:4] == "90":
        return code[:2] + "0000"
    return code[:4] + "00"


def lineage(code: str) -> list[str]:
    """The code and every region above it, up to the nation."""
    out: list[str] = []
    current: str | None = code
    while current is not None:
        out.append(current)
        current = parent(current)
    return out


def cst_day(occurred_at: str) -> date:
    """The calendar day of an RFC 3339 instant in China Standard Time."""
    return datetime.fromisoformat(occurred_at).astimezone(CST).date()


def ratio(numerator: Decimal, denominator: Decimal) -> str:
    """numerator ÷ denominator as docs/decisions.md says: exact within 10 decimals, else half-even to 10."""
    exact = Fraction(numerator) / Fraction(denominator)
    scaled = exact * 10**10
    rounded = round(scaled)  # round() of a Fraction is half-even
    text = f"{rounded // 10**10}.{rounded % 10**10:010d}".rstrip("0")
    return text.rstrip(".")


def shown(metric: str, value: Decimal) -> int | str:
    """How the API shows a total: money as an exact two-decimal string, counts as integers."""
    return f"{value:.2f}" if metric in MONEY else int(value)


# --- the region registry (the official 2017 MCA list) --------------------------------------------

def registry_file(year: int = 2017) -> Path:
    path = AREACODES / f"{year}.txt"
    if not path.is_file():
        pytest.fail(f"the shared region code lists are missing: expected {path}")
    return path


def registry_names(year: int = 2017) -> dict[str, str]:
    """code → name of the official list, read plainly."""
    names: dict[str, str] = {}
    for line in registry_file(year).read_text("utf-8-sig").splitlines():
        if line.strip():
            code, _, name = line.strip().partition(" ")
            names[code] = name.strip()
    return names


def registry_children(names: dict[str, str], region: str) -> list[str]:
    """The children of ``region`` the registry expects (nationally: the 31 mainland provinces)."""
    if region == NATION:
        return list(MAINLAND)
    return sorted(code for code in names if parent(code) == region)


async def import_registry(admin_conn: asyncpg.Connection, year: int = 2017) -> None:
    """Load the official list for ``year`` as `qmstats regions import` does."""
    codes = read_region_list(registry_file(year).read_text("utf-8-sig"))
    await import_region_list(admin_conn, year, codes, source=f"{year}.txt")


# --- what the posted events mean: kept by the test itself ----------------------------------------

@dataclass(frozen=True)
class Fact:
    """A fact as it currently stands (after its corrections)."""

    event_id: str
    type: str
    region: str
    day: date
    data: dict[str, Any]

    def values(self) -> dict[str, Decimal]:
        return {metric: Decimal(str(self.data[f])) for f, metric in METRICS_OF[self.type].items()}

    @property
    def label(self) -> str | None:
        name = LABEL_FIELD.get(self.type)
        return str(self.data[name]) if name else None


@dataclass
class Ledger:
    """event_id → the fact it currently states (None once retracted), updated in posting order."""

    facts: dict[str, Fact | None] = field(default_factory=dict)
    moved_prefecture: int = 0
    moved_day: int = 0
    corrected_twice: int = 0
    corrected_then_retracted: int = 0
    _corrections: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, envelope: dict[str, Any]) -> None:
        kind, data = envelope["type"], envelope["data"]
        if kind in METRICS_OF:
            self.facts[envelope["event_id"]] = Fact(envelope["event_id"], kind, envelope["region"],
                                                    cst_day(envelope["occurred_at"]), dict(data))
        elif kind == "event_corrected":
            before = self.facts[data["corrects"]]
            assert before is not None, "the scenario corrects a retracted event"
            after = Fact(before.event_id, before.type, envelope["region"], cst_day(envelope["occurred_at"]),
                         dict(data["replacement"]))
            self.moved_prefecture += (_level(before.region) == _level(after.region) == "county"
                                      and lineage(before.region)[1] != lineage(after.region)[1])
            self.moved_day += before.day != after.day
            self._corrections[before.event_id] += 1
            self.corrected_twice += self._corrections[before.event_id] == 2
            self.facts[before.event_id] = after
        elif kind == "event_retracted":
            assert self.facts[data["retracts"]] is not None, "the scenario retracts twice"
            self.corrected_then_retracted += self._corrections[data["retracts"]] > 0
            self.facts[data["retracts"]] = None

    def record_all(self, envelopes: Iterable[dict[str, Any]]) -> None:
        for envelope in envelopes:
            self.record(envelope)

    @property
    def standing(self) -> list[Fact]:
        return [f for f in self.facts.values() if f is not None]

    @property
    def retracted(self) -> int:
        return sum(f is None for f in self.facts.values())

    def within(self, region: str) -> list[Fact]:
        return [f for f in self.standing if region in lineage(f.region)]

    def totals(self, region: str, day: date | None = None) -> dict[str, Decimal]:
        """metric → Σ over the region's subtree (on one CST day when given); every metric present."""
        out = dict.fromkeys(ALL_METRICS, Decimal(0))
        for fact in self.within(region):
            if day is None or fact.day == day:
                for metric, value in fact.values().items():
                    out[metric] += value
        return out

    def by_label(self, region: str, metric: str) -> dict[str, Decimal]:
        out: defaultdict[str, Decimal] = defaultdict(Decimal)
        for fact in self.within(region):
            values = fact.values()
            if metric in values and fact.label is not None:
                out[fact.label] += values[metric]
        return dict(out)

    def reported(self, regions: Iterable[str], day: date | None = None) -> set[str]:
        """Which of ``regions`` have at least one standing fact in their subtree (on ``day``)."""
        return {r for r in regions if any(day is None or f.day == day for f in self.within(r))}


# --- a realistic mix, deterministic from a seed --------------------------------------------------

COUNTIES = ("330102", "330106", "330110", "330182", "330203", "330212", "330282", "330302", "330381",
            "440103", "440106", "440303", "440305", "110101", "110105", "110108", "410102", "410105",
            "419001", "469001", "469002", "500101", "500103")
PREFECTURES = ("330100", "330200", "440300", "410100")
PROVINCES = ("330000", "440000", "460000")
CATEGORIES = ("liquor", "mooncake", "electrical", "textiles", "toys")
CHANNELS = ("television", "newspaper", "online")
BUSY_DAYS = (1, 2, 5, 8, 9, 10, 15, 20, 29, 30)
OFFSETS = (timedelta(hours=8), timedelta(0), timedelta(hours=-5), timedelta(hours=9), timedelta(hours=5, minutes=30))
# Instants near CST midnight and in other offsets: (as sent, the CST day it belongs to).
EDGE_TIMES = (("2017-09-08T23:30:00+08:00", date(2017, 9, 8)), ("2017-09-09T00:10:00+08:00", date(2017, 9, 9)),
              ("2017-09-08T16:10:00Z", date(2017, 9, 9)), ("2017-09-08T15:50:00Z", date(2017, 9, 8)),
              ("2017-09-08T11:30:00-05:00", date(2017, 9, 9)), ("2017-08-31T16:00:00Z", date(2017, 9, 1)),
              ("2017-09-30T23:59:59+08:00", date(2017, 9, 30)), ("2017-09-30T10:00:00-05:00", date(2017, 9, 30)),
              ("2017-09-09T01:00:00+09:00", date(2017, 9, 9)), ("2017-09-09T00:59:00+09:00", date(2017, 9, 8)))


def _money(rng: random.Random) -> str:
    return rng.choice((f"{rng.randint(0, 900000)}.{rng.randint(0, 99):02d}", str(rng.randint(1, 50000)),
                       f"{rng.randint(0, 999)}.{rng.randint(1, 9)}", "0.05"))


def random_data(rng: random.Random, kind: str) -> dict[str, Any]:
    """A valid payload of ``kind`` with random figures."""
    if kind == "raid_conducted":
        return {"dens_busted": rng.randint(0, 9), "personnel": rng.randint(5, 400), "vehicles": rng.randint(0, 40),
                "cases": rng.randint(0, 12), "seized_value_yuan": _money(rng), "category": rng.choice(CATEGORIES)}
    if kind == "goods_destroyed":
        return {"destroyed_value_yuan": _money(rng), "category": rng.choice(CATEGORIES)}
    if kind == "inspection_completed":
        sampled = rng.randint(1, 90)
        return {"batches_sampled": sampled, "batches_passed": rng.randint(0, sampled),
                "enterprises": rng.randint(1, 40), "category": rng.choice(CATEGORIES)}
    if kind == "publicity_held":
        return {"participants": rng.randint(0, 20000), "quality_workers": rng.randint(0, 300),
                "booths": rng.randint(0, 60), "consultations": rng.randint(0, 900)}
    if kind == "materials_distributed":
        return {"copies": rng.randint(0, 80000)}
    if kind == "media_reported":
        return {"reports": rng.randint(1, 30), "channel": rng.choice(CHANNELS)}
    if kind == "lab_open_day_held":
        return {"labs": rng.randint(1, 12), "visitors": rng.randint(0, 3000)}
    if kind == "pledge_signed":
        return {"enterprises": rng.randint(1, 200)}
    assert kind == "brand_awarded"
    return {"enterprises": rng.randint(1, 20), "products": rng.randint(1, 40)}


def _region(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.8:
        return rng.choice(COUNTIES)
    if roll < 0.9:
        return rng.choice(PREFECTURES)
    if roll < 0.97:
        return rng.choice(PROVINCES)
    return NATION


def _moment(rng: random.Random) -> str:
    local = datetime(2017, 9, rng.choice(BUSY_DAYS), rng.randint(0, 23), rng.randint(0, 59), tzinfo=CST)
    return local.astimezone(timezone(rng.choice(OFFSETS))).isoformat()


def _other_prefecture_county(rng: random.Random, region: str) -> str:
    return rng.choice([c for c in COUNTIES if lineage(c)[1] != lineage(region)[1]])


@dataclass
class Scenario:
    """Requests to post in order (each a batch of envelopes), and what they mean."""

    requests: list[list[dict[str, Any]]]
    ledger: Ledger

    @property
    def events(self) -> int:
        return sum(len(r) for r in self.requests)


def realistic_mix(seed: int = 2017, facts: int = 420) -> Scenario:
    """Hundreds of facts of every type over six provinces and every level, on several CST days (some near
    midnight or sent in other offsets), with corrections (moving region and day, some twice, some in
    the same request as their original) and retractions (some of corrected facts)."""
    rng = random.Random(seed)
    kinds = list(METRICS_OF)
    ops: list[dict[str, Any]] = []
    alive: list[dict[str, Any]] = []   # the facts that may still be corrected or retracted, as last stated

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    for i in range(facts):
        kind = kinds[i] if i < len(kinds) else rng.choice(kinds)
        moment = EDGE_TIMES[i % len(EDGE_TIMES)][0] if i % 9 == 0 else _moment(rng)
        fact = event(kind, region=_region(rng), occurred_at=moment, data=random_data(rng, kind), event_id=new_id())
        ops.append(fact)
        alive.append(fact)
        roll = rng.random()
        if roll < 0.16 and len(alive) > 3:
            target = alive[-1] if rng.random() < 0.2 else rng.choice(alive[:-1])
            region, moment = target["region"], target["occurred_at"]
            move = rng.random()
            if move < 0.4 and len(lineage(region)) == 4:
                region = _other_prefecture_county(rng, region)
            elif move < 0.55:
                region = rng.choice(COUNTIES)
            if rng.random() < 0.5:
                moment = _moment(rng)
            fixed = correction(target["event_id"], random_data(rng, target["type"]), region=region,
                               occurred_at=moment, event_id=new_id())
            ops.append(fixed)
            alive[alive.index(target)] = target | {"region": region, "occurred_at": moment}
        elif roll < 0.23 and len(alive) > 3:
            target = rng.choice(alive[:-1])
            ops.append(retraction(target["event_id"], region=target["region"], occurred_at=target["occurred_at"],
                                  event_id=new_id()))
            alive.remove(target)
    requests: list[list[dict[str, Any]]] = []
    while ops:
        size = rng.randint(15, 90)
        requests.append(ops[:size])
        ops = ops[size:]
    ledger = Ledger()
    for request in requests:
        ledger.record_all(request)
    return Scenario(requests, ledger)


# --- talking to the API --------------------------------------------------------------------------

async def open_campaign(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post("/v1/campaigns", json=CAMPAIGN, headers=admin)
    assert response.status == 201, await response.text()


async def post_events(client: TestClient, headers: dict[str, str], envelopes: Sequence[dict[str, Any]]) -> int:
    """Post one batch; returns its last position."""
    response = await client.post("/v1/events", json={"events": list(envelopes)}, headers=headers)
    assert response.status == 201, await response.text()
    last: int = (await response.json())["last_position"]
    return last


async def post_scenario(client: TestClient, headers: dict[str, str], scenario: Scenario) -> int:
    """Post every request of the scenario in order; returns the head position."""
    head = 0
    for request in scenario.requests:
        head = await post_events(client, headers, request)
    return head


async def get_json(client: TestClient, path: str, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status == 200, f"{path} {params}: {response.status} {await response.text()}"
    body: dict[str, Any] = await response.json()
    return body


async def settled(client: TestClient, headers: dict[str, str], head: int, *, within: float = 10.0) -> dict[str, Any]:
    """Poll the national dashboard until its position reaches ``head``; returns that dashboard."""
    body: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                body = await get_json(client, f"/v1/campaigns/{CAMPAIGN_ID}/dashboard", headers)
                if body["position"] >= head:
                    return body
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"the dashboard did not reach position {head} within {within} s (at {body.get('position')})")


# --- checking what the API shows against the ledger ----------------------------------------------

def _assert_metric_figures(where: str, figures: dict[str, Any], expected: dict[str, Decimal]) -> None:
    assert set(figures) == set(ALL_METRICS), where
    for metric, total in expected.items():
        unit, label_zh = UNITS[metric]
        got = figures[metric]
        assert got["value"] == shown(metric, total), f"{where} {metric}: {got['value']} != {shown(metric, total)}"
        assert (got["unit"], got["label_zh"]) == (unit, label_zh), f"{where} {metric}"
        assert got["label_en"], f"{where} {metric}"


def _expected_pass_rates(ledger: Ledger, region: str) -> tuple[str | None, dict[str, str]]:
    totals = ledger.totals(region)
    overall = ratio(totals["batches_passed"], totals["batches_sampled"]) if totals["batches_sampled"] else None
    sampled = ledger.by_label(region, "batches_sampled")
    passed = ledger.by_label(region, "batches_passed")
    return overall, {c: ratio(passed.get(c, Decimal(0)), n) for c, n in sampled.items() if n}


async def check_dashboard(client: TestClient, headers: dict[str, str], ledger: Ledger, head: int,
                          region: str = NATION, level: str | None = None,
                          names: dict[str, str] | None = None, lag_events: int = 0) -> dict[str, Any]:
    """Every figure of one dashboard against the ledger: totals, children, pass rates, position."""
    names = names if names is not None else registry_names()
    params = {"region": region} | ({"level": level} if level else {})
    body = await get_json(client, f"/v1/campaigns/{CAMPAIGN_ID}/dashboard", headers, **params)
    where = f"dashboard {params}"
    assert body["campaign"] == CAMPAIGN_ID
    assert body["region"]["code"] == region
    assert body["region"]["name"] == ("全国" if region == NATION else names[region]), where
    assert body["position"] == head, where
    assert body["lag_events"] == lag_events, where
    assert datetime.fromisoformat(body["updated_at"]).tzinfo is not None, where
    _assert_metric_figures(where, body["metrics"], ledger.totals(region))
    overall, by_category = _expected_pass_rates(ledger, region)
    rates = body["pass_rate"]
    totals = ledger.totals(region)
    assert (rates["passed"], rates["sampled"]) == (int(totals["batches_passed"]), int(totals["batches_sampled"]))
    assert rates["overall"] == overall, where
    assert {c: r for c, r in rates["by_category"].items() if r is not None} == by_category, where
    children = {c["code"]: c for c in body["children"]}
    if level is None:
        expected_codes = set(registry_children(names, region))
        with_figures = {child_under(f.region, region) for f in ledger.within(region) if f.region != region}
        assert expected_codes | with_figures <= set(children), where
        if region == NATION:
            assert set(children) == set(MAINLAND), where
        assert all(parent(c) == region for c in children), where
    else:
        with_figures = {f.region for f in ledger.within(region) if _level(f.region) == level}
        with_figures |= {a for f in ledger.within(region) for a in lineage(f.region) if _level(a) == level}
        assert with_figures <= set(children), f"{where}: missing {with_figures - set(children)}"
        assert all(_level(c) == level and region in lineage(c) for c in children), where
    assert [c["code"] for c in body["children"]] == sorted(children), where
    for code, child in children.items():
        expected = ledger.totals(code)
        assert child["name"] == names[code], f"{where} child {code}"
        assert child["level"] == _level(code)
        assert child["metrics"] == {m: shown(m, v) for m, v in expected.items()}, f"{where} child {code}"
    return body


def _level(code: str) -> str:
    if code == NATION:
        return "nation"
    if code.endswith("0000"):
        return "province"
    return "prefecture" if code.endswith("00") else "county"


def child_under(code: str, region: str) -> str:
    """The child of ``region`` whose subtree holds ``code`` (a strict descendant)."""
    chain = lineage(code)
    return chain[chain.index(region) - 1]


async def check_series(client: TestClient, headers: dict[str, str], ledger: Ledger, head: int, region: str,
                       metric: str) -> None:
    body = await get_json(client, f"/v1/campaigns/{CAMPAIGN_ID}/series", headers, metric=metric, region=region)
    assert (body["metric"], body["region"]["code"], body["position"]) == (metric, region, head)
    assert (body["unit"], body["label_zh"]) == UNITS[metric]
    by_day: defaultdict[date, Decimal] = defaultdict(Decimal)
    for fact in ledger.within(region):
        value = fact.values().get(metric)
        if value is not None:
            by_day[fact.day] += value
    expected = [{"date": d.isoformat(), "value": shown(metric, by_day[d])} for d in WINDOW]
    assert body["days"] == expected, f"series {metric} {region}"


async def check_completeness(client: TestClient, headers: dict[str, str], ledger: Ledger, head: int,
                             region: str, day: date | None, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names if names is not None else registry_names()
    params = {"region": region} | ({"date": day.isoformat()} if day else {})
    body = await get_json(client, f"/v1/campaigns/{CAMPAIGN_ID}/completeness", headers, **params)
    expected = registry_children(names, region)
    assert body["position"] == head
    assert body["expected"] == len(expected)

    def reporting(on: date | None) -> dict[str, Any]:
        did = ledger.reported(expected, on)
        return {"reported": [c for c in expected if c in did], "not_reported": [c for c in expected if c not in did],
                "rate": ratio(Decimal(len(did)), Decimal(len(expected)))}

    def codes(part: dict[str, Any]) -> dict[str, Any]:
        return {"reported": [r["code"] for r in part["reported"]],
                "not_reported": [r["code"] for r in part["not_reported"]], "rate": part["rate"]}

    assert codes(body["to_date"]) == reporting(None), f"completeness {params} to date"
    if day is None:
        assert body["on_date"] is None
    else:
        assert body["date"] == day.isoformat()
        assert codes(body["on_date"]) == reporting(day), f"completeness {params} on {day}"
    for part in (body["to_date"], *([body["on_date"]] if day else [])):
        for ref in part["reported"] + part["not_reported"]:
            assert ref["name"] == names[ref["code"]], ref
    return body


async def check_every_figure(client: TestClient, headers: dict[str, str], ledger: Ledger, head: int) -> None:
    """The national dashboard and each province touched, two prefectures, breakdowns by level, every
    series of the nation and of Zhejiang, and completeness nationally (two days, to date) and in Zhejiang."""
    names = registry_names()
    await check_dashboard(client, headers, ledger, head, names=names)
    for province in sorted({lineage(f.region)[-2] for f in ledger.standing if f.region != NATION}):
        await check_dashboard(client, headers, ledger, head, province, names=names)
    for prefecture in ("330100", "330200", "440300"):
        await check_dashboard(client, headers, ledger, head, prefecture, names=names)
    await check_dashboard(client, headers, ledger, head, NATION, "county", names=names)
    await check_dashboard(client, headers, ledger, head, NATION, "prefecture", names=names)
    await check_dashboard(client, headers, ledger, head, "330000", "county", names=names)
    for metric in ALL_METRICS:
        await check_series(client, headers, ledger, head, NATION, metric)
        await check_series(client, headers, ledger, head, "330000", metric)
    for day in (date(2017, 9, 8), date(2017, 9, 9), None):
        await check_completeness(client, headers, ledger, head, NATION, day, names)
    for day in (date(2017, 9, 9), None):
        await check_completeness(client, headers, ledger, head, "330000", day, names)


# --- `qmstats` processes -------------------------------------------------------------------------

def with_application_name(url: str, name: str) -> str:
    """The URL with ``application_name`` set, so pg_stat_activity tells its connections apart."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"] + [("application_name", name)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def qmstats_env(database_url: str, admin_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMSTATS_")}
    env |= {"QMSTATS_DATABASE_URL": database_url, "QMSTATS_MIGRATION_DATABASE_URL": admin_url,
            "QMSTATS_LOG_FORMAT": "json", "QMSTATS_LOG_LEVEL": "info"}
    env |= {f"QMSTATS_{k.upper()}": v for k, v in settings.items()}
    return env


@dataclass
class QmstatsProcess:
    """A running `qmstats …` subprocess whose stderr is collected line by line."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> "QmstatsProcess":
        process = await asyncio.create_subprocess_exec(str(QMSTATS), *args, env=env, cwd=ROOT,
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
        running = cls(process)
        running._drain = asyncio.create_task(running._collect())
        return running

    async def _collect(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def kill(self) -> None:
        """SIGKILL (no chance to clean up) and reap."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await self.process.wait()
            if self._drain is not None:
                await self._drain


async def run_qmstats(*args: str, env: dict[str, str], within: float = 60) -> tuple[int, str, str]:
    """Run a `qmstats` command to completion (killed after ``within`` s); returns (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(str(QMSTATS), *args, env=env, cwd=ROOT,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def projector_lock_holders(conn: asyncpg.Connection) -> list[str]:
    """application_name of each session holding the projector's advisory lock in this database.

    PostgreSQL stores a bigint advisory key as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
    """
    rows = await conn.fetch(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 "
        "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        PROJECTOR_LOCK >> 32, PROJECTOR_LOCK & 0xFFFF_FFFF)
    return [r["application_name"] for r in rows]


async def eventually(condition: Callable[[], Awaitable[bool]], what: str, *, within: float = 10.0) -> None:
    """Wait until ``condition()`` holds, checking every 50 ms; fail after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            # Polling on purpose: the conditions are outside this process (HTTP, pg_locks, other processes).
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{what}: not within {within} s")
