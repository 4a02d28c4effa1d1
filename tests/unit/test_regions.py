"""GB/T 2260 codes: levels, parents and scopes derived from the code alone, checked against the MCA lists."""


import pytest

from events.regions import (
    EXPECTED_PROVINCES,
    NATION,
    PROVINCES,
    ancestors_and_self,
    is_structurally_valid,
    is_within,
    level_of,
    parent_of,
)
from tests.shared_data import AREACODES


@pytest.mark.parametrize(("code", "parent"), [
    ("000000", None),
    ("330000", "000000"),
    ("110000", "000000"),
    ("330100", "330000"),
    ("330102", "330100"),
    ("110101", "110000"),
    ("120101", "120000"),
    ("310115", "310000"),
    ("500101", "500000"),
    ("500229", "500000"),
    ("419001", "410000"),
    ("429004", "420000"),
    ("469001", "460000"),
    ("659001", "650000"),
    ("419000", "410000"),
    ("650102", "650100"),
])
def test_parent_of(code: str, parent: str | None) -> None:
    assert parent_of(code) == parent


@pytest.mark.parametrize(("code", "chain"), [
    ("000000", ("000000",)),
    ("330000", ("330000", "000000")),
    ("330102", ("330102", "330100", "330000", "000000")),
    ("110101", ("110101", "110000", "000000")),
    ("419001", ("419001", "410000", "000000")),
])
def test_ancestors_and_self(code: str, chain: tuple[str, ...]) -> None:
    assert ancestors_and_self(code) == chain


@pytest.mark.parametrize(("code", "level"), [
    ("000000", "nation"), ("330000", "province"), ("110000", "province"), ("330100", "prefecture"),
    ("330102", "county"), ("110101", "county"), ("419001", "county"),
])
def test_level_of(code: str, level: str) -> None:
    assert level_of(code) == level


@pytest.mark.parametrize(("code", "scope", "within"), [
    ("330102", "330102", True),
    ("330102", "330100", True),
    ("330102", "330000", True),
    ("330102", "000000", True),
    ("330102", "330200", False),
    ("330102", "340000", False),
    ("330000", "330102", False),
    ("330100", "330102", False),
    ("000000", "330000", False),
    ("110101", "110000", True),
    ("110101", "110100", False),
    ("419001", "410000", True),
    ("419001", "419000", False),
    ("419001", "410100", False),
])
def test_is_within(code: str, scope: str, within: bool) -> None:
    assert is_within(code, scope) is within


@pytest.mark.parametrize("code", ["000000", "110000", "110101", "330100", "330102", "419001", "710000",
                                  "810000", "820000", *PROVINCES])
def test_structurally_valid_codes(code: str) -> None:
    assert is_structurally_valid(code)


@pytest.mark.parametrize("code", ["", "33010", "3301020", "990000", "000001", "000100", "370000x", "330012",
                                  "110011", "XX00YY", "33a102", "330102\n", "\n330102", " 330102", "３３０１０２"])
def test_structurally_invalid_codes(code: str) -> None:
    assert not is_structurally_valid(code)


def test_the_31_mainland_provinces_are_expected_to_report() -> None:
    assert len(PROVINCES) == 34
    assert len(EXPECTED_PROVINCES) == 31
    assert {"710000", "810000", "820000"}.isdisjoint(EXPECTED_PROVINCES)
    assert all(parent_of(p) == NATION for p in PROVINCES)


def read_mca_list(year: int) -> dict[str, str]:
    path = AREACODES / f"{year}.txt"
    assert path.is_file(), f"the MCA code list {path} is missing: the areacodes data set must be at {AREACODES}"
    rows = [line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {code: name for code, name in rows}


@pytest.mark.parametrize("year", [2017, 2024])
def test_the_derived_hierarchy_matches_the_mca_list(year: int) -> None:
    codes = read_mca_list(year)
    assert len(codes) > 3000
    assert [c for c in codes if not is_structurally_valid(c)] == []
    counties = [c for c in codes if level_of(c) == "county"]
    with_listed_prefecture = [c for c in counties if c[:4] + "00" in codes]
    assert len(with_listed_prefecture) > 2500
    assert [c for c in with_listed_prefecture if parent_of(c) != c[:4] + "00"] == []
    # Every derived parent is itself a listed code (or the nation), so no region hangs in the air.
    assert {parent_of(c) for c in codes} - set(codes) == {NATION}
    assert {c for c in codes if level_of(c) == "province"} <= set(PROVINCES)
