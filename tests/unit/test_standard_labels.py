"""Standard product categories and media channels: the simulator sends them, readers see them in their language."""

from events.catalogue import MEDIA_CHANNELS, PRODUCT_CATEGORIES, label_in
from services.simulate.profile import CATEGORIES
from services.simulate.profile import MEDIA_CHANNELS as SIMULATED_CHANNELS


def test_codes_and_labels_are_unique() -> None:
    for values in (PRODUCT_CATEGORIES, MEDIA_CHANNELS):
        for attribute in ("code", "label_zh", "label_en"):
            seen = [getattr(v, attribute) for v in values]
            assert len(seen) == len(set(seen)), attribute
        assert all(v.code.isascii() and v.code == v.code.lower() and " " not in v.code for v in values)


def test_the_simulator_sends_standard_codes_only() -> None:
    assert set(CATEGORIES) <= {c.code for c in PRODUCT_CATEGORIES}
    assert set(SIMULATED_CHANNELS) <= {c.code for c in MEDIA_CHANNELS}


def test_a_standard_value_reads_in_the_readers_language_and_free_text_as_sent() -> None:
    assert (label_in("liquor", "zh"), label_in("liquor", "en")) == ("白酒", "liquor")
    assert (label_in("白酒", "en"), label_in("auto_parts", "zh")) == ("liquor", "汽车配件")
    assert (label_in("wechat", "zh"), label_in("television", "en")) == ("微信", "television")
    assert (label_in("手工艺品", "en"), label_in("handicrafts", "zh")) == ("手工艺品", "handicrafts")
