"""Signed notes (C2SP signed-note, Ed25519), checkpoints and tlog-proof receipts."""

import base64

import pytest

from events.checkpoints import (
    Checkpoint,
    ProofError,
    Receipt,
    check_inclusion,
    open_checkpoint,
    parse_checkpoint_text,
    parse_receipt,
)
from events.merkle import inclusion_proof, leaf_hash, list_range_hash, root_of
from events.notes import NoteError, Signer, Verifier, key_id, open_note, split_note

# The example of C2SP signed-note.md: this vkey verifies this note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n— example.com/foo "
             "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def test_the_specification_example_verifies() -> None:
    verifier = Verifier.parse(SPEC_VKEY)
    assert verifier.vkey == SPEC_VKEY
    assert open_note(SPEC_NOTE, [verifier]) == "This is an example message.\n"


@pytest.mark.parametrize("seed", range(8))
def test_a_flipped_bit_anywhere_in_a_signed_checkpoint_fails(seed: int) -> None:
    # Fixed keys, so signatures whose last base64 digit carries unused bits are among them.
    signer = Signer("qmstats.example/log", bytes([seed]) * 32)
    note = signer.sign(Checkpoint("qmstats.example/log", 1000, bytes(range(32))).text())
    assert open_checkpoint(note, signer.verifier).size == 1000
    raw = note.encode()
    failures = 0
    for i in range(len(raw)):
        for bit in (0, 5):
            changed = bytearray(raw)
            changed[i] ^= 1 << bit
            try:
                text = changed.decode()
                open_checkpoint(text, signer.verifier)
            except (UnicodeDecodeError, ProofError, NoteError):
                failures += 1
    assert failures == 2 * len(raw)


def test_signing_formats_a_checkpoint_as_c2sp_states() -> None:
    signer = Signer.generate("qmstats.example/log")
    checkpoint = Checkpoint("qmstats.example/log", 5, root_of([leaf_hash(b"a")]))
    note = signer.sign(checkpoint.text())
    lines = note.split("\n")
    assert lines[0:3] == ["qmstats.example/log", "5", base64.b64encode(checkpoint.root).decode()]
    assert lines[3] == ""
    assert lines[4].startswith("— qmstats.example/log ")
    assert lines[5] == ""
    assert len(lines) == 6
    sig = base64.b64decode(lines[4].split(" ")[2])
    assert sig[:4] == signer.verifier.key_id
    assert len(sig) == 4 + 64
    assert parse_checkpoint_text(open_note(note, [signer.verifier])) == checkpoint


def test_vkeys_and_signing_keys_round_trip_and_match() -> None:
    signer = Signer.generate("qmstats.example/log")
    vkey = signer.verifier.vkey
    name, kid, material = vkey.split("+", 2)
    assert name == "qmstats.example/log"
    assert bytes.fromhex(kid) == key_id(name, base64.b64decode(material)[1:])
    assert base64.b64decode(material)[0] == 1
    again = Signer.parse(signer.private_text())
    assert again.verifier == signer.verifier
    assert "PRIVATE" not in repr(signer)
    assert signer.private_text().split("+", 4)[4] not in repr(signer)
    assert Verifier.parse(vkey) == signer.verifier


@pytest.mark.parametrize("vkey", [
    "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong id
    "example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # other name
    "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # other type
    "example.com/foo+530d903a",
    "example com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
])
def test_bad_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


def test_unknown_signers_are_ignored_but_a_known_bad_signature_rejects() -> None:
    log = Signer.generate("log.example/a")
    witness = Signer.generate("witness.example/w")
    note = log.sign("hello\n")
    cosigned = note + witness.sign("hello\n").split("\n\n", 1)[1]
    assert len(split_note(cosigned)[1]) == 2
    assert open_note(cosigned, [log.verifier]) == "hello\n"
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(note, [witness.verifier])
    impostor = Signer("log.example/a", bytes(32))
    forged = note.replace(note.split(" ")[-1], base64.b64encode(
        log.verifier.key_id + base64.b64decode(impostor.sign("hello\n").split(" ")[-1])[4:]).decode() + "\n")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, [log.verifier])


def test_receipts_round_trip_and_verify_offline() -> None:
    signer = Signer.generate("qmstats.example/log")
    data = [f"event {i}".encode() for i in range(11)]
    leaves = [leaf_hash(d) for d in data]
    note = signer.sign(Checkpoint(signer.name, 11, root_of(leaves)).text())
    path = inclusion_proof(7, 11, list_range_hash(leaves))
    receipt = Receipt(7, path, note)
    text = receipt.text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 7\n")
    assert text.endswith(note)
    parsed = parse_receipt(text)
    assert parsed == receipt
    assert check_inclusion(leaf_hash(data[7]), parsed.index, parsed.path, parsed.checkpoint, signer.verifier).size == 11
    with pytest.raises(ProofError, match="does not lead"):
        check_inclusion(leaf_hash(data[6]), parsed.index, parsed.path, parsed.checkpoint, signer.verifier)
    with pytest.raises(ProofError, match="signature"):
        check_inclusion(leaf_hash(data[7]), 7, path, note, Signer.generate(signer.name).verifier)
    with pytest.raises(ProofError, match="beyond"):
        check_inclusion(leaf_hash(data[7]), 11, path, note, signer.verifier)
    extra = Receipt(7, path, note, b"ctx")
    assert parse_receipt(extra.text()) == extra


@pytest.mark.parametrize("text", ["", "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
                                  "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
                                  "c2sp.org/tlog-proof@v1\nindex 1\nnot-base64!\n\nx"])
def test_malformed_receipts_are_refused(text: str) -> None:
    with pytest.raises(ProofError):
        parse_receipt(text)


def test_keys_whose_base64_holds_a_plus_round_trip() -> None:
    signers = [Signer("qmstats.example/log", bytes([i]) * 32) for i in range(64)]
    plus = [s for s in signers if "+" in s.verifier.vkey.split("+", 2)[2]]
    assert plus, "some of 64 fixed keys have a '+' in their base64"
    for signer in plus:
        assert Verifier.parse(signer.verifier.vkey) == signer.verifier
        assert Signer.parse(signer.private_text()).verifier == signer.verifier
