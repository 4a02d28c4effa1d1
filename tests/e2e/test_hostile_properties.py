"""Property tests of the intake: whatever arrives, no 5xx; whatever is accepted reads back meaning the same.

Hypothesis runs in a worker thread and drives the service, which runs on the test's event loop,
through ``run_coroutine_threadsafe``. Examples are bounded and derandomized, so CI is repeatable.
"""

import asyncio
import json
import unicodedata
from collections.abc import Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Keys
from tests.factories import event

pytestmark = pytest.mark.usefixtures("campaign")
T = TypeVar("T")
BOUNDED = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
JSON = {"Content-Type": "application/json"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**60)
    | st.floats() | st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25)

_RAID = event()["data"]


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``valid``, sometimes anything: most examples then get past parsing into the deeper checks."""
    return st.one_of(valid, valid, valid, valid, json_values)


# Envelopes where each member is usually right and sometimes anything at all, so generation reaches
# every stage: parsing, the envelope, the payload models, scope (403), and the log (409, 422, 201).
envelopes = st.fixed_dictionaries(
    {"event_id": mostly(st.uuids().map(str)),
     "type": mostly(st.sampled_from(["raid_conducted", "raid_conducted", "event_corrected", "event_retracted",
                                     "campaign_opened"])),
     "campaign": mostly(st.sampled_from(["2017", "2017", "2099"])),
     "region": mostly(st.sampled_from(["330102", "330000", "440103", "000000", "330100"])),
     "occurred_at": mostly(st.sampled_from(["2017-09-08T10:00:00+08:00", "2017-10-08T10:00:00+08:00"])),
     "data": mostly(st.fixed_dictionaries({k: mostly(st.just(v)) for k, v in _RAID.items()})) | st.fixed_dictionaries(
         {"corrects": mostly(st.uuids().map(str)), "replacement": mostly(st.just(_RAID)),
          "retracts": st.uuids().map(str), "reason": json_values})},
    optional={"schema_version": mostly(st.just(1)), "recorded_at": json_values, "position": json_values})
bodies = envelopes | st.fixed_dictionaries({"events": st.lists(envelopes | json_values, max_size=4)}) | json_values


class Bridge:
    """Calls into the service's event loop from Hypothesis's thread."""

    def __init__(self, client: TestClient, keys: Keys) -> None:
        self.client, self.keys, self.loop = client, keys, asyncio.get_running_loop()
        self.statuses: dict[int, int] = {}

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout=30)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        async def call() -> tuple[int, str]:
            response = await self.client.post("/v1/events", data=body,
                                              headers=self.keys.reporter | (JSON if headers is None else headers))
            return response.status, await response.text()

        status, text = self.run(call)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, text

    def stored(self, event_id: str) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            response = await self.client.get(f"/v1/events/{event_id}", headers=self.keys.auditor)
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

        return self.run(call)


@pytest.fixture
async def bridge(client: TestClient, keys: Keys) -> Bridge:
    return Bridge(client, keys)


async def test_arbitrary_json_never_causes_a_server_error(bridge: Bridge) -> None:
    @BOUNDED
    @given(bodies)
    def post_anything(body: Any) -> None:
        status, text = bridge.post(json.dumps(body).encode())  # NaN and Infinity included, as a sloppy client writes
        assert status < 500, text
        assert status in (200, 201, 400, 403, 409, 413, 422), (status, text)

    await asyncio.to_thread(post_anything)
    assert {201, 400, 422} <= set(bridge.statuses), bridge.statuses  # generation reached parsing, models and the log
    print(f"\narbitrary JSON: {sum(bridge.statuses.values())} bodies, statuses {bridge.statuses}")


async def test_arbitrary_bytes_never_cause_a_server_error(bridge: Bridge) -> None:
    @BOUNDED
    @given(st.binary(max_size=300) | st.binary(max_size=40).map(lambda b: b'{"events": [' + b + b"]}"),
           st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]))
    def post_bytes(body: bytes, ctype: str) -> None:
        status, text = bridge.post(body, {"Content-Type": ctype} if ctype else {})
        assert status in (400, 415, 422), (status, text)

    await asyncio.to_thread(post_bytes)
    print(f"\narbitrary bytes: {sum(bridge.statuses.values())} bodies, statuses {bridge.statuses}")


def _money_text(cents: int, places: int) -> str:
    if places == 0:
        return str(cents // 100)
    return f"{Decimal(cents) / 100:.{places}f}"


labels = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=70)


async def test_an_accepted_event_reads_back_meaning_exactly_what_was_sent(bridge: Bridge) -> None:
    @BOUNDED
    @given(counts=st.lists(st.integers(min_value=0, max_value=10**9), min_size=4, max_size=4),
           cents=st.integers(min_value=0, max_value=10**14), places=st.sampled_from([0, 1, 2]),
           as_string=st.booleans(), category=labels, region=st.sampled_from(["330102", "330000", "330100", "330482"]),
           offset=st.integers(min_value=-12 * 60, max_value=14 * 60), day=st.integers(min_value=3, max_value=27))
    def round_trip(counts: list[int], cents: int, places: int, as_string: bool, category: str, region: str,
                   offset: int, day: int) -> None:
        if places == 0:
            cents -= cents % 100
        elif places == 1:
            cents -= cents % 10
        money = _money_text(cents, places)
        sign, minutes = ("+" if offset >= 0 else "-"), abs(offset)
        occurred_at = f"2017-09-{day:02d}T12:34:56{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        data = {"dens_busted": counts[0], "personnel": counts[1], "vehicles": counts[2], "cases": counts[3],
                "seized_value_yuan": "MONEY", "category": category}
        sent = event(data=data, region=region, occurred_at=occurred_at)
        literal = json.dumps(money) if as_string else money
        body = json.dumps(sent, ensure_ascii=False).encode().replace(b'"MONEY"', literal.encode())

        status, text = bridge.post(body)
        label = category.strip()
        if not 1 <= len(label) <= 64:
            assert status == 422, text
            assert json.loads(text)["errors"][0]["loc"] == ["data", "category"]
            return
        assert status == 201, (text, body)
        stored = bridge.stored(sent["event_id"])["event"]
        assert stored["data"] == {"dens_busted": counts[0], "personnel": counts[1], "vehicles": counts[2],
                                  "cases": counts[3], "seized_value_yuan": f"{Decimal(cents) / 100:.2f}",
                                  "category": label}
        assert Decimal(stored["data"]["seized_value_yuan"]) == Decimal(money)
        assert unicodedata.normalize("NFC", stored["data"]["category"]) == unicodedata.normalize("NFC", label)
        assert (stored["type"], stored["campaign"], stored["region"]) == ("raid_conducted", "2017", region)
        assert datetime.fromisoformat(stored["occurred_at"]) == datetime.fromisoformat(occurred_at)

    await asyncio.to_thread(round_trip)
    print(f"\nround trips: {sum(bridge.statuses.values())} events, statuses {bridge.statuses}")
