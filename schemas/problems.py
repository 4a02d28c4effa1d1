"""RFC 9457 problem details: one stable ``type`` per kind of error."""

from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"


class ItemProblem(BaseModel):
    """One invalid item of a request."""

    index: int | None = Field(description="position of the item in the request's events (null: the body)")
    event_id: str | None
    loc: list[str | int] = Field(description="path to the offending field inside the item")
    msg: str
    code: str = Field(default="invalid", description="stable machine code: a catalogue rule's code (e.g. "
                      "passed_exceeds_sampled), the validator's error type (e.g. missing), or invalid")


class Problem(BaseModel):
    """An error response (application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ItemProblem] | None = None


@dataclass(frozen=True, slots=True)
class ProblemType:
    """A kind of error: its stable URI, title and HTTP status."""

    slug: str
    title: str
    status: int

    @property
    def uri(self) -> str:
        """The stable ``type`` member of the problem."""
        return f"urn:qmstats:problem:{self.slug}"


MALFORMED = ProblemType("malformed-json", "The body is not valid JSON", 400)
UNAUTHENTICATED = ProblemType("unauthenticated", "A valid API key is required", 401)
FORBIDDEN = ProblemType("forbidden", "This key may not do that", 403)
NOT_FOUND = ProblemType("not-found", "Not found", 404)
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", "Method not allowed", 405)
NOT_ACCEPTABLE = ProblemType("not-acceptable", "No acceptable representation", 406)
CONFLICT = ProblemType("event-id-conflict", "The event_id was already used for different content", 409)
CAMPAIGN_CLOSED = ProblemType("campaign-closed", "The campaign is closed", 409)
CAMPAIGN_CONFLICT = ProblemType("campaign-conflict", "The campaign is not in a state that allows this", 409)
OPEN_FLAGS = ProblemType("open-quality-flags", "Open data-quality flags block closing the campaign", 409)
TOO_LARGE = ProblemType("too-large", "The request is too large", 413)
REQUEST_TIMEOUT = ProblemType("request-timeout", "The request body did not arrive in time", 408)
UNSUPPORTED_MEDIA = ProblemType("unsupported-media-type", "The body must be application/json", 415)
INVALID = ProblemType("validation-failed", "Invalid events; nothing was stored", 422)
INVALID_PARAMETER = ProblemType("invalid-parameter", "Invalid query parameter", 422)
RATE_LIMITED = ProblemType("rate-limited", "Too many requests for this key", 429)
INTERNAL = ProblemType("internal-error", "Internal error", 500)
NO_CHECKPOINT = ProblemType("no-checkpoint", "No signed checkpoint of that tree size", 404)
NOT_IN_TREE = ProblemType("not-in-tree", "The event is not in that checkpoint's tree", 409)
UNAVAILABLE = ProblemType("unavailable", "The service cannot reach its database right now", 503)
