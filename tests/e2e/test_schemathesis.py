"""Schemathesis against /v1/openapi.json: with a key of each role, no 5xx and no answer the document denies.

The service runs on 127.0.0.1 on the test's event loop; schemathesis (blocking, requests-based)
runs in a worker thread. Examples are bounded per operation and role, and derandomized.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.app import create_app
from tests.conftest import Database, Keys
from tests.conftest import test_settings as app_settings
from tests.factories import CAMPAIGN, event

ROLES = ("reporter", "viewer", "auditor", "admin")
ALLOWED_EXAMPLES = 15  # per operation, role and generation mode, where the role may call the operation
REFUSED_EXAMPLES = 2  # where it may not: every such request gets the same 403
# Excluded from generation, each for a reason:
EXCLUDED = {
    # An endless text/event-stream: a request never completes, so there is no response to check.
    # Its access rules are in test_access_table.py, its messages in test_stream.py.
    ("GET", "/v1/stream"): "endless SSE stream",
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@dataclass(frozen=True)
class Served:
    client: TestClient
    event_id: str


@pytest.fixture
async def served(database: Database, keys: Keys) -> AsyncIterator[Served]:
    """The service on 127.0.0.1 with campaign 2017 open and one event in it."""
    app = create_app(app_settings(), database.service_url)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.post("/v1/campaigns", json=CAMPAIGN, headers=keys.admin)).status == 201
        posted = event()
        assert (await client.post("/v1/events", json=posted, headers=keys.reporter)).status == 201
        yield Served(client, posted["event_id"])


@pytest.mark.slow
async def test_the_api_keeps_to_its_openapi_document_under_generated_requests(served: Served, keys: Keys) -> None:
    base_url = str(served.client.make_url("")).rstrip("/")
    document = orjson.loads(await (await served.client.get("/v1/openapi.json")).read())
    schema = schemathesis.openapi.from_dict(document)
    # Unknown query parameters are ignored, as HTTP APIs commonly do (a newer client may send one an older
    # server does not know); negative generation should not count adding one as "invalid input".
    # The keys are ours (one per role, sent with every request); schemathesis is not to invent or drop them.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    headers = {role: getattr(keys, role) for role in ROLES}
    existing = {"campaign": "2017", "event_id": served.event_id, "metric": "dens_busted"}

    session = requests.Session()
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    def fuzz_one(operation: Any, role: str, mode: GenerationMode, examples: int) -> None:
        checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
        # Valid requests go to things that exist (campaign 2017, the event posted), so they reach the
        # handlers' own checks instead of stopping at 404; invalid ones are generated throughout.
        path = {k: v for k, v in existing.items() if "{" + k + "}" in operation.path}
        strategy = operation.as_strategy(generation_mode=mode, **({"path_parameters": path}
                                                                    if mode is GenerationMode.POSITIVE else {}))

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, session=session, headers=headers[role], timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=checks)

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, not only the first
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            failures.extend(f"{operation.label} as {role} ({mode.value}): {e}"[:2500] for e in found)

    def fuzz() -> list[str]:
        covered = []
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in EXCLUDED:
                continue
            covered.append(operation.label)
            allowed = _roles(operation.definition.raw)
            for role in ROLES:
                examples = ALLOWED_EXAMPLES if allowed is None or role in allowed else REFUSED_EXAMPLES
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if mode is GenerationMode.NEGATIVE and not _has_input(operation.definition.raw):
                        continue  # nothing to make invalid
                    fuzz_one(operation, role, mode, examples)
        return covered

    covered = await asyncio.to_thread(fuzz)
    assert failures == [], "\n\n".join(failures)
    assert not [s for s in statuses if s >= 500], statuses
    assert 401 not in statuses  # every request carried a valid key
    tried = sum(statuses.values())
    assert len(covered) == len({(m, p) for p, ops in document["paths"].items() for m in ops}) - len(EXCLUDED)
    print(f"\nschemathesis: {tried} requests over {len(covered)} operations × {len(ROLES)} roles, "
          f"statuses {dict(sorted(statuses.items()))}")


def _roles(definition: dict[str, Any]) -> set[str] | None:
    """The roles an operation admits, from its description ("Roles: a, b"); None when it is open."""
    if not definition.get("security"):
        return None
    description: str = definition.get("description", "")
    return {r.strip() for r in description.removeprefix("Roles: ").split(",")}


def _has_input(definition: dict[str, Any]) -> bool:
    return bool(definition.get("parameters") or definition.get("requestBody"))
