"""Open and reference routes: health, readiness, metrics, OpenAPI, catalogue, regions, unknown paths."""

import json
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from events.catalogue import CATALOGUE
from events.region_store import import_region_list
from events.regions import PROVINCES
from services.regionlists import read_region_list
from services.routes import route_table
from tests.conftest import Keys
from tests.e2e.wire import eventually, expect_problem
from tests.factories import CAMPAIGN, event


async def test_healthz_answers_without_a_key(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert response.headers["X-Request-ID"]


async def test_readyz_reports_every_check_ok(client: TestClient) -> None:
    # The key listener connects in the background after start-up; a readiness probe polls, so do we.
    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready, seconds=5, every=0.02)
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["ready"] is True
    assert body["checks"]
    assert all(v == "ok" for v in body["checks"].values()), body
    assert {"database", "migrations", "writer", "listener"} <= set(body["checks"])


async def test_metrics_count_appended_events(client: TestClient, keys: Keys) -> None:
    await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    batch = {"events": [event(), event(), event("publicity_held")]}
    assert (await client.post("/v1/events", json=batch, headers=keys.reporter)).status == 201
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["qmstats_events_appended_total"]) == 4
    assert "# TYPE qmstats_events_appended" in text
    assert any(name.startswith('qmstats_http_requests_total{method="POST",route="/v1/events",status="201"}')
               for name in samples)


async def test_the_openapi_document_describes_every_route(client: TestClient) -> None:
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    raw = await response.text()
    document = json.loads(raw, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert document["info"]["version"]
    for route in route_table():
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["responses"], route.path
    assert {op["operationId"] for path in document["paths"].values() for op in path.values()}.__len__() == len(
        route_table())
    post_events = document["paths"]["/v1/events"]["post"]
    assert {"201", "200", "400", "401", "403", "409", "413", "415", "422", "429"} <= set(post_events["responses"])
    assert "application/problem+json" in post_events["responses"]["422"]["content"]
    assert document["paths"]["/healthz"]["get"]["security"] == []

    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    dangling = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in schemas}
    assert dangling == set()


async def test_the_catalogue_lists_every_type_with_units_and_labels(client: TestClient, keys: Keys) -> None:
    await expect_problem(await client.get("/v1/catalogue"), 401, "unauthenticated")
    for role in ("reporter", "viewer", "auditor", "admin"):
        assert (await client.get("/v1/catalogue", headers=getattr(keys, role))).status == 200, role
    body = await (await client.get("/v1/catalogue", headers=keys.viewer)).json()
    listed = {t["name"]: t for t in body["types"]}
    assert set(listed) == set(CATALOGUE)
    for name, declared in CATALOGUE.items():
        shown = listed[name]
        assert shown["label_zh"]
        assert shown["label_en"]
        assert shown["admin_only"] == declared.admin_only
        assert [(m["name"], m["unit"], m["label_zh"], m["label_en"]) for m in shown["metrics"]] == [
            (m.name, m.unit, m.label_zh, m.label_en) for m in declared.metrics]
        assert shown["data_schema"]["type"] == "object"
    raid = {m["name"]: m for m in listed["raid_conducted"]["metrics"]}
    assert raid["dens_busted"]["unit"] == "个"
    assert raid["dens_busted"]["label_zh"] == "捣毁窝点"
    assert raid["seized_value_yuan"]["kind"] == "money"
    assert raid["seized_value_yuan"]["unit"] == "元"
    assert listed["inspection_completed"]["ratios"][0]["name"] == "pass_rate"
    assert listed["campaign_opened"]["admin_only"] is True


async def test_regions_list_the_34_provinces_by_default(client: TestClient, keys: Keys) -> None:
    await expect_problem(await client.get("/v1/regions"), 401, "unauthenticated")
    response = await client.get("/v1/regions", headers=keys.reporter)
    assert response.status == 200
    body = await response.json()
    assert body["parent"]["code"] == "000000"
    assert body["parent"]["name"] == "全国"
    assert body["year"] is None
    assert [(r["code"], r["name"], r["level"]) for r in body["regions"]] == [
        (code, PROVINCES[code], "province") for code in sorted(PROVINCES)]
    assert len(body["regions"]) == 34
    for query in ({"parent": "33"}, {"parent": "990000"}, {"year": "last"}):
        await expect_problem(await client.get("/v1/regions", params=query, headers=keys.viewer), 422,
                             "invalid-parameter", query)


async def test_regions_name_prefectures_after_an_import(client: TestClient, keys: Keys, areacodes: Path,
                                                        admin_conn: asyncpg.Connection) -> None:
    codes = read_region_list((areacodes / "2017.txt").read_text("utf-8-sig"))
    assert await import_region_list(admin_conn, 2017, codes, source="2017.txt") == len(codes)
    response = await client.get("/v1/regions", params={"parent": "330000"}, headers=keys.viewer)
    assert response.status == 200
    body = await response.json()
    assert body["year"] == 2017
    assert body["parent"] == {"code": "330000", "name": "浙江省", "level": "province", "parent": "000000"}
    prefectures = {r["code"]: r["name"] for r in body["regions"]}
    assert len(prefectures) == 11
    assert prefectures["330100"] == "杭州市"
    assert prefectures["331100"] == "丽水市"
    assert all(r["level"] == "prefecture" and r["parent"] == "330000" for r in body["regions"])
    hangzhou = await (await client.get("/v1/regions", params={"parent": "330100"}, headers=keys.viewer)).json()
    assert {"330102", "330106"} <= {r["code"] for r in hangzhou["regions"]}
    assert all(r["name"] for r in hangzhou["regions"])


async def test_an_imported_list_is_enforced_for_its_year(client: TestClient, keys: Keys, areacodes: Path,
                                                         admin_conn: asyncpg.Connection) -> None:
    codes = read_region_list((areacodes / "2017.txt").read_text("utf-8-sig"))
    await import_region_list(admin_conn, 2017, codes, source="2017.txt")
    await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)
    assert (await client.post("/v1/events", json=event(region="330102"), headers=keys.reporter)).status == 201
    # 330185 (临安市) became 临安区 330112 in 2017; the old code is no longer in the list.
    response = await client.post("/v1/events", json=event(region="330185"), headers=keys.reporter)
    body = await expect_problem(response, 422, "validation-failed")
    assert body["errors"][0]["loc"] == ["region"]


async def test_an_unknown_path_is_a_404_problem(client: TestClient, keys: Keys) -> None:
    for path in ("/v1/nothing", "/v2/events", "/v1/campaigns/2017/nothing"):
        await expect_problem(await client.get(path, headers=keys.admin), 404, "not-found", path)


async def test_a_wrong_method_is_a_405_problem(client: TestClient, keys: Keys) -> None:
    for method, path in (("DELETE", "/v1/events"), ("PUT", "/v1/campaigns"), ("POST", "/healthz")):
        response = await client.request(method, path, headers=keys.admin)
        await expect_problem(response, 405, "method-not-allowed", (method, path))
        assert response.headers["Allow"], (method, path)
