"""Turning exact totals into the values the API shows. Pure."""

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from events.catalogue import METRICS

RATIO_PLACES: Final = Decimal("0.0001")


def display(metric: str, value: Decimal) -> int | str:
    """Counts as integers, money as an exact two-decimal string."""
    if METRICS[metric].kind == "money":
        return f"{value:.2f}"
    return int(value)


def ratio(numerator: Decimal, denominator: Decimal) -> str | None:
    """numerator ÷ denominator, half-even to 4 decimals, trailing zeros dropped; None when undefined."""
    if denominator == 0:
        return None
    rounded = (numerator / denominator).quantize(RATIO_PLACES, rounding=ROUND_HALF_EVEN)
    return format(rounded.normalize(), "f")
