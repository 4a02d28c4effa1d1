"""The dashboard page: one HTML file, one script, one stylesheet, all served by qmstats itself (closed networks)."""

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import ETag, web

from events.errors import NotFound

STATIC = Path(__file__).resolve().parents[1] / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

# The page may talk to its own origin only: no CDN, no web font, no beacon can load even by mistake.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                           "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def _asset(name: str, content_type: str) -> Asset:
    body = (STATIC / name).read_bytes()
    return Asset(body, content_type, hashlib.sha256(body).hexdigest()[:20])


def _serve(request: web.Request, asset: Asset) -> web.Response:
    if any(tag.value == asset.etag for tag in request.if_none_match or ()):
        response = web.Response(status=304)
    else:
        response = web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8")
    response.etag = ETag(value=asset.etag)
    # Revalidate every load so a new release reaches wall screens without a cache flush.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def page(request: web.Request) -> web.Response:
    """The dashboard page (``/`` and ``/campaigns/{campaign}``); the script reads the campaign from the URL."""
    response = _serve(request, _asset("dashboard.html", "text/html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def asset(request: web.Request) -> web.Response:
    """The page's script or stylesheet (only those two names)."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"no asset {name}")
    return _serve(request, _asset(name, ASSETS[name]))
