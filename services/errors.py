"""Errors raised at the HTTP edge, and the one mapping from any exception to problem+json."""

from dataclasses import dataclass, field

from aiohttp import web

from events.decide import a_role
from events.errors import (
    BatchTooLarge,
    CampaignClosedError,
    CampaignConflict,
    DomainError,
    EventIdConflict,
    KeyRevoked,
    MalformedRequest,
    NotFound,
    OpenFlagsBlockClose,
    OutOfScope,
    StoreUnavailable,
    ValidationFailed,
)
from schemas import problems as p


class Unauthenticated(DomainError):
    """No key, or a key that is unknown or revoked."""


class RateLimited(DomainError):
    """The key has used up its request budget for now."""

    def __init__(self, retry_after: str) -> None:
        super().__init__(f"rate limit exceeded for this key; retry after {retry_after} s")
        self.retry_after = retry_after


class WrongRole(DomainError):
    """A valid key whose role may not call this route (403); says which role it is and which would do."""

    def __init__(self, role: str, allowed: list[str], what: str) -> None:
        super().__init__(f"this is {a_role(role)} key, which may not call {what}; it is for {', '.join(allowed)} keys")
        self.role = role
        self.allowed = allowed


class UnsupportedMediaType(DomainError):
    """The body is not declared as JSON."""


class NotAcceptable(DomainError):
    """The client accepts no representation this route produces."""


class InvalidParameter(DomainError):
    """A query or path parameter is malformed."""


class BodyTimeout(DomainError):
    """The client did not send its whole body within the body-read timeout."""


class NoCheckpoint(DomainError):
    """No signed checkpoint of the tree size asked for (yet: with ``retry_after`` when waiting helps)."""

    def __init__(self, detail: str, *, retry_after: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class NotInTree(NoCheckpoint):
    """The event is in the log but beyond the checkpoint's tree (a later checkpoint will hold it)."""


@dataclass(frozen=True, slots=True)
class Mapped:
    """An exception translated for the wire."""

    kind: p.ProblemType
    detail: str
    extra: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


_DOMAIN: dict[type[DomainError], p.ProblemType] = {
    MalformedRequest: p.MALFORMED,
    BatchTooLarge: p.TOO_LARGE,
    ValidationFailed: p.INVALID,
    EventIdConflict: p.CONFLICT,
    CampaignClosedError: p.CAMPAIGN_CLOSED,
    CampaignConflict: p.CAMPAIGN_CONFLICT,
    OpenFlagsBlockClose: p.OPEN_FLAGS,
    OutOfScope: p.FORBIDDEN,
    NotFound: p.NOT_FOUND,
    StoreUnavailable: p.UNAVAILABLE,
    Unauthenticated: p.UNAUTHENTICATED,
    KeyRevoked: p.UNAUTHENTICATED,
    RateLimited: p.RATE_LIMITED,
    UnsupportedMediaType: p.UNSUPPORTED_MEDIA,
    NotAcceptable: p.NOT_ACCEPTABLE,
    WrongRole: p.FORBIDDEN,
    InvalidParameter: p.INVALID_PARAMETER,
    BodyTimeout: p.REQUEST_TIMEOUT,
    NotInTree: p.NOT_IN_TREE,
    NoCheckpoint: p.NO_CHECKPOINT,
}

_HTTP: dict[int, p.ProblemType] = {
    400: p.MALFORMED, 401: p.UNAUTHENTICATED, 403: p.FORBIDDEN, 404: p.NOT_FOUND, 405: p.METHOD_NOT_ALLOWED,
    406: p.NOT_ACCEPTABLE, 408: p.REQUEST_TIMEOUT, 413: p.TOO_LARGE, 415: p.UNSUPPORTED_MEDIA, 422: p.INVALID,
    429: p.RATE_LIMITED, 503: p.UNAVAILABLE,
}


def map_exception(exc: BaseException) -> Mapped:
    """The problem to answer for ``exc``. Unknown exceptions become a 500 without internals."""
    if isinstance(exc, DomainError):
        kind = next(v for k, v in _DOMAIN.items() if isinstance(exc, k))
        extra: dict[str, object] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, ValidationFailed):
            extra["errors"] = [{"index": e.index, "event_id": e.event_id, "loc": list(e.loc), "msg": e.msg,
                                "code": e.code} for e in exc.errors]
        elif isinstance(exc, OpenFlagsBlockClose):
            extra["flags"] = exc.flags
        elif isinstance(exc, EventIdConflict):
            extra.update(event_id=exc.event_id, index=exc.index)
        elif isinstance(exc, WrongRole):
            extra.update(key_role=exc.role, allowed_roles=exc.allowed)
        elif isinstance(exc, RateLimited):
            headers["Retry-After"] = exc.retry_after
        elif isinstance(exc, NoCheckpoint):
            headers.update({"Retry-After": exc.retry_after} if exc.retry_after is not None else {})
        elif isinstance(exc, StoreUnavailable):
            headers["Retry-After"] = "2"
        elif isinstance(exc, Unauthenticated | KeyRevoked):
            headers["WWW-Authenticate"] = 'Bearer realm="qmstats"'  # RFC 9110 §15.5.2, RFC 6750 §3
        return Mapped(kind, exc.detail, extra, headers)
    if isinstance(exc, web.HTTPException):
        kind = _HTTP.get(exc.status, p.ProblemType(f"http-{exc.status}", exc.reason, exc.status))
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else kind.title
        if exc.status == 413:
            detail = "the request body is larger than the limit"
        # A 405 must say which methods the resource allows (RFC 9110 §15.5.6).
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return Mapped(kind, detail, headers=headers)
    return Mapped(p.INTERNAL, "an unexpected error occurred; it has been logged with this request id")
