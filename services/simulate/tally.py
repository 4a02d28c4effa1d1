"""Counting what the service answered, event by event, against what the plan expected it to answer."""

from dataclasses import dataclass, field

from services.simulate.client import Answer
from services.simulate.plan import Submission


@dataclass(slots=True)
class Tally:
    """What the service answered, per event (network retries not counted as events)."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    retried_duplicates: int = 0
    already_stored: int = 0
    failed: int = 0
    retries: int = 0
    last_position: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Note an answer the plan did not expect."""
        self.problems.append(text)


def settle(submission: Submission, answer: Answer, tally: Tally) -> str | None:
    """Count one answer; returns why the whole run must stop (a refused token), else None."""
    n, where = len(submission.events), f"submission {submission.index}"
    if answer.status in (200, 201):
        body = answer.json()
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != n:
            tally.failed += n
            tally.problem(f"{where}: {answer.status} without one result per event: {answer.body[:200]!r}")
            return None
        if submission.expect_status is not None:
            tally.problem(f"{where} ({submission.reason}) was accepted; expected {submission.expect_status}")
        for kind, result in zip(submission.kinds, results, strict=True):
            if result["status"] == "created":
                tally.accepted += 1
                if kind == "resend":
                    tally.problem(f"{where}: resent event {result['event_id']} was created, not a duplicate")
                continue
            tally.duplicates += 1
            if kind != "resend":
                tally.accepted += 1
                if answer.attempts > 1:
                    tally.retried_duplicates += 1
                else:
                    tally.already_stored += 1
        tally.last_position = max(tally.last_position, body["last_position"])
        return None
    body = answer.json()
    detail = body.get("detail") if isinstance(body, dict) else answer.body[:200].decode("utf-8", "replace")
    if answer.status in (401, 403):
        return f"the service refused the token ({answer.status}): {detail}"
    tally.rejected += n
    if submission.expect_status != answer.status:
        errors = body.get("errors") if isinstance(body, dict) else None
        tally.problem(f"{where} ({submission.reason or 'valid'}, {n} event(s)) was refused {answer.status}: "
                      f"{detail} {errors or ''}".rstrip())
    return None
