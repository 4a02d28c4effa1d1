"""The route table: registration, roles and the OpenAPI document come from this one list."""

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import orjson
from aiohttp import web

from events.catalogue import CATALOGUE
from events.fields import CAMPAIGN_ID_PATTERN, REGION_CODE_PATTERN
from schemas import api
from schemas.log import ConsistencyProofOut, InclusionProofOut
from schemas.openapi import QueryParam, RouteDoc, build_openapi, event_models
from services.appkeys import SETTINGS
from services.handlers import audit, campaigns, dashboard, events, flags, log, meta, page, summary
from services.middleware import ROLES_KEY, Handler, public_dashboard

_AFTER = QueryParam("after", {"type": "integer", "minimum": 0}, "read events after this position")
_LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 10000})
_REGION = QueryParam("region", {"type": "string", "pattern": REGION_CODE_PATTERN}, "a region and its whole subtree")
_MIN_POSITION = QueryParam(
    "min_position", {"type": "integer", "minimum": 0},
    "answer only as of this log position or later (read-your-writes: pass a POST's last_position); a replica "
    "behind it is waited for up to 1 s, then the primary answers. The answer's X-Qmstats-Position header says "
    "which position it reflects")
# Routes that read through services.reads.snapshot: they take min_position and answer X-Qmstats-Position.
_READS = frozenset({
    "/v1/events", "/v1/campaigns", "/v1/campaigns/{campaign}", "/v1/campaigns/{campaign}/dashboard",
    "/v1/campaigns/{campaign}/series", "/v1/campaigns/{campaign}/completeness", "/v1/stream",
    "/v1/events/{event_id}", "/v1/audit/verify", "/v1/audit/head", "/v1/campaigns/{campaign}/figures/{metric}/events",
    "/v1/campaigns/{campaign}/summary", "/v1/regions", "/v1/campaigns/{campaign}/flags", "/v1/log/checkpoint",
    "/v1/log/key", "/v1/log/tile/{level}/{index}", "/v1/events/{event_id}/proof", "/v1/log/consistency"})
_CAMPAIGN = QueryParam("campaign", {"type": "string", "pattern": CAMPAIGN_ID_PATTERN},
                       "only this campaign's events")


@dataclass(frozen=True, slots=True)
class Route:
    """A route: what the contract says about it (its RouteDoc) and what handles it."""

    doc: RouteDoc
    handler: Handler
    dashboard_public: bool = False  # open without a key when QMSTATS_PUBLIC_DASHBOARD=true
    pattern: str | None = None  # the aiohttp path when it differs from the documented one (a '/' in a parameter)

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.doc.method

    @property
    def path(self) -> str:
        """The path pattern."""
        return self.doc.path


def _routes() -> list[Route]:
    post_body = event_models({name: t.versions[t.latest_version] for name, t in CATALOGUE.items()})
    return [
        Route(RouteDoc("POST", "/v1/events", "Append one event or a batch (atomic)", post_body,
                       {201: api.AppendResponse, 200: api.AppendResponse}, errors=[400, 409, 413, 415, 422, 503],
                       query=[QueryParam("dry_run", {"type": "boolean"}, "check only: 200 with results and the flags "
                                         "the events would raise; nothing is stored (any other query parameter is "
                                         "422)")]),
              events.post_events),
        Route(RouteDoc("GET", "/v1/events", "Read the log in position order", responses={200: api.EventsPage},
                       query=[_AFTER, _LIMIT, _CAMPAIGN, _REGION, QueryParam("type", {"type": "string"})],
                       errors=[406, 422, 503]),
              events.get_events),
        Route(RouteDoc("POST", "/v1/campaigns", "Open a campaign (an event in the log)", api.OpenCampaign,
                       {201: api.CampaignView, 200: api.CampaignView}, errors=[400, 409, 415, 422, 503]),
              campaigns.open_campaign),
        Route(RouteDoc("GET", "/v1/campaigns", "List campaigns", responses={200: None}),
              campaigns.list_campaigns, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}", "One campaign", responses={200: None}, errors=[404]),
              campaigns.get_campaign, dashboard_public=True),
        Route(RouteDoc("POST", "/v1/campaigns/{campaign}/close", "Close a campaign",
                       responses={201: api.CampaignView, 200: api.CampaignView}, errors=[404, 409, 415, 422, 503]),
              campaigns.close_campaign),
        Route(RouteDoc("POST", "/v1/campaigns/{campaign}/reopen", "Reopen a closed campaign",
                       responses={201: api.CampaignView, 200: api.CampaignView}, errors=[404, 409, 415, 422, 503]),
              campaigns.reopen_campaign),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/dashboard",
                       "Totals of a region and its children, pass rates, projection position (ETag; 304 when "
                       "unchanged)", responses={200: api.Dashboard, 304: None},
                       query=[_REGION,
                              QueryParam("level", {"type": "string", "enum": ["province", "prefecture", "county"]},
                                         "break down by this level instead of the direct children"),
                              QueryParam("at_position", {"type": "integer", "minimum": 0},
                                         "auditors: the figures as they stood at this position")],
                       errors=[404, 422, 503]),
              dashboard.dashboard, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/series", "Daily values of one metric",
                       responses={200: api.Series, 304: None},
                       query=[QueryParam("metric", {"type": "string"}, required=True), _REGION],
                       errors=[404, 422, 503]),
              dashboard.series, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/completeness",
                       "Which child regions reported (on a day and so far)",
                       responses={200: api.Completeness, 304: None},
                       query=[QueryParam("date", {"type": "string", "format": "date"}), _REGION],
                       errors=[404, 422, 503]),
              dashboard.completeness, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/flags",
                       "Data-quality flags, highest score first (a reporter sees its own subtree)",
                       responses={200: api.FlagList},
                       query=[_REGION,
                              QueryParam("status", {"type": "string", "enum": ["open", "reviewed", "resolved", "all"]}),
                              QueryParam("code", {"type": "string"}),
                              QueryParam("format", {"type": "string", "enum": ["json", "csv"]}), _LIMIT],
                       errors=[403, 404, 422, 503], text_formats=("text/csv",)),
              flags.list_flags),
        Route(RouteDoc("POST", "/v1/campaigns/{campaign}/flags/{flag_id}/review",
                       "Review a flag: recorded as a flag_reviewed event", api.ReviewFlag,
                       {201: api.ReviewRecorded, 200: api.ReviewRecorded}, errors=[400, 403, 404, 409, 415, 422, 503]),
              flags.review_flag),
        Route(RouteDoc("GET", "/v1/stream", "Server-Sent Events: one message per projection advance",
                       responses={200: None}, produces="text/event-stream"),
              dashboard.stream, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/events/{event_id}", "One event, its corrections, its effective payload",
                       responses={200: api.EventHistory}, errors=[404, 503]),
              audit.get_event),
        Route(RouteDoc("GET", "/v1/audit/verify", "Recompute the hash chain", responses={200: api.ChainCheck},
                       query=[_CAMPAIGN], errors=[404, 422, 503]),
              audit.verify),
        Route(RouteDoc("GET", "/v1/audit/head", "Head position and hash", responses={200: api.Head}),
              audit.audit_head),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/figures/{metric}/events",
                       "The events behind one figure, with effective contributions", responses={200: api.Provenance},
                       query=[_REGION, _AFTER, _LIMIT, QueryParam("at_position", {"type": "integer", "minimum": 0})],
                       errors=[404, 422, 503]),
              audit.provenance),
        Route(RouteDoc("GET", "/v1/campaigns/{campaign}/summary",
                       "Year-end summary: exact totals beside 概数 phrases (final after close, provisional before)",
                       responses={200: api.Summary},
                       query=[QueryParam("format", {"type": "string", "enum": ["json", "md", "html", "csv"]}),
                              QueryParam("lang", {"type": "string", "enum": ["zh", "en"]})],
                       errors=[404, 422, 503], text_formats=("text/markdown", "text/html", "text/csv")),
              summary.summary, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/log/checkpoint",
                       "The latest signed checkpoint of the Merkle tree over the log (C2SP tlog-checkpoint, "
                       "text/plain)", responses={200: None}, errors=[404, 503], produces="text/plain"),
              log.checkpoint, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/log/key", "The signed-note verifier key of the log (text/plain)",
                       responses={200: None}, errors=[404, 503], produces="text/plain"),
              log.verifier_key, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/log/tile/{level}/{index}",
                       "A tile of the tree (C2SP tlog-tiles: index as x001/x234/067, partial tiles as …/067.p/W)",
                       responses={200: None}, errors=[404, 503], produces="application/octet-stream"),
              log.tile, dashboard_public=True, pattern="/v1/log/tile/{level}/{index:.+}"),
        Route(RouteDoc("GET", "/v1/events/{event_id}/proof",
                       "Inclusion proof of an event in a signed checkpoint (JSON; format=tlog-proof or "
                       "Accept: text/plain for a C2SP tlog-proof receipt)", responses={200: InclusionProofOut},
                       query=[QueryParam("tree_size", {"type": "integer", "minimum": 0},
                                         "a tree size with a signed checkpoint (default: the latest)"),
                              QueryParam("format", {"type": "string", "enum": ["json", "tlog-proof"]})],
                       errors=[403, 404, 409, 422, 503], text_formats=("text/plain",)),
              log.event_proof),
        Route(RouteDoc("GET", "/v1/log/consistency",
                       "Consistency proof (RFC 9162 §2.1.4) from tree size `from` to `to` (default: the latest "
                       "checkpoint)", responses={200: ConsistencyProofOut},
                       query=[QueryParam("from", {"type": "integer", "minimum": 0}, "the older tree size",
                                         required=True),
                              QueryParam("to", {"type": "integer", "minimum": 0},
                                         "a tree size with a signed checkpoint")],
                       errors=[404, 422, 503]),
              log.consistency),
        Route(RouteDoc("GET", "/v1/catalogue", "Event types, metrics, units", responses={200: api.Catalogue}),
              meta.catalogue, dashboard_public=True),
        Route(RouteDoc("GET", "/v1/regions", "Child regions of a region", responses={200: api.RegionList},
                       query=[QueryParam("parent", {"type": "string", "pattern": REGION_CODE_PATTERN}),
                              QueryParam("year", {"type": "integer"})], errors=[404, 422]),
              meta.regions),
        Route(RouteDoc("GET", "/v1/openapi.json", "This document", responses={200: None}), openapi),
        Route(RouteDoc("GET", "/healthz", "Liveness", responses={200: api.Health}), meta.healthz),
        Route(RouteDoc("GET", "/readyz", "Readiness", responses={200: api.Readiness, 503: api.Readiness}),
              meta.readyz),
        Route(RouteDoc("GET", "/metrics", "Prometheus metrics", responses={200: None}, produces="text/plain"),
              meta.metrics),
    ]


def _with_min_position(route: Route) -> Route:
    if route.method != "GET" or route.path not in _READS:
        return route
    doc = route.doc
    return replace(route, doc=replace(doc, query=[*doc.query, _MIN_POSITION], errors=sorted({*doc.errors, 422, 503})))


@cache
def route_table() -> tuple[Route, ...]:
    """The routes, built once."""
    return tuple(_with_min_position(r) for r in _routes())


def roles_of(handler: Handler) -> list[str] | None:
    """The roles a handler admits, or None for an open route."""
    roles = getattr(handler, ROLES_KEY, None)
    return sorted(roles) if roles is not None else None


@cache
def openapi_document() -> bytes:
    """The OpenAPI document, rendered once."""
    docs = [replace(r.doc, roles=roles_of(r.handler)) for r in route_table()]
    document: dict[str, Any] = build_openapi(docs, title="qmstats", version="1")
    return orjson.dumps(document)


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.Response(body=openapi_document(), content_type="application/json")


# The dashboard page and its two assets: open, HTML/JS/CSS rather than API, so not in the OpenAPI document.
PAGE_ROUTES: tuple[tuple[str, Handler], ...] = (
    ("/", page.page), ("/campaigns/{campaign}", page.page), ("/static/{name}", page.asset))


def setup_routes(app: web.Application) -> None:
    """Register every route of the table, then the dashboard page."""
    for route in route_table():
        if route.dashboard_public:
            if route.method != "GET":
                raise ValueError(f"only GET routes may be public: {route.method} {route.path}")
            public_dashboard(route.handler)
        handler = route.handler
        if handler is meta.metrics and not app[SETTINGS].open_metrics:
            handler = meta.keyed_metrics
        app.router.add_route(route.method, route.pattern or route.path, handler)
    for path, handler in PAGE_ROUTES:
        app.router.add_route("GET", path, handler)
