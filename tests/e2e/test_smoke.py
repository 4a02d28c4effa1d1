"""A first end-to-end check that the harness and the service work together."""

from aiohttp.test_utils import TestClient

from tests.conftest import Keys
from tests.factories import CAMPAIGN, event


async def test_post_an_event_and_read_it_back(client: TestClient, keys: Keys) -> None:
    opened = await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    assert opened.status == 201
    sent = event()
    posted = await client.post("/v1/events", json=sent, headers=keys.reporter)
    assert posted.status == 201
    body = await posted.json()
    assert body["results"] == [{"event_id": sent["event_id"], "status": "created", "position": 2}]
    page = await (await client.get("/v1/events?after=1", headers=keys.auditor)).json()
    assert [e["event_id"] for e in page["events"]] == [sent["event_id"]]
    assert page["events"][0]["data"]["seized_value_yuan"] == "152000.50"
    assert page["events"][0]["recorded_by"] == keys.ids["reporter"]
