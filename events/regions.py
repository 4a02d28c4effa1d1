"""GB/T 2260 region codes: levels, parents and the built-in provincial list.

The hierarchy is derived from the code alone so that every fold over the log is
pure and reproducible without a region registry. The rule matches every MCA list
published since 1994: a county's parent is its prefecture ``XXYY00``, except in the
four municipalities (11, 12, 31, 50) and for province-administered county-level units
(``XX90ZZ``), whose parent is the province.
"""

import re
from typing import Final, Literal

from events.fields import REGION_CODE_PATTERN

NATION: Final = "000000"
Level = Literal["nation", "province", "prefecture", "county"]

PROVINCES: Final[dict[str, str]] = {
    "110000": "北京市", "120000": "天津市", "130000": "河北省", "140000": "山西省",
    "150000": "内蒙古自治区", "210000": "辽宁省", "220000": "吉林省", "230000": "黑龙江省",
    "310000": "上海市", "320000": "江苏省", "330000": "浙江省", "340000": "安徽省",
    "350000": "福建省", "360000": "江西省", "370000": "山东省", "410000": "河南省",
    "420000": "湖北省", "430000": "湖南省", "440000": "广东省", "450000": "广西壮族自治区",
    "460000": "海南省", "500000": "重庆市", "510000": "四川省", "520000": "贵州省",
    "530000": "云南省", "540000": "西藏自治区", "610000": "陕西省", "620000": "甘肃省",
    "630000": "青海省", "640000": "宁夏回族自治区", "650000": "新疆维吾尔自治区",
    "710000": "台湾省", "810000": "香港特别行政区", "820000": "澳门特别行政区",
}

# Taiwan, Hong Kong and Macau are valid codes but do not report to the mainland
# campaign, so national coverage expects the other 31 (see docs/decisions.md).
EXPECTED_PROVINCES: Final[frozenset[str]] = frozenset(PROVINCES) - {"710000", "810000", "820000"}

_MUNICIPALITIES: Final = frozenset({"11", "12", "31", "50"})
_CODE = re.compile(REGION_CODE_PATTERN)


def level_of(code: str) -> Level:
    """The administrative level a well-formed code denotes."""
    if code == NATION:
        return "nation"
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "prefecture"
    return "county"


def is_structurally_valid(code: str) -> bool:
    """True when the code is six digits under a known province with a possible shape."""
    if code == NATION:
        return True
    if not _CODE.fullmatch(code) or code[:2] + "0000" not in PROVINCES:  # fullmatch: "$" allows a final \n
        return False
    return not (code[2:4] == "00" and code[4:] != "00")


def parent_of(code: str) -> str | None:
    """The parent region, or None for the nation."""
    level = level_of(code)
    if level == "nation":
        return None
    if level == "province":
        return NATION
    province = code[:2] + "0000"
    if level == "prefecture" or code[:2] in _MUNICIPALITIES or code[2:4] == "90":
        return province
    return code[:4] + "00"


def ancestors_and_self(code: str) -> tuple[str, ...]:
    """The code followed by each ancestor up to and including the nation."""
    chain = [code]
    parent = parent_of(code)
    while parent is not None:
        chain.append(parent)
        parent = parent_of(parent)
    return tuple(chain)


def is_within(code: str, scope: str) -> bool:
    """True when ``code`` is ``scope`` or one of its descendants."""
    return scope in ancestors_and_self(code)


def code_prefix(scope: str) -> str | None:
    """The code prefix every descendant of ``scope`` shares (None for the nation), for indexed filtering.

    A prefix can include a little more than the subtree (e.g. province-administered units under a
    prefecture-shaped code), so callers keep only codes for which ``is_within`` holds.
    """
    return {"nation": None, "province": scope[:2], "prefecture": scope[:4], "county": scope}[level_of(scope)]
