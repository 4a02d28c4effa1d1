"""The HTTP limits: bare aiohttp handlers with nothing of qmstats in them.

    .venv/bin/python bench/bare_app.py --port 8099 [--body-bytes 300] [--big-bytes 18000]
                                       [--database-url URL] [--workers N]

Same process model as ``qmstats serve``: ``web.run_app`` on a uvloop loop, access log off, 127.0.0.1 only;
with ``--workers N`` (as serve) N processes bind the port with SO_REUSEPORT.

* ``GET /dashboard`` answers 304 when If-None-Match carries its (weak) ETag, else 200 with the cached body,
  ``Cache-Control: no-cache`` either way: the same headers the dashboard route sends. ``GET /dashboard-big``
  is the same with a body of ``--big-bytes`` (the size of qmstats' dashboard body).
* ``POST /ceiling`` (the HTTP ceiling for POSTs): reads the body, parses it as JSON and answers 201 with a
  results body shaped like ours. No database.
* ``POST /naive`` (the naive handler, with ``--database-url``): reads and parses the body, then one asyncpg
  INSERT of the event into ``bench_naive_events`` per request from a pool of 8, and answers 201 with the
  position PostgreSQL assigned. No validation, no idempotency, no hash chain, no group commit.

No middleware, no authentication, no lookup: what is left is aiohttp's (and asyncpg's) own cost per request.
"""

import argparse
import asyncio
import itertools
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator

import asyncpg
import orjson
from aiohttp import ETag, web

ETAG = "dashboard-1000001-2017-000000--1000001-16384"
NAIVE_TABLE = "bench_naive_events"
NAIVE_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} (
    position bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE, type text NOT NULL, campaign text NOT NULL,
    region text NOT NULL, occurred_at timestamptz NOT NULL, data jsonb NOT NULL)"""
NAIVE_INSERT = f"""INSERT INTO {NAIVE_TABLE} (event_id, type, campaign, region, occurred_at, data)
                   VALUES ($1::uuid, $2, $3, $4, $5::text::timestamptz, $6::jsonb) RETURNING position"""
POOL = web.AppKey("pool", asyncpg.Pool)


def make_body(size: int) -> bytes:
    """A dashboard-like JSON object of about ``size`` bytes."""
    body = {"campaign": "2017", "region": {"code": "000000", "name": "全国", "level": "nation"},
            "position": 1000001, "lag_events": 0, "metrics": {"dens_busted": 12345, "personnel": 678901}}
    text = orjson.dumps(body)
    body["padding"] = "x" * max(0, size - len(text) - 14)
    return orjson.dumps(body)


def created(event_id: object, position: int) -> web.Response:
    """201 with a body shaped like qmstats' append answer."""
    return web.Response(status=201, content_type="application/json", body=orjson.dumps(
        {"results": [{"event_id": event_id, "status": "created", "position": position}], "last_position": position}))


def create_app(body: bytes, big: bytes, database_url: str | None = None) -> web.Application:
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

    counter = itertools.count(1)

    async def ceiling(request: web.Request) -> web.Response:
        event = orjson.loads(await request.read())
        return created(event.get("event_id"), next(counter))

    async def naive(request: web.Request) -> web.Response:
        event = orjson.loads(await request.read())
        async with request.app[POOL].acquire() as conn:
            position = await conn.fetchval(NAIVE_INSERT, event["event_id"], event["type"], event["campaign"],
                                           event["region"], event["occurred_at"], orjson.dumps(event["data"]).decode())
        return created(event["event_id"], position)

    app = web.Application()
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard-big", dashboard_big)
    app.router.add_post("/ceiling", ceiling)
    if database_url:
        async def pool(app: web.Application) -> AsyncIterator[None]:
            app[POOL] = await asyncpg.create_pool(database_url, min_size=8, max_size=8)
            yield
            await app[POOL].close()

        app.cleanup_ctx.append(pool)
        app.router.add_post("/naive", naive)
    return app


async def prepare(database_url: str) -> None:
    """The naive handler's table, created once before the workers start."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(NAIVE_SCHEMA)
    finally:
        await conn.close()


def serve(args: argparse.Namespace, reuse_port: bool) -> None:
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    app = create_app(make_body(args.body_bytes), make_body(args.big_bytes), args.database_url)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop,
                reuse_port=reuse_port or None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=300)
    parser.add_argument("--big-bytes", type=int, default=18_000, help="body size of /dashboard-big")
    parser.add_argument("--database-url", help="enables POST /naive (one INSERT per request, pool of 8)")
    parser.add_argument("--workers", type=int, default=1, help="processes on the port (SO_REUSEPORT)")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(prepare(args.database_url))
    if args.workers <= 1:
        serve(args, reuse_port=False)
        return
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=serve, args=(args, True)) for _ in range(args.workers)]
    for child in children:
        child.start()

    def stop(_sig: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
