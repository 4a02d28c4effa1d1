"""GET /v1/campaigns/{c}/summary in json, md, html or csv; zh or en."""

import asyncio

from aiohttp import web

from services.appkeys import DASHBOARD_CACHE, PROJECTION
from services.errors import InvalidParameter
from services.handlers.params import campaign_path
from services.logbinding import covering, with_checkpoint
from services.middleware import allow
from services.reads import Basis, snapshot
from services.summary_formats import CONTENT_TYPES, render
from services.summary_loading import load_summary

FLAGS_WAIT_SECONDS = 2.0
FLAGS_POLL_SECONDS = 0.02


@allow("viewer", "auditor")
async def summary(request: web.Request) -> web.Response:
    """The year-end summary: frozen at the last close (byte for byte the same later), provisional before."""
    fmt = request.query.get("format") or "json"  # empty, like absent, means the default
    lang = request.query.get("lang") or "zh"
    if fmt not in CONTENT_TYPES:
        raise InvalidParameter("format must be json, md, html or csv")
    if lang not in ("zh", "en"):
        raise InvalidParameter("lang must be zh or en")
    campaign = campaign_path(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLAGS_WAIT_SECONDS
    while True:
        async with snapshot(request, Basis.PROJECTION) as snap:
            loaded = await load_summary(snap.conn, campaign, flags_wait_seconds=0)
            signed = await covering(snap.conn, loaded.position) if fmt == "json" else None
        # The flags projection runs a moment behind the figures. A snapshot never sees it move, so wait for it
        # (bounded) with fresh snapshots: the summary then states the flags as of its own position.
        quality = loaded.quality
        if quality is None or quality.scored_to >= loaded.position or loop.time() >= deadline:
            break
        await asyncio.sleep(FLAGS_POLL_SECONDS)
    # The read tables' identity is in the key: a rebuild that corrected figures must not be served stale.
    key = ("summary", campaign, loaded.position, loaded.final, request.app[PROJECTION].tables, fmt, lang,
           repr(loaded.quality),  # flags scored further (or reviewed) since: a new body
           signed.tree_size if signed is not None else None)
    body = request.app[DASHBOARD_CACHE].get(key)
    if body is None:
        body = render(fmt, lang, loaded).encode()
        if fmt == "json":  # the signed history the figures came from (null for the second before it is signed)
            body = with_checkpoint(body, signed)
        request.app[DASHBOARD_CACHE].put(key, body)
    response = web.Response(body=body, content_type=CONTENT_TYPES[fmt], charset="utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response
