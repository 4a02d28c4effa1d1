"""Dashboard polls answered before the middleware chain, from pre-serialised bodies.

A wall screen polls the same URL every few seconds and almost always gets the same answer. Once a read
handler has rendered an answer it files the body and its ETag here under the request's path and query and
what it reflects (projection position, log head, read-table identity, region-lists version). While that holds, a poll
with a bearer key this process has already verified is answered here: 304 when If-None-Match names the
ETag, else 200 with the stored bytes. The key is still checked (from the digest verified earlier, dropped on
every key change) and still rate-limited. Anything else (no key, an unknown key, a state that moved, a
refused rate) goes the full way through the middleware and the handler, which give the same answer or the
error. These answers are not in the access log or the per-route metrics: logging each would cost more than
answering it.
"""

import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import ETag, hdrs, web

from services.appkeys import DIRECTORY, KEYRING, LIMITER, POLL_ANSWERS, PROJECTION
from services.middleware import ROLES_KEY
from services.reads import POSITION_HEADER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@web.middleware
async def answer_polls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a repeated poll from memory when everything it depends on is unchanged; else pass it on."""
    if request.method != "GET":
        return await handler(request)
    projection = request.app[PROJECTION]
    answer = request.app[POLL_ANSWERS].get(request.path_qs, (projection.position, projection.head, projection.tables,
                                                             request.app[DIRECTORY].version))
    if answer is None:
        return await handler(request)
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    key = request.app[KEYRING].verified(token.strip()) if scheme.lower() == "bearer" else None
    roles: frozenset[str] | None = getattr(request.match_info.handler, ROLES_KEY, None)
    if key is None or roles is None or key.role not in roles or request.app[LIMITER].check(key.id) > 0:
        return await handler(request)
    supplied = request.headers.get("X-Request-ID", "")
    # The answer was filed at exactly this projection position (it is part of the lookup), so that is the
    # position it reflects; a min_position in the URL was met when the full path rendered it.
    headers = {"Cache-Control": "no-cache", POSITION_HEADER: str(projection.position),
               "X-Request-ID": supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex}
    tags = request.if_none_match
    response = web.Response(status=304, headers=headers) if tags and any(
        t.value in (answer.etag, "*") for t in tags) else \
        web.Response(body=answer.body, content_type="application/json", headers=headers)
    response.etag = ETag(value=answer.etag, is_weak=True)
    return response
