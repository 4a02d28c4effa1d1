"""Field types shared by the event models: exact money, bounded counts, clean labels."""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, PlainSerializer, StringConstraints

MAX_COUNT: Final = 1_000_000_000
MAX_YUAN: Final = Decimal("1000000000000")  # one trillion yuan in a single event is not a typo we accept
_MONEY_TEXT = re.compile(r"^[0-9]{1,13}(\.[0-9]{1,2})?$")
_CENT: Final = Decimal("0.01")


def _parse_money(value: Any) -> Decimal:
    # JSON is parsed with parse_float=Decimal, so a number never passes through a float here.
    if isinstance(value, bool | float):
        raise ValueError("must be yuan as a decimal string such as \"152000.50\" or an exact JSON number, "
                         "never a float")
    if isinstance(value, str):
        # The usual spelling, answered first: the pattern already rules out a sign, an exponent and a third
        # decimal place, so only the upper bound is left to check.
        if not _MONEY_TEXT.match(value):
            raise ValueError("must be yuan written like \"152000.50\": digits, at most 2 decimal places")
        amount = Decimal(value)
        if amount > MAX_YUAN:
            raise ValueError(f"must be at most {MAX_YUAN:,} yuan in one event")
        return amount.quantize(_CENT)
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite amount of yuan")
        amount = value
    else:
        raise ValueError("must be yuan as a decimal string such as \"152000.50\" or a JSON number")
    try:
        exponent = amount.as_tuple().exponent
    except InvalidOperation as exc:  # pragma: no cover - Decimal(str) above already validated
        raise ValueError("is not a number") from exc
    # Bounds first: quantizing a number with more than 28 digits raises InvalidOperation.
    if amount < 0:
        raise ValueError("cannot be negative")
    if amount > MAX_YUAN:
        raise ValueError(f"must be at most {MAX_YUAN:,} yuan in one event")
    if not isinstance(exponent, int) or (exponent < -2 and amount != amount.quantize(_CENT)):
        raise ValueError("must have at most 2 decimal places (whole fen)")
    return amount.quantize(_CENT).copy_abs()  # copy_abs: a JSON -0.0 is stored as "0.00", not "-0.00"


Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
]
"""Yuan, exact, non-negative, at most two decimal places; serialised as a "152000.50" string."""

Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
"""A non-negative integer count; booleans and floats are refused."""

Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"),
]
"""A short free-text label (product category, media channel): no control characters."""

Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500,
                      pattern=r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]+$"),
]
"""A sentence of free text (a theme, a reason): no control characters except newline and tab."""

CAMPAIGN_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
"""A campaign id (normally the year): the one definition every model, route and parameter check uses."""
REGION_CODE_PATTERN: Final = r"^[0-9]{6}$"
"""A GB/T 2260 region code (six digits; 000000 is the nation)."""

CampaignId = Annotated[str, StringConstraints(pattern=CAMPAIGN_ID_PATTERN)]
RegionCode = Annotated[str, StringConstraints(pattern=REGION_CODE_PATTERN)]
