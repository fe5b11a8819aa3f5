"""AES key wrap as the mlx5 crypto engine uses it, against NIST SP 800-38F vectors."""

from __future__ import annotations

from collections.abc import Iterator

import cryptography_vectors
import pytest

from hcasim.devices.mlx5.keywrap import (
    CREDENTIAL_LEN,
    WRAPPED_CREDENTIAL_LEN,
    KeyUnwrapError,
    Secret,
    dek_plaintext_len,
    dek_wrapped_len,
    parse_dek,
    unwrap,
    unwrap_credential,
    wrap,
    wrap_credential,
    wrap_dek,
)

KW_DIR = "keywrap/kwtestvectors"


def _kw_entries(name: str) -> Iterator[dict[str, str]]:
    entry: dict[str, str] = {}
    with cryptography_vectors.open_vector_file(f"{KW_DIR}/{name}", "r") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith(("#", "[")):
                if "COUNT" in entry:
                    yield entry
                entry = {}
                continue
            if line == "FAIL":
                entry["FAIL"] = "1"
                continue
            key, _, value = line.partition("=")
            entry[key.strip()] = value.strip()
    if "COUNT" in entry:
        yield entry


@pytest.mark.parametrize("bits", ["128", "256"])
def test_nist_kw_encrypt_vectors(bits: str) -> None:
    """KW_AE_{128,256}: the KEK sizes of the device (kek_size 0 and 1)."""
    count = 0
    for e in _kw_entries(f"KW_AE_{bits}.txt"):
        kek, plain, wrapped = (bytes.fromhex(e[k]) for k in ("K", "P", "C"))
        assert wrap(kek, plain) == wrapped
        assert unwrap(kek, wrapped).reveal() == plain
        count += 1
    assert count >= 100


@pytest.mark.parametrize("bits", ["128", "256"])
def test_nist_kw_decrypt_vectors_including_failures(bits: str) -> None:
    """KW_AD_*: every FAIL entry must be refused (that is how a bad credential is caught)."""
    fails = passes = 0
    for e in _kw_entries(f"KW_AD_{bits}.txt"):
        kek, wrapped = bytes.fromhex(e["K"]), bytes.fromhex(e["C"])
        if "FAIL" in e:
            with pytest.raises(KeyUnwrapError):
                unwrap(kek, wrapped)
            fails += 1
        else:
            assert unwrap(kek, wrapped).reveal() == bytes.fromhex(e["P"])
            passes += 1
    assert fails and passes


def test_rfc3394_section_4_1() -> None:
    """RFC 3394 §4.1 (docs/sources.md §15.4): confirms the A6A6A6A6A6A6A6A6 IV."""
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    expected = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert wrap(kek, data) == expected


def test_dpdk_example_credential_wrapped_under_zero_kek() -> None:
    """docs/sources.md §15.4 derived example: credential 10000000 10000000 0.. under a zero KEK."""
    credential = bytes.fromhex("1000000010000000") + bytes(32)
    wrapped = wrap_credential(bytes(16), credential)
    assert wrapped.hex() == (
        "ce411e908b3a77d1206bdb38496b3011c8da790b13bea3ff4042381a498caae7"
        "67932d3d1e9ba0723c66fda7cc0c6405"
    )
    assert len(wrapped) == WRAPPED_CREDENTIAL_LEN
    assert unwrap_credential(bytes(16), wrapped).reveal() == credential


def test_credential_lengths() -> None:
    with pytest.raises(ValueError):
        wrap_credential(bytes(16), bytes(CREDENTIAL_LEN - 1))
    with pytest.raises(KeyUnwrapError):
        unwrap_credential(bytes(16), bytes(40))
    wrapped = bytearray(wrap_credential(bytes(32), bytes(CREDENTIAL_LEN)))
    wrapped[5] ^= 1
    with pytest.raises(KeyUnwrapError):
        unwrap_credential(bytes(32), bytes(wrapped))
    with pytest.raises(KeyUnwrapError):  # right bytes, wrong KEK size
        unwrap_credential(bytes(16), wrap_credential(bytes(32), bytes(CREDENTIAL_LEN)))


@pytest.mark.parametrize(
    ("key_size", "keytag", "plain", "wrapped"),
    [(0, False, 32, 40), (1, False, 64, 72), (0, True, 40, 48), (1, True, 72, 80)],
)
def test_dek_layouts(key_size: int, keytag: bool, plain: int, wrapped: int) -> None:
    """man mlx5dv_dek_create.3.md:147-168 (docs/sources.md §14.7)."""
    assert dek_plaintext_len(key_size, keytag) == plain
    assert dek_wrapped_len(key_size, keytag) == wrapped
    xts = bytes(range(plain - (8 if keytag else 0)))
    tag = b"TAGTAG!!" if keytag else None
    blob = wrap_dek(bytes(16), xts, tag)
    assert len(blob) == wrapped
    material = parse_dek(unwrap(bytes(16), blob), key_size, keytag)
    assert material.key.bits_per_half == (128 if key_size == 0 else 256)
    assert (material.keytag is not None) == keytag
    if tag is not None and material.keytag is not None:
        assert material.keytag.reveal() == tag
    assert "TAG" not in repr(material)


def test_bad_kek_sizes_and_lengths() -> None:
    with pytest.raises(ValueError):
        wrap(bytes(24), bytes(16))  # the device has 128- and 256-bit KEKs only
    with pytest.raises(KeyUnwrapError):
        unwrap(bytes(16), bytes(20))
    with pytest.raises(ValueError):
        dek_plaintext_len(2, False)
    with pytest.raises(ValueError):
        parse_dek(bytes(33), 0, False)


def test_secret_never_prints() -> None:
    s = Secret(b"hunter2-hunter2!")
    assert "hunter" not in repr(s) and "hunter" not in str(s) and "16 bytes" in repr(s)
    assert s == Secret(b"hunter2-hunter2!") and s != Secret(b"x")
    assert f"{s}" == str(s)
