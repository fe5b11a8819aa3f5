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
    random_salt = salt[:4]
    digest = key_digest(key, salt + random_salt)
    assert digest != 0 and digest != key
    seal = seal_for(digest, random_salt=random_salt)
    assert seal[:4] == random_salt  # the random salt is stored with the digest
    verifier = verifier_from_tags(digest, seal, salt)
    assert verifier is not None and verifier.is_digest and verifier.version == 3
    assert verifier.matches(key)
    assert not verifier.matches(key ^ 1)
    assert key_digest(key, bytes(b ^ 1 for b in salt) + random_salt) != digest  # GUID counts
    assert key_digest(key, salt + bytes(b ^ 1 for b in random_salt)) != digest  # so does this
    assert repr(verifier) == "KeyVerifier(is_digest=True)"  # no key material, whatever the key


def test_each_device_draws_its_own_random_salt_and_keeps_it() -> None:
    from hcasim.devices import fs2
    from hcasim.devices.hw_key import RANDOM_SALT_BYTES, image_with_key

    image = fs2.build_image(device_id=fs2.CONNECTX3, fw_version=(2, 42, 5000),
                            psid="MT_1090120019", release_date=(1, 1, 2024),
                            guid_base=0x0002C90300A1B010, cr_protection_en=True)
    key = 0x1122334455667788

    def salt_of(flashed: bytes) -> bytes:
        info = fs2.parse_image(flashed)
        seal = fs2.image_info_tag(flashed, fs2.TAG_KEY_DIGEST_SEAL)
        assert seal is not None and info.hw_access_key is not None
        verifier = verifier_from_tags(info.hw_access_key, seal, info.guids[0].to_bytes(8, "big"))
        assert verifier is not None and verifier.version == 3 and verifier.matches(key)
        return seal[:RANDOM_SALT_BYTES]

    # two devices flashed alike: each draws its own salt, so a guess is good for one only
    first, other = image_with_key(image, key), image_with_key(image, key)
    assert salt_of(first) != salt_of(other)
    assert fs2.parse_image(first).hw_access_key != fs2.parse_image(other).hw_access_key
    # the same device keeps its salt through another set_key, a cleared key and back, so
    # the same key gives the same digest (the driver restart tells it is unchanged)
    again = image_with_key(image_with_key(image_with_key(first, 0x55), 0), key)
    assert salt_of(again) == salt_of(first)
    assert fs2.parse_image(again).hw_access_key == fs2.parse_image(first).hw_access_key
    cleared = image_with_key(first, 0)
    assert fs2.parse_image(cleared).hw_access_key == 0
    assert verifier_from_tags(0, fs2.image_info_tag(cleared, fs2.TAG_KEY_DIGEST_SEAL),
                              b"guid0000") is None


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
    v2 = key_digest(0x1122334455667788, salt, version=2)
    assert v2 != old  # version 2: scrypt salted with the GUID alone, still read too
    stored = verifier_from_tags(v2, seal_for(v2, version=2), salt)
    assert stored is not None and stored.version == 2 and stored.matches(0x1122334455667788)
    assert not stored.matches(0x1122334455667789)
    new = key_digest(0x1122334455667788, salt + b"rand")
    assert new not in (old, v2)  # what hcasim writes now is the version 3 digest
    current = verifier_from_tags(new, seal_for(new, random_salt=b"rand"), salt)
    assert current is not None and current.version == 3 and current.matches(0x1122334455667788)


def test_a_raw_key_under_a_stale_version_3_seal_is_compared_raw() -> None:
    # mstflint in-band writes a raw key over hcasim's digest and leaves the seal tag as it
    # was: the seal is over the old digest, so the new value is taken as a raw key
    salt = b"guid0001"
    digest = key_digest(0x5555, salt + b"abcd")
    seal = seal_for(digest, random_salt=b"abcd")
    verifier = verifier_from_tags(0x1234, seal, salt)
    assert verifier is not None and not verifier.is_digest and verifier.matches(0x1234)
