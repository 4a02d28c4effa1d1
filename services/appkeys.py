"""Typed keys for what the app and each request carry."""

import asyncpg
from aiohttp import web

from events.key_store import ApiKey
from events.writer import GroupCommitWriter
from services.cache import PollAnswers, ResponseCache
from services.directory import Directory
from services.errors import Unauthenticated
from services.integrator import IntegratorState
from services.integrator_thread import IntegratorThread
from services.keyring import KeyRing
from services.projection_state import ProjectionState
from services.projector_process import ProjectorWorker
from services.ratelimit import RateLimiter
from services.replicas import ReplicaSet
from services.settings import Settings
from services.state import ServiceState
from services.streams import OpenStreams
from services.telemetry import Telemetry

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
WRITER = web.AppKey("writer", GroupCommitWriter)
KEYRING = web.AppKey("keyring", KeyRing)
LIMITER = web.AppKey("limiter", RateLimiter)
TELEMETRY = web.AppKey("telemetry", Telemetry)
STATE = web.AppKey("state", ServiceState)
PROJECTION = web.AppKey("projection", ProjectionState)
PROJECTOR = web.AppKey("projector", ProjectorWorker)
FLAGS_PROJECTOR = web.AppKey("flags_projector", ProjectorWorker)
DASHBOARD_CACHE = web.AppKey("dashboard_cache", ResponseCache)
REPLICAS = web.AppKey("replicas", ReplicaSet)
POLL_ANSWERS = web.AppKey("poll_answers", PollAnswers)
DIRECTORY = web.AppKey("directory", Directory)
STREAMS = web.AppKey("streams", OpenStreams)
INTEGRATOR = web.AppKey("integrator", IntegratorThread)
INTEGRATION = web.AppKey("integration", IntegratorState)
FOLLOWERS = web.AppKey("followers", list[ProjectorWorker | IntegratorThread])
"""The workers that follow the log in this process (projector, integrator): woken on every append."""

REQUEST_KEY = web.RequestKey("api_key", ApiKey)
REQUEST_ID = web.RequestKey("request_id", str)
READ_POSITION = web.RequestKey("read_position", int)
"""The position a read answer reflects (sent as X-Qmstats-Position)."""


def api_key(request: web.Request) -> ApiKey:
    """The authenticated key of a request; Unauthenticated when it came without one (a public dashboard read)."""
    key: ApiKey | None = request.get(REQUEST_KEY)
    if key is None:
        raise Unauthenticated("send Authorization: Bearer <token>")
    return key


def request_id(request: web.Request) -> str:
    """The request id (from X-Request-ID or generated)."""
    return request[REQUEST_ID]
