"""Year-end phrasing (SPEC §5): every example, hand-checked boundaries, and the promises read back from the text."""

import re
from decimal import Decimal

import cn2an
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.phrasing import Phrase, format_figure, phrase_approx, significant_digits

QUALIFIERS = ("近", "上千", "余", "多", "约")
NUMERAL = r"(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?"  # no leading zeros, decimals trimmed
GRAMMAR = re.compile(rf"上千|(?:近|约)?{NUMERAL}[万亿]?|{NUMERAL}(?:[万亿]?余|多[万亿])")


# --- A reader of the text: what number it states and what interval it promises, from the text alone. ---


def parse_number(text: str) -> Decimal:
    """cn2an reads every form the module writes ("13000", "0.05", "1.5万", "3.5亿", "12000亿"); floats go via str."""
    return Decimal(str(cn2an.cn2an(text, "smart")))


def second_digit_place(number: Decimal) -> Decimal:
    """The place value of a number's second significant digit (1000 for 13000, 10**7 for 3.5亿)."""
    return Decimal(10) ** (number.adjusted() - 1)


def read_back(text: str) -> tuple[Decimal, Decimal, Decimal, bool, bool]:
    """(stated number, low, high, low included, high included) as SPEC §5 defines each qualifier."""
    if text == "上千":
        # cn2an refuses "上千" and "千" alike, so this form is converted by hand.
        return Decimal(1000), Decimal(1000), Decimal(2000), False, False
    if text.startswith("近"):
        stated = parse_number(text[1:])
        return stated, stated * Decimal("0.95"), stated, True, False
    if text.startswith("约"):
        stated = parse_number(text[1:])
        half = second_digit_place(stated) / 2
        return stated, stated - half, stated + half, True, True
    if "余" in text or "多" in text:
        stated = parse_number(text.replace("余", "").replace("多", ""))
        return stated, stated, stated + second_digit_place(stated), False, False
    stated = parse_number(text)
    return stated, stated, stated, True, True


def text_of(value: int | Decimal) -> str:
    return phrase_approx(value).text


# --- SPEC §5, word for word. ---

SPEC_EXAMPLES = [
    (350000000, "3.5亿"),
    (100000, "10万"),
    (13000, "13000"),
    (9800, "9800"),
    (2968000, "近300万"),
    (193500000, "近2亿"),
    (98765, "近10万"),
    (985, "近1000"),
    (13150, "13000余"),
    (2030000, "200多万"),
    (100500, "10万余"),
    (1520000000, "15亿余"),
    (352400000, "约3.5亿"),
    (358000000, "约3.6亿"),
]


@pytest.mark.parametrize(("value", "expected"), SPEC_EXAMPLES)
def test_spec_examples(value: int, expected: str) -> None:
    assert text_of(value) == expected


# The sample quote's idioms (上千个, 近300万份, 13000余台次, 200多万, 3.5亿元, 近2亿) and the research sketch's outputs.
SAMPLE_QUOTE = [
    (1032, "上千"),
    (1180, "上千"),
    (2968000, "近300万"),
    (198700000, "近2亿"),
    (13046, "13000余"),
    (15234, "15000余"),
    (2030000, "200多万"),
    (2140000, "210多万"),
    (Decimal("350000000.00"), "3.5亿"),
    (1000000123, "10亿余"),
    # "约10万人次" cannot come from §5 for a count: around 10万 the rules give these three.
    (96500, "近10万"),
    (100000, "10万"),
    (103000, "10万余"),
]


@pytest.mark.parametrize(("value", "expected"), SAMPLE_QUOTE)
def test_sample_quote_idioms(value: int | Decimal, expected: str) -> None:
    assert text_of(value) == expected


# --- Hand-checked, rule by rule, from the words of §5. ---

HAND_CHECKED = [
    # Rule 1, exact at ≤ 2 significant digits; small values and zero are exact.
    (0, "0"),
    (1, "1"),
    (7, "7"),
    (10, "10"),
    (11, "11"),
    (99, "99"),
    (100, "100"),
    (950, "950"),  # 95% of 1000, but exact wins
    (9500, "9500"),
    (1000, "1000"),
    (1100, "1100"),  # inside 1000..2000, exact wins over 上千
    (1900, "1900"),
    (2000, "2000"),
    (99000, "99000"),  # largest 2-digit figure without a unit
    (110000, "11万"),
    (35000000, "3500万"),
    (99000000, "9900万"),
    (10**8, "1亿"),
    (990000000, "9.9亿"),
    (15000000000, "150亿"),
    (10**12, "10000亿"),  # no 万亿: 亿 is the largest unit
    (1200000000000, "12000亿"),
    # Rule 2, 近R with 0.95R ≤ x < R, R taking its own unit.
    (99999, "近10万"),
    (99999999, "近1亿"),
    (9501, "近10000"),
    (95010, "近10万"),
    (951, "近1000"),
    (999, "近1000"),
    (191, "近200"),
    (199, "近200"),
    (1950, "近2000"),  # 3 significant digits, so not exact; 近 before 上千
    (1999, "近2000"),
    (2850000, "近300万"),  # exactly 95%, not exact at 2 digits
    (4750, "近5000"),  # exactly 95%
    (665, "近700"),  # exactly 95%
    (85500000, "近9000万"),  # exactly 95%
    (99960000, "近1亿"),
    (396000000, "近4亿"),  # would round to 约4.0亿, but 近 comes first
    (999500000, "近10亿"),  # never 约10亿
    (10**13 - 1, "近100000亿"),
    # Just below 95%: rule 2 does not fire, rule 4 does.
    (94999, "94000余"),
    (9499, "9400余"),
    (949, "940余"),
    (664, "660余"),
    (4749, "4700余"),
    (2849999, "280多万"),
    (18999999, "1800多万"),
    (85499999, "8500多万"),
    # Rule 3, 上千 for 1000 < x < 2000 when neither exact nor 近.
    (1001, "上千"),
    (1899, "上千"),  # 1899 < 0.95 × 2000
    # Rule 4 without a unit: L余, the promise L < x < L + step.
    (101, "100余"),
    (105, "100余"),
    (189, "180余"),
    (2001, "2000余"),
    (12345, "12000余"),
    # Rule 4, 10⁵ ≤ x < 10⁶: step 1万 = 1 unit, 余 after 万.
    (100001, "10万余"),
    (949999, "94万余"),
    # Rule 4, 10⁶ ≤ x < 10⁸: step 10 or 100 units, 多 before 万.
    (1000001, "100多万"),
    (10000001, "1000多万"),
    (35100000, "3500多万"),
    # Rule 4, 10⁸ ≤ x < 10⁹: step 0.1亿 needs a decimal, so 约 + half-even to 2 digits, trimmed.
    (10**8 + 1, "约1亿"),
    (302000000, "约3亿"),
    (345000000, "约3.4亿"),  # tie, 4 is even
    (345000001, "约3.5亿"),
    (355000000, "约3.6亿"),  # tie, 6 is even
    (365000000, "约3.6亿"),  # tie, 6 is even
    (850000001, "约8.5亿"),  # just below 近9亿's 8.55亿
    # Rule 4, 10⁹ ≤ x < 10¹⁰: step 1亿 = 1 unit, 余 after 亿.
    (1000000001, "10亿余"),
    (9400000001, "94亿余"),
    # Rule 4 from 10¹⁰: step 10 units and more, 多 before 亿.
    (10000000001, "100多亿"),
    (15100000000, "150多亿"),
    (1230000000000, "12000多亿"),
]


@pytest.mark.parametrize(("value", "expected"), HAND_CHECKED)
def test_hand_checked(value: int, expected: str) -> None:
    assert text_of(value) == expected


MONEY = [
    # Trailing zeros, fen included, are not significant.
    (Decimal("0.00"), "0"),
    (Decimal("-0.00"), "0"),
    (Decimal("0.05"), "0.05"),
    (Decimal("0.50"), "0.5"),
    (Decimal("0.99"), "0.99"),
    (Decimal("9.90"), "9.9"),
    (Decimal("100000.00"), "10万"),
    (Decimal("350000000.00"), "3.5亿"),
    (Decimal("1000000000000.00"), "10000亿"),
    # Non-zero 角/分 from 10 yuan up is a third significant digit: rules 2-4.
    (Decimal("10.50"), "10余"),
    (Decimal("13.05"), "13余"),
    (Decimal("99.50"), "近100"),
    (Decimal("1000.01"), "上千"),
    (Decimal("13000.50"), "13000余"),
    (Decimal("152000.50"), "15万余"),
    (Decimal("2030000.01"), "200多万"),
    (Decimal("350000000.50"), "约3.5亿"),
    (Decimal("1000000000.01"), "10亿余"),
    (Decimal("999999999999.99"), "近10000亿"),
    # Below 10 yuan with 3 digits a decimal would be needed: 约, never "1.0余".
    (Decimal("1.05"), "约1"),  # 1.05 → 1.0 (tie, 0 even), trimmed
    (Decimal("1.15"), "约1.2"),  # tie, 2 even
    (Decimal("1.25"), "约1.2"),  # tie, 2 even
    (Decimal("5.55"), "约5.6"),  # 0.95 × 6 = 5.7 > 5.55, so not 近
    (Decimal("1.99"), "近2"),
    (Decimal("9.99"), "近10"),
]


@pytest.mark.parametrize(("value", "expected"), MONEY)
def test_money_is_phrased_from_yuan(value: Decimal, expected: str) -> None:
    assert text_of(value) == expected


def test_phrase_states_its_number_and_promise() -> None:
    assert phrase_approx(2968000) == Phrase(
        "近300万", "近", "near", Decimal(3000000), Decimal(2850000), Decimal(3000000)
    )
    assert phrase_approx(Decimal("350000000.00")) == Phrase(
        "3.5亿", None, "exact", Decimal(350000000), Decimal(350000000), Decimal(350000000)
    )
    assert phrase_approx(1032) == Phrase("上千", "上千", "thousand", Decimal(1000), Decimal(1000), Decimal(2000))
    assert phrase_approx(2030000) == Phrase(
        "200多万", "多", "more", Decimal(2000000), Decimal(2000000), Decimal(2100000)
    )
    assert phrase_approx(352400000) == Phrase(
        "约3.5亿", "约", "about", Decimal(350000000), Decimal(345000000), Decimal(355000000)
    )


@pytest.mark.parametrize(
    ("value", "inside", "outside"),
    [
        (2968000, [2850000, 2999999], [2849999, 3000000]),  # 近: [0.95R, R)
        (1032, [1001, 1999], [1000, 2000]),  # 上千: open
        (13150, [13001, 13999], [13000, 14000]),  # 余: open
        (352400000, [345000000, 355000000], [344999999, 355000001]),  # 约: closed
        (13000, [13000], [12999, 13001]),  # exact
    ],
)
def test_covers_applies_each_rules_ends(value: int, inside: list[int], outside: list[int]) -> None:
    phrase = phrase_approx(value)
    assert all(phrase.covers(v) for v in inside)
    assert not any(phrase.covers(v) for v in outside)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (99999, "99999"),
        (100000, "10万"),
        (123456, "12.3456万"),
        (34500000, "3450万"),
        (345000000, "3.45亿"),  # GB/T 15835's example, never 3亿4500万
        (Decimal("350000000.00"), "3.5亿"),
        (Decimal("0.50"), "0.5"),
        (10**12, "10000亿"),
    ],
)
def test_format_figure_writes_exact_values_in_units(value: int | Decimal, expected: str) -> None:
    assert format_figure(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 1), (101, 3), (350000000, 2), (Decimal("350000000.00"), 2), (Decimal("0.50"), 1),
     (Decimal("1.05"), 3), (Decimal("13000.50"), 6)],
)
def test_significant_digits_ignore_trailing_zeros(value: int | Decimal, expected: int) -> None:
    assert significant_digits(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [(1.5, TypeError), (True, TypeError), ("13000", TypeError), (-1, ValueError), (Decimal("-0.01"), ValueError),
     (Decimal("NaN"), ValueError), (Decimal("Infinity"), ValueError)],
)
def test_refuses_what_is_not_a_total(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        phrase_approx(value)  # type: ignore[arg-type]


# --- Properties: every phrase keeps its promise and its form. ---


def check_phrase(value: int | Decimal) -> None:
    phrase = phrase_approx(value)
    text = phrase.text

    assert GRAMMAR.fullmatch(text), text
    assert sum(text.count(q) for q in QUALIFIERS) <= 1, text
    assert text.count(".") <= 1
    assert text.count("万") + text.count("亿") <= 1
    assert "十" not in text
    assert "百" not in text
    assert "千" not in text.replace("上千", "")
    assert not any(sep in text for sep in (",", "，", " ", "'", "_"))
    if "余" in text or "多" in text:
        assert "." not in text  # a decimal with 余/多 contradicts itself

    stated, low, high, low_closed, high_closed = read_back(text)
    assert (low <= value if low_closed else low < value), (value, text)
    assert (value <= high if high_closed else value < high), (value, text)
    assert (phrase.number, phrase.low, phrase.high) == (stated, low, high)
    assert phrase.covers(value)

    # Precision is dropped exactly when a qualifier says so, and the text names that qualifier.
    assert (phrase.qualifier is None) == (stated == value)
    assert phrase.qualifier is None or phrase.qualifier in text

    if "亿" in text:
        assert stated >= 10**8
    elif "万" in text:
        assert 10**5 <= stated < 10**8
    else:
        assert stated < 10**5

    digits = format(Decimal(value), "f").replace(".", "").strip("0")
    assert (phrase.rule == "exact") == (len(digits) <= 2)
    if phrase.qualifier == "约":
        assert value < 10 or 10**8 <= value < 10**9


OFFSETS = st.integers(min_value=-2, max_value=2)


@st.composite
def spread(draw: st.DrawFn, digits: int) -> int:
    """An integer in [0, 10**digits], spread over every magnitude and crowded around round figures and 95% edges."""
    anywhere = draw(st.integers(min_value=0, max_value=10**digits))
    shape = draw(st.sampled_from(["anywhere", "magnitude", "round figure", "95% edge"]))
    magnitude = draw(st.integers(min_value=0, max_value=digits - 1))
    if shape == "anywhere":
        return anywhere
    if shape == "magnitude":
        return 10**magnitude + anywhere % (9 * 10**magnitude)
    if shape == "round figure":  # 1..99 times a power of ten, give or take 2
        return max(0, draw(st.integers(1, 99)) * 10 ** min(magnitude, digits - 2) + draw(OFFSETS))
    return max(0, draw(st.integers(2, 10)) * 95 * 10**magnitude // 100 + draw(OFFSETS))  # 0.95·R, give or take 2


@settings(max_examples=300, deadline=None)
@given(spread(13))
def test_counts_keep_their_promise(value: int) -> None:
    check_phrase(value)


@settings(max_examples=200, deadline=None)
@given(spread(14))
def test_money_keeps_its_promise(cents: int) -> None:
    check_phrase(Decimal(cents).scaleb(-2))  # up to MAX_YUAN, always written with 2 places (350000000.00)
