"""The OpenAPI 3.1 document, generated from the pydantic models and the route table."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.json_schema import models_json_schema

from events.fields import CAMPAIGN_ID_PATTERN, REGION_CODE_PATTERN
from schemas.problems import PROBLEM_CONTENT_TYPE, Problem


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One query parameter of a route."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class RouteDoc:
    """What the document says about one route."""

    method: str
    path: str
    summary: str
    request: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    query: list[QueryParam] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    produces: str = "application/json"
    text_formats: tuple[str, ...] = ()
    """Other media types the 200 answer may have (chosen by a query parameter), as text."""
    roles: list[str] | None = None
    """The roles that may call it; None for an open route."""


class _EnvelopeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: UUID
    schema_version: int = 1
    campaign: str = Field(pattern=CAMPAIGN_ID_PATTERN)
    region: str = Field(pattern=REGION_CODE_PATTERN, description="GB/T 2260 code; 000000 is the nation")
    occurred_at: datetime = Field(description="RFC 3339 with a UTC offset, inside the campaign window")


def event_models(payloads: dict[str, type[BaseModel]]) -> type[BaseModel]:
    """The POST /v1/events body: one event (a union over the catalogue, by ``type``) or a batch."""
    variants = [
        create_model(
            "".join(part.title() for part in name.split("_")) + "Event",
            __base__=_EnvelopeBase,
            type=(Literal[name], ...),  # type: ignore[arg-type]
            data=(payload, ...),
        )
        for name, payload in payloads.items()
    ]
    one = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007

    class EventIn(RootModel[one]):  # type: ignore[valid-type]
        """One event: the envelope with the ``data`` model of its ``type``."""

    class EventBatchIn(BaseModel):
        """Up to 1000 events, stored all or nothing."""

        model_config = ConfigDict(extra="forbid")
        events: Annotated[list[one], Field(min_length=1, max_length=1000)]  # type: ignore[valid-type]

    class PostEventsBody(RootModel[EventIn | EventBatchIn]):
        """One event, or ``{"events": [...]}``."""

    return PostEventsBody


def build_openapi(routes: list[RouteDoc], *, title: str, version: str,
                  extra_request_models: dict[str, list[type[BaseModel]]] | None = None) -> dict[str, Any]:
    """Assemble the OpenAPI 3.1 document."""
    models: list[type[BaseModel]] = [Problem]
    for route in routes:
        if route.request is not None:
            models.append(route.request)
        models.extend(m for m in route.responses.values() if m is not None)
    for extra in (extra_request_models or {}).values():
        models.extend(extra)
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema([(m, "validation") for m in unique],
                                   ref_template="#/components/schemas/{model}")
    components = top.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method.lower()}{_op(route.path)}"}
        if route.roles is not None:
            op["security"] = [{"bearer": []}]
            op["description"] = "Roles: " + ", ".join(sorted(route.roles))
        else:
            op["security"] = []
        # Every handler reads an optional parameter sent empty (``?region=``) as if it were absent.
        params = [{"name": q.name, "in": "query", "required": q.required, "schema": q.schema,
                   "description": q.description, **({} if q.required else {"allowEmptyValue": True})}
                  for q in route.query]
        params += [{"name": name, "in": "path", "required": True,
                    "schema": dict(PATH_PARAMS.get(name, {"type": "string"}))} for name in _path_params(route.path)]
        if params:
            op["parameters"] = params
        if route.request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(route.request)}}}
        responses: dict[str, Any] = {}
        for status, model in route.responses.items():
            content = {route.produces: {"schema": ref(model)}} if model is not None else None
            if content is not None and status == 200:
                content |= {media: {"schema": {"type": "string"}} for media in route.text_formats}
            responses[str(status)] = {"description": _reason(status), **({"content": content} if content else {})}
        for status in sorted(set(route.errors) | ({401, 403, 429} if route.roles is not None else set())):
            responses[str(status)] = {"description": _reason(status),
                                      "content": {PROBLEM_CONTENT_TYPE: {"schema": ref(Problem)}}}
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


# What a path parameter may look like; anything else is answered 404 (it cannot name such a thing).
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "campaign": {"type": "string", "pattern": CAMPAIGN_ID_PATTERN},
    "event_id": {"type": "string", "format": "uuid"},
    # tlog-tiles: a level 0-63; an index as zero-padded 3-digit elements (x001/x234/067 beyond 999), .p/W if partial.
    "level": {"type": "string", "pattern": "^(0|[1-9][0-9]?)$"},
    "index": {"type": "string", "pattern": "^[0-9]{3}(\\.p/[1-9][0-9]{0,2})?$"},
}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _op(path: str) -> str:
    return "".join(p.strip("{}").title().replace("_", "") for p in path.split("/") if p and p != "v1")


_REASONS = {200: "OK", 201: "Created", 304: "Not Modified", 400: "Malformed JSON", 401: "No or bad key",
            403: "Not allowed for this key", 404: "Not found", 409: "Conflict", 413: "Too large",
            415: "Not JSON", 422: "Invalid", 429: "Rate limited", 503: "Database unavailable"}


def _reason(status: int) -> str:
    return _REASONS.get(status, "Response")
