"""AES-XTS data path of the mlx5 crypto model against published vectors and cryptography."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim.devices.mlx5.keywrap import unwrap
from hcasim.devices.mlx5.xts import (
    DATA_UNIT_SIZES,
    XtsKey,
    data_unit_size_bytes,
    tweak_add,
    xts_decrypt,
    xts_encrypt,
)

XTS_DIR = "ciphers/AES/XTS"


def _rsp_entries(path: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (section, fields) for each COUNT block of a NIST .rsp file."""
    section = ""
    entry: dict[str, str] = {}
    with cryptography_vectors.open_vector_file(path, "r") as fh:
        for raw in fh:
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if not line or line.startswith("#"):
                if entry:
                    yield section, entry
                    entry = {}
                continue
            key, _, value = line.partition("=")
            entry[key.strip()] = value.strip()
    if entry:
        yield section, entry


def _byte_aligned(path: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (section, e)
        for section, e in _rsp_entries(path)
        if "COUNT" in e and int(e["DataUnitLen"]) % 8 == 0
    ]


@pytest.mark.parametrize("bits", ["128", "256"])
def test_ieee1619_vectors_with_raw_tweak(bits: str) -> None:
    """XTSGenAES{128,256}.rsp (tweak-128hexstr): field i is the raw 16-byte tweak."""
    entries = _byte_aligned(f"{XTS_DIR}/tweak-128hexstr/XTSGenAES{bits}.rsp")
    assert len(entries) > 400
    for section, e in entries:
        key, tweak = bytes.fromhex(e["Key"]), bytes.fromhex(e["i"])
        pt, ct = bytes.fromhex(e["PT"]), bytes.fromhex(e["CT"])
        # The whole vector is one data unit.
        if section == "ENCRYPT":
            assert xts_encrypt(key, tweak, pt, len(pt)) == ct, e["COUNT"]
        else:
            assert xts_decrypt(key, tweak, ct, len(ct)) == pt, e["COUNT"]


@pytest.mark.parametrize("bits", ["128", "256"])
def test_ieee1619_vectors_with_data_unit_sequence_number(bits: str) -> None:
    """tweak-dataunitseqno: the tweak is the data-unit number, 128-bit little-endian."""
    entries = _byte_aligned(f"{XTS_DIR}/tweak-dataunitseqno/XTSGenAES{bits}.rsp")
    assert len(entries) > 400
    for section, e in entries:
        key = bytes.fromhex(e["Key"])
        tweak = int(e["DataUnitSeqNumber"]).to_bytes(16, "little")
        pt, ct = bytes.fromhex(e["PT"]), bytes.fromhex(e["CT"])
        if section == "ENCRYPT":
            assert xts_encrypt(key, tweak, pt, len(pt)) == ct
        else:
            assert xts_decrypt(key, tweak, ct, len(ct)) == pt
        # Seen through the device's tweak increment: unit k of a message starting at
        # initial_tweak = seqno - k has the same tweak.
        if section == "ENCRYPT" and len(pt) >= 16 and int(e["DataUnitSeqNumber"]) >= 2:
            start = tweak_add(tweak, -2)
            message = xts_encrypt(key, start, bytes(2 * len(pt)) + pt, len(pt))
            assert message[2 * len(pt) :] == ct


# DPDK app/test/test_cryptodev_aes_test_vectors.h:2703-2733, 3763-3858 (docs/sources.md §15.4):
# the mlx5 wrapped-key XTS vectors, run by DPDK only against mlx5 in wrapped mode.
DPDK_WRAPPED_KEY = bytes.fromhex(
    "94d8aed774bf51f12d190b9ab3dc1ea95cc547c1bb94dbfa2b1e54a576ad074b"
    "46e0aaf9f75c642d8f041772e58dfe9c"
)
DPDK_IV = bytes.fromhex("4faef7117cda59c66e4b92013e768ad5")
DPDK_CT_FIRST_BLOCK = bytes.fromhex("d3943ec9d34313d3077e511197a5b1b2")
DPDK_CT_512_SHA256 = "d1f86ddd9f76466ac5849fdcff6633aec8a49b5747f2ad66fcf6cd210b12537f"
DPDK_CT_4096_SHA256 = "d64227b1402368fee2c2a5c6b308cc7126e790beefd62c1cf2872ecc40d59a79"


def dpdk_dek() -> bytes:
    """The DEK of the DPDK vectors: unwraps under an all-zero 128-bit KEK."""
    plain = unwrap(bytes(16), DPDK_WRAPPED_KEY).reveal()
    assert plain == bytes(range(16)) * 2 + bytes(8)  # key1 == key2, keytag 0
    return plain[:32]


@pytest.mark.parametrize(
    ("size", "digest"), [(512, DPDK_CT_512_SHA256), (4096, DPDK_CT_4096_SHA256)]
)
def test_dpdk_mlx5_wrapped_key_vectors_with_equal_halves(size: int, digest: str) -> None:
    key = dpdk_dek()
    plaintext = b"\x79" * size
    ciphertext = xts_encrypt(key, DPDK_IV, plaintext, size)
    assert ciphertext[:16] == DPDK_CT_FIRST_BLOCK
    assert hashlib.sha256(ciphertext).hexdigest() == digest
    assert xts_decrypt(key, DPDK_IV, ciphertext, size) == plaintext


def test_cryptography_refuses_equal_halves_but_the_model_does_not() -> None:
    key = dpdk_dek()
    with pytest.raises(ValueError):
        Cipher(algorithms.AES(key), modes.XTS(DPDK_IV)).encryptor()
    assert xts_encrypt(key, DPDK_IV, bytes(520), 520) != bytes(520)


def reference_units(
    key: bytes, tweak: bytes, data: bytes, unit: int, encrypt: bool = True
) -> bytes:
    """A per-data-unit loop over cryptography's XTS: the semantics the device must match."""
    out = bytearray()
    for k, start in enumerate(range(0, len(data), unit)):
        mode = modes.XTS(tweak_add(tweak, k))
        cipher = Cipher(algorithms.AES(key), mode)
        ctx = cipher.encryptor() if encrypt else cipher.decryptor()
        out += ctx.update(data[start : start + unit]) + ctx.finalize()
    return bytes(out)


def distinct_halves(draw_key: bytes) -> bool:
    half = len(draw_key) // 2
    return draw_key[:half] != draw_key[half:]


@settings(max_examples=60, deadline=None)
@given(
    key=st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64)).filter(
        distinct_halves
    ),
    tweak=st.binary(min_size=16, max_size=16),
    unit=st.sampled_from(sorted(DATA_UNIT_SIZES.values())),
    units=st.integers(min_value=0, max_value=5),
    tail_blocks=st.integers(min_value=0, max_value=8),
    seed=st.binary(min_size=1, max_size=32),
)
def test_matches_cryptography_per_unit_for_every_device_unit_size(
    key: bytes, tweak: bytes, unit: int, units: int, tail_blocks: int, seed: bytes
) -> None:
    tail = min(tail_blocks * 16, unit - 16)
    size = units * unit + tail
    data = (hashlib.sha512(seed).digest() * (size // 64 + 1))[:size]
    expected = reference_units(key, tweak, data, unit)
    assert xts_encrypt(key, tweak, data, unit) == expected
    assert xts_decrypt(key, tweak, expected, unit) == data


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32).filter(distinct_halves),
    tweak=st.binary(min_size=16, max_size=16),
    unit=st.integers(min_value=16, max_value=700),
    units=st.integers(min_value=1, max_value=4),
)
def test_ciphertext_stealing_for_any_unit_length(
    key: bytes, tweak: bytes, unit: int, units: int
) -> None:
    data = bytes((i * 7 + 3) & 0xFF for i in range(unit * units))
    expected = reference_units(key, tweak, data, unit)
    assert xts_encrypt(key, tweak, data, unit) == expected
    assert xts_decrypt(key, tweak, expected, unit) == data


def test_tweak_increment_carries_across_128_bits() -> None:
    key = bytes(range(32, 64))
    near_wrap = (2**64 - 2).to_bytes(16, "little")
    data = bytes(range(256)) * 8  # 4 units of 512
    assert xts_encrypt(key, near_wrap, data, 512) == reference_units(key, near_wrap, data, 512)
    top = b"\xff" * 16
    assert tweak_add(top, 1) == bytes(16)
    assert xts_encrypt(key, top, data, 512) == reference_units(key, top, data, 512)


def test_large_buffer_spans_several_batches() -> None:
    key = bytes(range(64))
    tweak = (12345).to_bytes(16, "little")
    data = hashlib.sha256(b"x").digest() * (3 * 1024 * 1024 // 32 + 5)
    for unit in (512, 520, 4160):
        usable = len(data) - len(data) % unit
        chunk = data[:usable]
        ct = xts_encrypt(key, tweak, chunk, unit)
        # Spot-check units at the start, across a batch edge and at the end.
        for k in (0, (1 << 20) // unit, usable // unit - 1):
            piece = chunk[k * unit : (k + 1) * unit]
            want = reference_units(key, tweak_add(tweak, k), piece, unit)
            assert ct[k * unit : (k + 1) * unit] == want
        assert xts_decrypt(key, tweak, ct, unit) == chunk


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        XtsKey(bytes(48))
    with pytest.raises(ValueError):
        xts_encrypt(bytes(32), bytes(15), bytes(512), 512)
    with pytest.raises(ValueError):
        xts_encrypt(bytes(32), bytes(16), bytes(520), 512)  # an 8-byte final piece
    with pytest.raises(ValueError):
        data_unit_size_bytes(5)
    assert [data_unit_size_bytes(i) for i in range(5)] == [512, 520, 4048, 4096, 4160]
    assert xts_encrypt(bytes(32), bytes(16), b"", 512) == b""


def test_key_is_never_shown() -> None:
    key = XtsKey(b"\x5a" * 64)
    assert "Z" not in repr(key) and "5a" not in repr(key).lower()
    assert "Z" not in str(key)
    assert key.bits_per_half == 256
