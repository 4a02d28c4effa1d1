"""Request middleware: request id and access log, error mapping, authentication and rate limits."""

import random
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from events.decide import Role
from services.appkeys import KEYRING, LIMITER, READ_POSITION, REQUEST_ID, REQUEST_KEY, SETTINGS, TELEMETRY
from services.errors import RateLimited, Unauthenticated, WrongRole, map_exception
from services.responses import ClientDisconnected, problem_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("qmstats.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
ACCESS_LOG_LEVELS = frozenset({"debug", "info"})
ROLES_KEY = "qmstats.roles"
PUBLIC_DASHBOARD_KEY = "qmstats.public_dashboard"


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


CLIENT_CLOSED = 499  # nginx's "client closed request": neither a success nor a server error


class ClientGone(web.StreamResponse):
    """What a request whose client disconnected mid-answer is recorded as; nothing more is sent."""

    def __init__(self) -> None:
        super().__init__(status=CLIENT_CLOSED)

    async def prepare(self, request: web.BaseRequest) -> None:
        """Nothing to send: the client is gone (aiohttp calls this after the handler)."""
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        """Nothing to send."""
        return None


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the id goes out with the headers, so a streamed answer (SSE, NDJSON), whose headers
    leave before its handler returns to the middleware, echoes it too."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers["X-Request-ID"] = rid


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID when it is usable, else a new random one (32 hex digits)."""
    supplied = request.headers.get("X-Request-ID", "")
    # 128 random bits as 32 hex digits, from the random module: an id to find a request by, not a secret, and a
    # third of secrets.token_hex's cost (no system call per request). The module reseeds in every forked worker.
    return supplied if supplied and _REQUEST_ID.match(supplied) else random.randbytes(16).hex()


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, map any error to problem+json, log one line, count it."""
    rid = request[REQUEST_ID] = request_id_of(request)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except (ConnectionResetError, ClientDisconnected):
        # A browser tab closed, a client that read what it wanted: normal for a streamed answer.
        # Counted apart (status 499 and qmstats_http_client_disconnects), logged quietly, no traceback.
        request.app[TELEMETRY].client_disconnects.labels(_route_name(request)).inc()
        response = ClientGone()
    except Exception as exc:
        mapped = map_exception(exc)
        if mapped.kind.status == 500:
            log.error("unhandled error", request_id=rid, exc_info=exc)
        elif mapped.kind.status == 503:
            log.warning("database unavailable", request_id=rid, error=str(exc))
        response = problem_response(mapped, instance=request.path, request_id=rid)
    response.headers["X-Request-ID"] = rid
    position = request.get(READ_POSITION)
    if position is not None and response.status < 400 and not response.prepared:
        response.headers["X-Qmstats-Position"] = str(position)
    route = _route_name(request)
    seconds = time.perf_counter() - started
    quiet = route in QUIET_ROUTES
    request.app[TELEMETRY].http_answered(request.method, route, response.status, None if quiet else seconds)
    # A filtered structlog call still costs ~9 µs per request: the level is checked first.
    if not quiet and request.app[SETTINGS].log_level in ACCESS_LOG_LEVELS:
        key = request.get(REQUEST_KEY)
        log.info("request", request_id=rid, key_id=key.id if key else None, method=request.method,
                 route=route, path=request.path, status=response.status, ms=round(seconds * 1000, 2))
    return response


def allow(*roles: Role) -> Callable[[Handler], Handler]:
    """Declare which roles may call a handler (admin may call everything)."""
    def mark(handler: Handler) -> Handler:
        setattr(handler, ROLES_KEY, frozenset(roles) | {"admin"})
        return handler
    return mark


def public_dashboard(handler: Handler) -> Handler:
    """Mark a read-only route the dashboard page needs: open without a key when QMSTATS_PUBLIC_DASHBOARD is set."""
    setattr(handler, PUBLIC_DASHBOARD_KEY, True)
    return handler


def _public_read(request: web.Request) -> bool:
    """A keyless GET of a dashboard route while the dashboard is public (a request with a key is checked as usual)."""
    return (request.method == "GET" and "Authorization" not in request.headers
            and getattr(request.match_info.handler, PUBLIC_DASHBOARD_KEY, False)
            and request.app[SETTINGS].public_dashboard)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a valid bearer key on every handler marked with ``allow``; then apply the key's rate limit."""
    roles: frozenset[str] | None = getattr(request.match_info.handler, ROLES_KEY, None)
    if roles is None:
        return await handler(request)
    if _public_read(request):
        # Anonymous readers share no key, so each client address gets its own budget.
        wait = request.app[LIMITER].check(f"public:{request.remote}")
        if wait > 0:
            raise RateLimited(request.app[LIMITER].retry_after(wait))
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send Authorization: Bearer <token>")
    ring, token = request.app[KEYRING], token.strip()
    # A token verified since the last key change is known without hashing it again (the ring's own rule).
    key = ring.verified(token) or await ring.authenticate(token)
    if key is None:
        raise Unauthenticated("the key is unknown or has been revoked")
    request[REQUEST_KEY] = key
    if key.role not in roles:
        raise WrongRole(key.role, sorted(roles), f"{request.method} {_route_name(request)}")
    wait = request.app[LIMITER].check(key.id)
    if wait > 0:
        raise RateLimited(request.app[LIMITER].retry_after(wait))
    return await handler(request)
