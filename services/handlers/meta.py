"""Health, readiness, metrics, the OpenAPI document, the catalogue and the region list."""

import asyncio
from functools import cache

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from events.catalogue import CATALOGUE, MEDIA_CHANNELS, PRODUCT_CATEGORIES, StandardLabel
from events.coordination import ping
from events.errors import NotFound
from events.region_store import latest_list_year, province_codes
from events.regions import NATION, PROVINCES, level_of, parent_of
from schemas.api import (
    Catalogue,
    EventTypeInfo,
    Health,
    MetricInfo,
    RatioInfo,
    Readiness,
    RegionInfo,
    RegionList,
    StandardLabelInfo,
)
from services import migrate
from services.appkeys import FLAGS_PROJECTOR, INTEGRATION, POOL, PROJECTION, REPLICAS, SETTINGS, STATE, TELEMETRY
from services.handlers.params import int_param, region_param
from services.middleware import allow
from services.reads import Basis, snapshot
from services.responses import json_response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. No I/O."""
    return json_response(Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """Readiness: database reachable, migrations current, writer running, key listener connected."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2), request.app[POOL].acquire() as conn:
            await ping(conn)
            checks["database"] = "ok"
            todo = await migrate.pending(conn)
            checks["migrations"] = "ok" if not todo else f"{len(todo)} pending"
    except Exception as exc:  # readiness reports the failure instead of raising it
        checks.setdefault("database", f"unreachable: {exc.__class__.__name__}")
    state, projection, settings = request.app[STATE], request.app[PROJECTION], request.app[SETTINGS]
    checks["writer"] = "ok" if state.writer_running else "stopped"
    checks["listener"] = "ok" if state.listener_connected else "disconnected"
    if settings.run_projector:
        checks["projector"] = ("ok" if projection.projector in ("active", "standby")
                               else f"{projection.projector}: {projection.error or 'starting'}")
        if settings.run_integrator:
            tree = request.app[INTEGRATION]
            checks["integrator"] = ("ok" if tree.mode in ("active", "standby")
                                    else f"{tree.mode}: {tree.error or 'starting'}")
    if (flags := request.app.get(FLAGS_PROJECTOR)) is not None:  # data-quality flags (issue 15)
        checks["flags_projector"] = ("ok" if flags.state.projector in ("active", "standby")
                                     else f"{flags.state.projector}: {flags.state.error or 'starting'}")
    lag = projection.lag_seconds
    checks["projection_lag"] = ("ok" if lag <= settings.ready_max_lag_seconds
                                else f"{projection.lag_events} events, oldest waiting {lag:.1f} s")
    if state.shutting_down:
        checks["shutdown"] = "in progress"
    ready = all(v == "ok" for v in checks.values())
    replicas = {r.name: r.state for r in request.app[REPLICAS].replicas}
    return json_response(Readiness(ready=ready, checks=checks, replicas=replicas), status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of this process's metrics."""
    body = generate_latest(request.app[TELEMETRY].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@allow("viewer", "auditor")
async def keyed_metrics(request: web.Request) -> web.Response:
    """/metrics as served with QMSTATS_OPEN_METRICS=false: only with a viewer, auditor or admin key."""
    return await metrics(request)


@cache
def catalogue_body() -> bytes:
    """The catalogue, built once."""
    types = []
    for t in CATALOGUE.values():
        model = t.versions[t.latest_version]
        types.append(EventTypeInfo(
            name=t.name, kind=t.kind, label_zh=t.label_zh, label_en=t.label_en,
            schema_versions=sorted(t.versions), admin_only=t.admin_only, category_field=t.category_field,
            metrics=[MetricInfo(name=m.name, field=m.field, unit=m.unit, label_zh=m.label_zh, label_en=m.label_en,
                                kind=m.kind) for m in t.metrics],
            ratios=[RatioInfo(name=r.name, numerator=r.numerator, denominator=r.denominator, label_zh=r.label_zh,
                              label_en=r.label_en, by=r.by) for r in t.ratios],
            data_schema=model.model_json_schema()))
    def labels(values: tuple[StandardLabel, ...]) -> list[StandardLabelInfo]:
        return [StandardLabelInfo(code=v.code, label_zh=v.label_zh, label_en=v.label_en) for v in values]

    return Catalogue(types=types, categories=labels(PRODUCT_CATEGORIES),
                     channels=labels(MEDIA_CHANNELS)).model_dump_json().encode()


@allow("reporter", "viewer", "auditor")
async def catalogue(request: web.Request) -> web.Response:
    """Every event type, its payload schema and the metrics (units, zh/en labels) it feeds."""
    return web.Response(body=catalogue_body(), content_type="application/json")


def _info(code: str, names: dict[str, str]) -> RegionInfo:
    name = "全国" if code == NATION else PROVINCES.get(code) or names.get(code)
    return RegionInfo(code=code, name=name, level=level_of(code), parent=parent_of(code))


@allow("reporter", "viewer", "auditor")
async def regions(request: web.Request) -> web.Response:
    """The children of ``parent`` (default: the nation), named from the latest imported list."""
    parent = region_param(request, "parent") or NATION
    # Bounded: "²" passes str.isdigit() but not int(), and a 5000-digit year does not fit the column.
    asked = int_param(request, "year", 0, low=1, high=9999) if request.query.get("year") else None
    async with snapshot(request, Basis.LOG) as snap:
        year = asked if asked is not None else await latest_list_year(snap.conn)
        names = await province_codes(snap.conn, year, parent) if year is not None and parent != NATION else {}
    if names and level_of(parent) != "province" and parent not in names:
        raise NotFound(f"region {parent} is not in the {year} region list")
    children = sorted(PROVINCES) if parent == NATION else sorted(c for c in names if parent_of(c) == parent)
    return json_response(RegionList(parent=_info(parent, names), year=year,
                                    regions=[_info(code, names) for code in children]))
