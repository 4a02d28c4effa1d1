"""Reading an official MCA code list ('code name' per line) before it is imported."""


import pytest

from services.regionlists import RegionListError, read_region_list
from tests.shared_data import AREACODES


def test_a_list_is_read_sorted_with_names_stripped() -> None:
    text = "330102 上城区\n\n330000 浙江省\r\n  330100 杭州市  \n110000 北京市\n"
    assert read_region_list(text) == [("110000", "北京市"), ("330000", "浙江省"), ("330100", "杭州市"),
                                      ("330102", "上城区")]


def test_a_name_may_contain_spaces() -> None:
    assert read_region_list("150000 内蒙古 自治区") == [("150000", "内蒙古 自治区")]


@pytest.mark.parametrize(("text", "line"), [
    ("110000 北京市\n11000 北京\n", 2),
    ("110000\n", 1),
    ("110000    \n", 1),
    ("990000 不存在\n", 1),
    ("330012 不可能\n", 1),
    ("110000\t北京市\n", 1),
    ("110000 北京市\n330102 上城区\nabc def\n", 3),
])
def test_a_malformed_line_is_named(text: str, line: int) -> None:
    with pytest.raises(RegionListError, match=rf"^line {line}: expected"):
        read_region_list(text)


def test_a_repeated_code_is_refused() -> None:
    with pytest.raises(RegionListError, match=r"^line 3: code 330102 appears twice"):
        read_region_list("330102 上城区\n330100 杭州市\n330102 上城区\n")


@pytest.mark.parametrize("text", ["", "\n\n", "   \n \r\n"])
def test_an_empty_list_is_refused(text: str) -> None:
    with pytest.raises(RegionListError, match="no codes"):
        read_region_list(text)


def test_the_real_2017_list_reads_whole() -> None:
    path = AREACODES / "2017.txt"
    assert path.is_file(), f"the MCA code list {path} is missing: the areacodes data set must be at {AREACODES}"
    codes = read_region_list(path.read_text(encoding="utf-8"))
    assert len(codes) == 3219
    assert ("330102", "上城区") in codes
    assert ("419001", "济源市") in codes
