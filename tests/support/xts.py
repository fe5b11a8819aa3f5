"""The expected AES-XTS ciphertext of the crypto tests, computed with ``cryptography``."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def xts_reference(key: bytes, tweak: int, data: bytes, unit: int = 512) -> bytes:
    """AES-XTS per data unit with ``cryptography`` (tweak + k, little-endian): the expected
    ciphertext, computed independently of the model."""
    out = b""
    for k, start in enumerate(range(0, len(data), unit)):
        enc = Cipher(algorithms.AES(key), modes.XTS((tweak + k).to_bytes(16, "little"))).encryptor()
        out += enc.update(data[start : start + unit]) + enc.finalize()
    return out
