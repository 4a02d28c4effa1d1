"""Data-quality rules as data: what each rule checks, its stable code, severity and bilingual text. Pure.

Two tiers (issue 15). An ``InEventRule`` is a certain impossibility inside one event: it is refused at
ingest (422) with the rule's code in the error item. A ``FlagRule`` is a plausibility check: it never
blocks an event; the flags projection (projections/quality.py) raises a flag when it fires. Both are
declared in events/catalogue.py next to the types and metrics they are about.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class InEventRule:
    """A relation that cannot be false within one event's data; ``holds`` gets the validated payload."""

    code: str
    field: str
    """The field the error item points at (``loc`` = ("data", field))."""
    holds: Callable[[Mapping[str, Any]], bool]
    message_zh: str
    message_en: str
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class FlagRule:
    """A plausibility rule the flags projection applies; ``params`` are its thresholds (documented in README)."""

    code: str
    severity: Severity
    message_zh: str
    """Template: {region} {metric} {observed} {expected} are filled in."""
    message_en: str
    params: Mapping[str, Decimal | int | str] = field(default_factory=dict)
    name_zh: str = ""
    """What the flag is called in a published sentence (the summary's data-quality note)."""
    name_en: str = ""


def check_in_event(rules: tuple[InEventRule, ...], data: Mapping[str, Any], title: str) -> None:
    """Raise a pydantic ValidationError (one line per broken rule, its type = the rule code) if any rule fails."""
    broken = [rule for rule in rules if not rule.holds(data)]
    if not broken:
        return
    details: list[InitErrorDetails] = [
        {"type": PydanticCustomError(rule.code, "{en} ({zh})", {"en": rule.message_en, "zh": rule.message_zh}),
         "loc": (rule.field,), "input": data.get(rule.field)}
        for rule in broken]
    raise ValidationError.from_exception_data(title, details)
