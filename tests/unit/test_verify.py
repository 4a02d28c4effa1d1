"""Chain verification names the first broken link, and can resume where an earlier check stopped."""

from dataclasses import replace

import pytest

from events.canonical import GENESIS_HASH
from events.chain_check import ChainVerifier, verify_chain
from events.records import RecordedEvent
from tests.unit.scenario import recorded_chain

LENGTH = 8


@pytest.fixture(scope="module")
def chain() -> list[RecordedEvent]:
    return recorded_chain(LENGTH)


def test_an_intact_chain_verifies(chain: list[RecordedEvent]) -> None:
    report = verify_chain(chain)
    assert report.ok
    assert report.checked == LENGTH
    assert report.first_bad_position is None
    assert (report.last_position, report.last_hash) == (LENGTH, chain[-1].hash)


def test_an_empty_log_verifies() -> None:
    report = verify_chain([])
    assert (report.ok, report.checked, report.first_bad_position) == (True, 0, None)
    assert (report.last_position, report.last_hash) == (0, GENESIS_HASH)


@pytest.mark.parametrize("position", range(1, LENGTH + 1))
def test_changed_data_is_found_at_its_position(chain: list[RecordedEvent], position: int) -> None:
    tampered = list(chain)
    victim = tampered[position - 1]
    key = next(iter(victim.data))
    tampered[position - 1] = replace(victim, data={**victim.data, key: "changed"})
    report = verify_chain(tampered)
    assert (report.ok, report.first_bad_position, report.checked) == (False, position, LENGTH)


@pytest.mark.parametrize("field", ["region", "campaign", "recorded_by", "request_id", "event_id", "type"])
def test_any_changed_field_is_found(chain: list[RecordedEvent], field: str) -> None:
    tampered = list(chain)
    tampered[3] = replace(tampered[3], **{field: getattr(tampered[3], field) + "x"})
    assert verify_chain(tampered).first_bad_position == 4


@pytest.mark.parametrize("position", range(1, LENGTH))
def test_a_removed_event_is_found_where_it_is_missing(chain: list[RecordedEvent], position: int) -> None:
    tampered = chain[: position - 1] + chain[position:]
    report = verify_chain(tampered)
    assert (report.ok, report.first_bad_position) == (False, position)


@pytest.mark.parametrize("position", range(1, LENGTH))
def test_two_swapped_events_are_found_at_the_first(chain: list[RecordedEvent], position: int) -> None:
    tampered = list(chain)
    tampered[position - 1], tampered[position] = tampered[position], tampered[position - 1]
    assert verify_chain(tampered).first_bad_position == position


@pytest.mark.parametrize("position", range(1, LENGTH + 1))
def test_an_altered_prev_hash_is_found(chain: list[RecordedEvent], position: int) -> None:
    tampered = list(chain)
    tampered[position - 1] = replace(tampered[position - 1], prev_hash=b"\x5a" * 32)
    assert verify_chain(tampered).first_bad_position == position


def test_a_renumbered_event_is_found(chain: list[RecordedEvent]) -> None:
    tampered = list(chain)
    tampered[2] = replace(tampered[2], position=tampered[2].position + 10)
    assert verify_chain(tampered).first_bad_position == 3


def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(chain: list[RecordedEvent]) -> None:
    tampered = list(chain)
    forged = replace(tampered[2], data={**tampered[2].data, "forged": True})
    tampered[2] = replace(forged, hash=forged.computed_hash())
    assert verify_chain(tampered).first_bad_position == 4


def test_only_the_first_of_several_breaks_is_named(chain: list[RecordedEvent]) -> None:
    tampered = list(chain)
    tampered[5] = replace(tampered[5], prev_hash=b"\x01" * 32)
    tampered[2] = replace(tampered[2], recorded_by="intruder")
    report = verify_chain(tampered)
    assert (report.first_bad_position, report.checked) == (3, LENGTH)


def test_a_log_must_start_at_position_one_after_the_genesis_hash(chain: list[RecordedEvent]) -> None:
    assert verify_chain(chain[1:]).first_bad_position == 1
    assert verify_chain([replace(chain[0], prev_hash=b"\x01" * 32)]).first_bad_position == 1


def test_verification_continues_from_an_earlier_check(chain: list[RecordedEvent]) -> None:
    head = verify_chain(chain[:3])
    verifier = ChainVerifier(after_position=head.last_position, after_hash=head.last_hash)
    verifier.feed(chain[3:])
    report = verifier.report()
    assert (report.ok, report.checked, report.last_position, report.last_hash) == \
        (True, LENGTH - 3, LENGTH, chain[-1].hash)


def test_continuing_from_the_wrong_hash_or_position_fails_at_the_first_fed(chain: list[RecordedEvent]) -> None:
    wrong_hash = ChainVerifier(after_position=3, after_hash=chain[3].hash)
    wrong_hash.feed(chain[3:])
    assert wrong_hash.report().first_bad_position == 4
    wrong_position = ChainVerifier(after_position=2, after_hash=chain[2].hash)
    wrong_position.feed(chain[3:])
    assert wrong_position.report().first_bad_position == 3


def test_feeding_in_pages_equals_feeding_at_once(chain: list[RecordedEvent]) -> None:
    tampered = list(chain)
    tampered[6] = replace(tampered[6], region="330103")
    paged = ChainVerifier()
    for start in range(0, LENGTH, 3):
        paged.feed(tampered[start:start + 3])
    assert paged.report() == verify_chain(tampered)
    assert paged.report().first_bad_position == 7
