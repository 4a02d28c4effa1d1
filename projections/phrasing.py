"""Year-end phrasing (概数, after GB/T 15835): an exact total turned into report text. Pure, no I/O.

SPEC §5 is the contract; this module is its only implementation. Totals are computed
exactly first and phrased last: :func:`phrase_approx` takes the exact value and returns
the text together with the interval the text promises, so a caller can show the exact
value beside it and a test can check that the promise holds.

Readings of SPEC §5 where its words leave room (each pinned by a test):

* **Significant digits** are counted on the exact value, from the first non-zero digit
  to the last non-zero digit; zeros after the last non-zero digit, fen zeros included,
  do not count. ``Decimal("350000000.00")`` has 2 (3.5亿), ``Decimal("0.50")`` has 1
  (0.5), ``Decimal("1.05")`` has 3 and ``Decimal("13000.50")`` has 6. So an amount with
  non-zero 角/分 is exact at ≤ 2 significant digits only when it is below 10 yuan and
  its digits fit in two (``0.05``, ``0.35``, ``1.5``, ``9.9``); from 10 yuan up, any
  non-zero 角/分 is a third significant digit and the amount falls through to rules 2–4
  (``Decimal("152000.50")`` → 15万余, ``Decimal("350000000.50")`` → 约3.5亿).
* **Zero** has no significant digit and is exact: ``"0"``. Negative, non-finite, float
  and bool inputs are refused (totals are never negative; money is never a float).
* **Units** follow the value the text states: 近R takes R's unit (99999 → 近10万), the
  rest take the unit of the stated number, which always has the same magnitude as x.
  Numbers in a unit are written with their exact digits, trailing zeros trimmed, so a
  2-significant-digit number is never shown with a trailing ``.0`` (约3亿, not 约3.0亿).
* **Rule 4, "a decimal would be needed"** is checked before "below 10⁵": the unit
  below 10⁵ is 1, so an amount under 10 yuan with 3+ significant digits (1.05) gets
  ``约`` + half-even rounding (约1), never ``1.0余`` (a decimal with 余 contradicts itself).
* **约 never crosses a digit or a unit**: rounding x up to (d+1)·10^e needs
  x ≥ (d+0.95)·10^e, which lies inside the 近 window [0.95·(d+1)·10^e, (d+1)·10^e),
  and rule 2 fires first (999500000 → 近10亿, 396000000 → 近4亿, never 约10亿 or 约4.0亿).
  The text of a 约 phrase is still rendered by the unit rules, whatever the number.
* **约 promises** x within half a unit of the second significant digit of the rounded
  number (约3.5亿: 3.45亿 ≤ x ≤ 3.55亿), both ends included since half-even rounding
  can land on either. SPEC §5 has no "estimated" input, so 约 only ever comes from the
  last case of rule 4: counts between 10⁵ and 10⁶ give 10万 / 10万余 / 近10万, never 约10万.
* **Promised intervals**: exact [x, x]; 近R [0.95R, R); 上千 (1000, 2000);
  余/多 (L, L + step); 约 [r − step/2, r + step/2]. :meth:`Phrase.covers` applies them.
"""

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

Qualifier = Literal["近", "上千", "余", "多", "约"]
Rule = Literal["exact", "near", "thousand", "more", "about"]

SIGNIFICANT_DIGITS: Final = 2
NEAR_SHARE: Final = Decimal("0.95")
WAN: Final = Decimal(10) ** 4
YI: Final = Decimal(10) ** 8
_WAN_FROM: Final = Decimal(10) ** 5
_THOUSAND: Final = Decimal(1000)
_TWO_THOUSAND: Final = Decimal(2000)
_LOW_CLOSED: Final[frozenset[Rule]] = frozenset({"exact", "near", "about"})
_HIGH_CLOSED: Final[frozenset[Rule]] = frozenset({"exact", "about"})


@dataclass(frozen=True, slots=True)
class Phrase:
    """A phrased total: the text, its one qualifier (if any), the rule that fired and what it promises."""

    text: str
    """What the report prints, e.g. ``近300万``."""
    qualifier: Qualifier | None
    rule: Rule
    number: Decimal
    """The number the text writes: 3000000 for ``近300万``, 1000 for ``上千``."""
    low: Decimal
    high: Decimal
    """The promised interval's ends; which ends are included depends on ``rule``."""

    def covers(self, value: int | Decimal) -> bool:
        """Whether ``value`` lies in the interval the phrase promises."""
        above = value >= self.low if self.rule in _LOW_CLOSED else value > self.low
        below = value <= self.high if self.rule in _HIGH_CLOSED else value < self.high
        return above and below


def significant_digits(value: int | Decimal) -> int:
    """How many digits from the first non-zero digit to the last non-zero one (0 for zero)."""
    digits = "".join(map(str, _as_decimal(value).as_tuple().digits)).strip("0")
    return len(digits)


def format_figure(value: int | Decimal) -> str:
    """An exact number in report form: plain digits below 10⁵, 万 from 10⁵, 亿 from 10⁸, zeros trimmed."""
    amount = _as_decimal(value)
    unit_name, unit = _unit(amount)
    return _digits(_shift(amount, -unit.adjusted())) + unit_name


def phrase_approx(value: int | Decimal) -> Phrase:
    """Phrase an exact count or yuan amount by the first SPEC §5 rule that matches."""
    x = _as_decimal(value)
    if significant_digits(x) <= SIGNIFICANT_DIGITS:
        exact = _tidy(x)
        return Phrase(format_figure(exact), None, "exact", exact, exact, exact)

    magnitude = x.adjusted()  # exponent of the leading digit: 10**magnitude <= x < 10**(magnitude + 1)
    leading = x.as_tuple().digits[0]
    round_figure = (leading + 1) * _power(magnitude)
    if NEAR_SHARE * round_figure <= x:  # x < round_figure always holds here
        target = _tidy(round_figure)
        return Phrase("近" + format_figure(target), "近", "near", target, _tidy(NEAR_SHARE * target), target)

    if _THOUSAND < x < _TWO_THOUSAND:
        return Phrase("上千", "上千", "thousand", _THOUSAND, _THOUSAND, _TWO_THOUSAND)

    step = _power(magnitude - 1)
    unit_name, unit = _unit(x)
    if step < unit:
        rounded = x.quantize(step, rounding=ROUND_HALF_EVEN)
        half = step / 2
        return Phrase(
            "约" + format_figure(rounded), "约", "about", _tidy(rounded), _tidy(rounded - half), _tidy(rounded + half)
        )

    floor = x.quantize(step, rounding=ROUND_FLOOR)
    shown = _digits(_shift(floor, -unit.adjusted()))
    qualifier: Qualifier
    if not unit_name:
        text, qualifier = f"{shown}余", "余"
    elif step == unit:
        text, qualifier = f"{shown}{unit_name}余", "余"
    else:
        text, qualifier = f"{shown}多{unit_name}", "多"
    return Phrase(text, qualifier, "more", _tidy(floor), _tidy(floor), _tidy(floor + step))


def _as_decimal(value: int | Decimal) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"phrasing takes an int count or a Decimal yuan amount, not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"cannot phrase {amount}")
    if amount < 0:
        raise ValueError(f"cannot phrase a negative total: {amount}")
    return amount


def _unit(amount: Decimal) -> tuple[str, Decimal]:
    if amount < _WAN_FROM:
        return "", Decimal(1)
    if amount < YI:
        return "万", WAN
    return "亿", YI


def _power(exponent: int) -> Decimal:
    return Decimal((0, (1,), exponent))


def _shift(amount: Decimal, places: int) -> Decimal:
    # Built from the digits rather than divided, so no context precision can round it.
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: checked in _as_decimal
    return Decimal((sign, digits, exponent + places))


def _digits(amount: Decimal) -> str:
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _tidy(amount: Decimal) -> Decimal:
    """The same value written plainly (Decimal("350000000"), not 3.5E+8 or 350000000.00)."""
    return Decimal(_digits(amount))
