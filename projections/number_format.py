"""Turning exact totals into the values the API shows. Pure."""

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Final

from events.catalogue import METRICS

RATIO_PLACES: Final = 10
"""Ratios are exact when the quotient terminates within this many decimal places, else rounded to them."""


def display(metric: str, value: Decimal) -> int | str:
    """Counts as integers, money as an exact two-decimal string."""
    if METRICS[metric].kind == "money":
        return f"{value:.2f}"
    return int(value)


def ratio(numerator: Decimal, denominator: Decimal) -> str | None:
    """numerator ÷ denominator as a decimal string; None when the denominator is 0.

    The one rule for every ratio the service shows (dashboard, summary, CSV, page): exact when the
    quotient terminates within 10 decimal places (18301/20000 → "0.91505"), otherwise rounded half-even
    to 10 places (2/3 → "0.6666666667"); trailing zeros dropped. The counts are always shown beside it.
    """
    if denominator == 0:
        return None
    with localcontext() as exact:
        exact.prec = 80  # ample for any numerator and denominator the catalogue allows
        rounded = (numerator / denominator).quantize(Decimal(1).scaleb(-RATIO_PLACES), rounding=ROUND_HALF_EVEN)
    return format(rounded.normalize(), "f")
