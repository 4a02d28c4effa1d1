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

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from services.appkeys import DIRECTORY, KEYRING, LIMITER, POLL_ANSWERS, PROJECTION
from services.cache import PollAnswer
from services.middleware import ROLES_KEY, request_id_of
from services.reads import POSITION_HEADER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _not_modified(request: web.Request, answer: PollAnswer) -> bool:
    """If-None-Match names the answer's ETag (weak comparison, RFC 9110 13.1.2) or is ``*``."""
    raw = request.headers.get(hdrs.IF_NONE_MATCH)
    if raw is None:
        return False
    if raw == answer.etag_header:  # what a poller sends back: the validator it was given, verbatim
        return True
    tags = request.if_none_match
    return bool(tags) and any(t.value in (answer.etag, "*") for t in tags or ())


@web.middleware
async def answer_polls(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a repeated poll from memory when everything it depends on is unchanged; else pass it on."""
    if request.method != "GET":
        return await handler(request)
    app = request.app
    projection = app[PROJECTION]
    answer = app[POLL_ANSWERS].get(request.path_qs, (projection.position, projection.head, projection.tables,
                                                     app[DIRECTORY].version))
    if answer is None:
        return await handler(request)
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    key = app[KEYRING].verified(token.strip()) if scheme.lower() == "bearer" else None
    roles: frozenset[str] | None = getattr(request.match_info.handler, ROLES_KEY, None)
    if key is None or roles is None or key.role not in roles or app[LIMITER].check(key.id) > 0:
        return await handler(request)
    # The answer was filed at exactly this projection position (it is part of the lookup), so that is the
    # position it reflects; a min_position in the URL was met when the full path rendered it. The ETag goes
    # in as the header the handler's ETag setter produced (and validated) when it rendered the answer.
    headers = {"Cache-Control": "no-cache", POSITION_HEADER: str(projection.position),
               "X-Request-ID": request_id_of(request), hdrs.ETAG: answer.etag_header}
    if _not_modified(request, answer):
        return web.Response(status=304, headers=headers)
    return web.Response(body=answer.body, content_type="application/json", headers=headers)
