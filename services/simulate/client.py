"""Posting submissions as a regional system does: retry the same request on network errors, 5xx and 429.

A retry resends the same body (same event_ids), so a request whose first attempt was stored but
whose answer was lost comes back ``200 duplicate``; that is how the service makes retries safe.
"""

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from services.simulate.plan import Submission

RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries per request, at most ``budget_seconds`` in all, waits doubling from
    ``first_wait`` up to ``max_wait`` (with jitter; a Retry-After header is honoured)."""

    attempts: int = 6
    budget_seconds: float = 60.0
    first_wait: float = 0.2
    max_wait: float = 5.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    """The final HTTP answer to a submission and how many attempts it took."""

    status: int
    body: bytes
    attempts: int

    def json(self) -> Any:
        """The body parsed (None when it is not JSON)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class GaveUp(Exception):
    """Every attempt failed; whether the service stored the submission is unknown."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {reason}")
        self.attempts = attempts


class EventPoster:
    """POSTs submissions to ``{base}/v1/events`` with a bearer token, retrying what is safe to retry."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str, policy: RetryPolicy,
                 deadline: float, run_id: str) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/v1/events"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._policy = policy
        self._deadline = deadline
        self._run_id = run_id
        self._jitter = random.Random()  # not the plan's generator: waits must not change what is sent
        self.retries = 0

    async def post(self, submission: Submission) -> Answer:
        """The first answer that is not worth retrying; raises GaveUp when attempts or time run out."""
        body = orjson.dumps(submission.body())
        policy = self._policy
        stop = min(time.monotonic() + policy.budget_seconds, self._deadline)
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            headers = self._headers | {"X-Request-ID": f"sim-{self._run_id}-{submission.index}-{attempt}"}
            # A request under way is given its full time even past the deadline: cutting it short would leave
            # its fate unknown. The deadline only stops further attempts.
            timeout = aiohttp.ClientTimeout(total=policy.timeout_seconds)
            try:
                async with self._session.post(self._url, data=body, headers=headers, timeout=timeout) as response:
                    payload = await response.read()
                    if response.status not in RETRYABLE_STATUS:
                        return Answer(response.status, payload, attempt)
                    reason, retry_after = f"HTTP {response.status}", response.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            wait = self._wait(attempt, retry_after)
            if attempt >= policy.attempts or time.monotonic() + wait >= stop:
                raise GaveUp(reason, attempt)
            self.retries += 1
            await asyncio.sleep(wait)

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        backoff = min(self._policy.max_wait, self._policy.first_wait * 2.0 ** (attempt - 1))
        wait: float = backoff * (0.5 + self._jitter.random())
        if retry_after is not None and retry_after.isdigit():
            wait = max(wait, float(retry_after))
        return wait
