"""JSON and problem+json responses."""

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from schemas.problems import PROBLEM_CONTENT_TYPE
from services.errors import Mapped


def json_response(body: BaseModel | dict[str, Any] | list[Any], *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    """Serialise a model or plain JSON value (orjson; models through pydantic-core)."""
    payload = body.model_dump_json().encode() if isinstance(body, BaseModel) else orjson.dumps(body)
    return web.Response(body=payload, status=status, headers=headers, content_type="application/json")


def problem_response(mapped: Mapped, *, instance: str, request_id: str | None) -> web.Response:
    """An RFC 9457 problem+json response."""
    body: dict[str, Any] = {"type": mapped.kind.uri, "title": mapped.kind.title, "status": mapped.kind.status,
                            "detail": mapped.detail, "instance": instance, "request_id": request_id}
    body.update(mapped.extra)
    try:
        payload = orjson.dumps(body)
    except orjson.JSONEncodeError:
        # The error echoes client input (an event_id, a field name) that may hold lone surrogates,
        # which UTF-8 cannot carry; the stdlib escapes them as \udXXX instead of failing.
        payload = json.dumps(body, ensure_ascii=True).encode()
    response = web.Response(body=payload, status=mapped.kind.status, headers=mapped.headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


class ClientDisconnected(Exception):
    """The client went away while a streamed answer was being written.

    Deliberately not an ``OSError``: a handler writing inside a database snapshot must not have the client's
    closed socket taken for a lost database (a 503, a replica marked down). The middleware records it as 499.
    """


async def stream_to_client(response: web.StreamResponse, request: web.Request, chunks: AsyncIterator[bytes]) -> None:
    """Prepare ``response`` and write ``chunks`` to the client; ClientDisconnected when the client has gone."""
    try:
        await response.prepare(request)
    except ConnectionResetError as exc:
        raise ClientDisconnected(str(exc)) from exc
    async for chunk in chunks:
        try:
            await response.write(chunk)
        except ConnectionResetError as exc:
            raise ClientDisconnected(str(exc)) from exc
