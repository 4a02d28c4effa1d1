"""The HTTP limit for dashboard polls: a bare aiohttp app that serves one cached JSON body with an ETag.

    .venv/bin/python bench/bare_app.py --port 8099 [--body-bytes 300] [--big-bytes 18000]

Same process model as ``qmstats serve``: one process, ``web.run_app`` on a uvloop loop, access log off,
127.0.0.1 only. ``GET /dashboard`` answers 304 when If-None-Match carries its (weak) ETag, else 200 with
the cached body, ``Cache-Control: no-cache`` either way: the same headers the dashboard route sends.
``GET /dashboard-big`` is the same with a body of ``--big-bytes`` (the size of qmstats' dashboard body).
No middleware, no authentication, no lookup: what is left is aiohttp's own cost per request.
"""

import argparse
import asyncio

import orjson
from aiohttp import ETag, web

ETAG = "dashboard-1000001-2017-000000--1000001-16384"


def make_body(size: int) -> bytes:
    """A dashboard-like JSON object of about ``size`` bytes."""
    body = {"campaign": "2017", "region": {"code": "000000", "name": "全国", "level": "nation"},
            "position": 1000001, "lag_events": 0, "metrics": {"dens_busted": 12345, "personnel": 678901}}
    text = orjson.dumps(body)
    body["padding"] = "x" * max(0, size - len(text) - 14)
    return orjson.dumps(body)


def create_app(body: bytes, big: bytes) -> web.Application:
    def answer(request: web.Request, content: bytes) -> web.Response:
        tags = request.if_none_match
        if tags and any(t.value in (ETAG, "*") for t in tags):
            response = web.Response(status=304)
        else:
            response = web.Response(body=content, content_type="application/json")
        response.etag = ETag(value=ETAG, is_weak=True)
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def dashboard(request: web.Request) -> web.Response:
        return answer(request, body)

    async def dashboard_big(request: web.Request) -> web.Response:
        return answer(request, big)

    app = web.Application()
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard-big", dashboard_big)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=300)
    parser.add_argument("--big-bytes", type=int, default=18_000, help="body size of /dashboard-big")
    args = parser.parse_args()
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    app = create_app(make_body(args.body_bytes), make_body(args.big_bytes))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
