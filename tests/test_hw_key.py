"""Key syntax (strtoull rules of mstflint) and how keys are kept on flash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim.devices.hw_key import key_digest, parse_key, seal_for, verifier_from_tags

# mstflint's key rule (docs/sources.md §8.5: strtoull base 16, nothing left over, no overflow).
ACCEPTED = {
    "1a1a1a1a2b2b2b2b": 0x1A1A1A1A2B2B2B2B,
    "22062011": 0x22062011,
    "1234deaf5678": 0x1234DEAF5678,
    "0x1A1A": 0x1A1A,
    "0": 0,
    "ffffffffffffffff": 0xFFFFFFFFFFFFFFFF,
    " 12": 0x12,
    "+5": 5,
    "00000000000000000001": 1,
    "-1": 0xFFFFFFFFFFFFFFFF,
    "": 0,
}
REFUSED = ["10000000000000000", "12g4", "0x", " ", "+", "1 ", "0x-1", "--1"]


@pytest.mark.parametrize("text, value", ACCEPTED.items())
def test_accepted(text: str, value: int) -> None:
    assert parse_key(text) == value


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text: str) -> None:
    assert parse_key(text) is None


@settings(max_examples=200)
@given(st.integers(0, 2**64 - 1))
def test_hex_round_trip(value: int) -> None:
    assert parse_key(f"{value:x}") == value
    assert parse_key(f"0x{value:016X}") == value


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 2**64 - 1), st.binary(min_size=8, max_size=8))
def test_digest_verifies_only_its_key(key: int, salt: bytes) -> None:
    digest = key_digest(key, salt)
    assert digest != 0 and digest != key
    verifier = verifier_from_tags(digest, seal_for(digest), salt)
    assert verifier is not None and verifier.is_digest
    assert verifier.matches(key)
    assert not verifier.matches(key ^ 1)
    assert key_digest(key, bytes(b ^ 1 for b in salt)) != digest  # the salt counts
    assert repr(verifier) == "KeyVerifier(is_digest=True)"  # no key material, whatever the key


def test_raw_key_written_by_another_tool_is_compared_raw() -> None:
    # mstflint in-band writes the key itself; the seal then does not match.
    verifier = verifier_from_tags(0x1234, bytes(8), b"salt0000")
    assert verifier is not None and not verifier.is_digest
    assert verifier.matches(0x1234) and not verifier.matches(0x1235)
    assert verifier_from_tags(0, None, b"salt0000") is None


def test_a_version_1_digest_of_a_stored_lab_still_verifies() -> None:
    # labs stored before the memory-hard digest keep their key: its seal says version 1
    salt = b"guid0001"
    old = key_digest(0x1122334455667788, salt, version=1)
    verifier = verifier_from_tags(old, seal_for(old, version=1), salt)
    assert verifier is not None and verifier.is_digest and verifier.version == 1
    assert verifier.matches(0x1122334455667788) and not verifier.matches(0x1122334455667789)
    new = key_digest(0x1122334455667788, salt)
    assert new != old  # what hcasim writes now is the version 2 digest
    current = verifier_from_tags(new, seal_for(new), salt)
    assert current is not None and current.version == 2 and current.matches(0x1122334455667788)
