"""AES key wrap (RFC 3394, NIST SP 800-38F "KW") as the mlx5 crypto engine uses it.

Everything secret that crosses the device boundary in wrapped import mode is wrapped with
AES-KW under an import KEK (docs/sources.md §14.5, §14.7, §15.1):

* a login credential: 40 bytes plaintext -> 48 bytes wrapped (``mlx5dv_crypto_login_attr``
  ``credential[48]``; rdma-core ``man/mlx5dv_crypto_login_create.3.md:86-98``: ENC(iv_64b +
  plaintext_credential), iv = 0xA6A6A6A6A6A6A6A6);
* a DEK: ``key1 || key2 [|| keytag]`` of 32/64 (+8) bytes -> 40/72 (48/80) bytes
  (``man/mlx5dv_dek_create.3.md:147-168``);
* an import KEK added by the crypto officer: 16/32 bytes -> 24/40 bytes, at the start (MSBs)
  of the 128-byte ``import_kek_object_ext.key`` field (mstflint register database).

The wrapping itself is ``cryptography``'s ``aes_key_wrap``/``aes_key_unwrap`` (RFC 3394 with the
default IV); this module adds the device's lengths and a :class:`Secret` type whose ``repr``
never shows the bytes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from .xts import XtsKey

__all__ = [
    "CREDENTIAL_LEN",
    "KEYTAG_LEN",
    "KW_OVERHEAD",
    "WRAPPED_CREDENTIAL_LEN",
    "DekMaterial",
    "KeyUnwrapError",
    "Secret",
    "dek_plaintext_len",
    "dek_wrapped_len",
    "kek_len",
    "parse_dek",
    "unwrap",
    "unwrap_credential",
    "wrap",
    "wrap_credential",
    "wrap_dek",
]

#: AES-KW adds one 64-bit block (the integrity check value A6A6A6A6A6A6A6A6).
KW_OVERHEAD: Final = 8
#: Plaintext credential length (CRYPTO_OPERATIONAL.credential is 0x28 bytes, docs/sources.md §18).
CREDENTIAL_LEN: Final = 40
#: Wrapped credential length (``credential[48]`` in ``struct mlx5dv_crypto_login_attr``).
WRAPPED_CREDENTIAL_LEN: Final = CREDENTIAL_LEN + KW_OVERHEAD
#: DEK keytag length (``mlx5dv_crypto_attr.keytag[8]``).
KEYTAG_LEN: Final = 8
#: ``enum mlx5dv_crypto_key_size``: 0 = 2x128-bit XTS key, 1 = 2x256-bit (mlx5dv.h).
_XTS_KEY_LEN: Final[dict[int, int]] = {0: 32, 1: 64}
#: ``kek_size`` / ``key_size`` of import KEKs: 0 = 128-bit, 1 = 256-bit (register database).
_KEK_LEN: Final[dict[int, int]] = {0: 16, 1: 32}


class KeyUnwrapError(ValueError):
    """The wrapped bytes did not unwrap under the given KEK (integrity check failed)."""


class Secret:
    """Bytes that must never appear in logs: ``repr``/``str`` show only the length."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | bytearray | memoryview) -> None:
        """Hold a copy of ``value``."""
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """Return the secret bytes (only where they are used, never for printing)."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __repr__(self) -> str:
        return f"Secret(<{len(self._value)} bytes hidden>)"

    __str__ = __repr__


def kek_len(key_size: int) -> int:
    """Bytes of an import KEK of ``key_size`` 0 (128-bit) or 1 (256-bit)."""
    try:
        return _KEK_LEN[key_size]
    except KeyError:
        raise ValueError(f"KEK size {key_size} is not 0 (128-bit) or 1 (256-bit)") from None


def dek_plaintext_len(key_size: int, has_keytag: bool) -> int:
    """Plaintext DEK bytes: 32 or 64, plus 8 with a keytag (dek_create.3.md:147-168)."""
    try:
        base = _XTS_KEY_LEN[key_size]
    except KeyError:
        raise ValueError(f"key_size {key_size} is not 0 (128) or 1 (256)") from None
    return base + (KEYTAG_LEN if has_keytag else 0)


def dek_wrapped_len(key_size: int, has_keytag: bool) -> int:
    """Wrapped DEK bytes: 40/72 without keytag, 48/80 with one (docs/sources.md §14.7)."""
    return dek_plaintext_len(key_size, has_keytag) + KW_OVERHEAD


def _check_kek(kek: bytes) -> None:
    if len(kek) not in (16, 32):
        raise ValueError(f"an import KEK is 16 or 32 bytes, not {len(kek)}")


def wrap(kek: bytes | Secret, plaintext: bytes | Secret) -> bytes:
    """AES-KW ``plaintext`` (a multiple of 8 bytes, at least 16) under ``kek``."""
    kek_bytes = kek.reveal() if isinstance(kek, Secret) else kek
    data = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    _check_kek(kek_bytes)
    return aes_key_wrap(kek_bytes, data)


def unwrap(kek: bytes | Secret, wrapped: bytes) -> Secret:
    """Undo :func:`wrap`; raises :class:`KeyUnwrapError` if the integrity check fails."""
    kek_bytes = kek.reveal() if isinstance(kek, Secret) else kek
    _check_kek(kek_bytes)
    if len(wrapped) < 24 or len(wrapped) % 8:
        raise KeyUnwrapError(f"{len(wrapped)} bytes is not a valid AES-KW length")
    try:
        return Secret(aes_key_unwrap(kek_bytes, bytes(wrapped)))
    except InvalidUnwrap:
        raise KeyUnwrapError("AES key unwrap integrity check failed") from None


def wrap_credential(kek: bytes | Secret, credential: bytes | Secret) -> bytes:
    """Wrap a 40-byte credential into the 48 bytes a login carries."""
    if len(credential) != CREDENTIAL_LEN:
        raise ValueError(f"a credential is {CREDENTIAL_LEN} bytes, not {len(credential)}")
    return wrap(kek, credential)


def unwrap_credential(kek: bytes | Secret, wrapped: bytes) -> Secret:
    """Unwrap a 48-byte login credential to its 40 plaintext bytes."""
    if len(wrapped) != WRAPPED_CREDENTIAL_LEN:
        raise KeyUnwrapError(f"a wrapped credential is 48 bytes, not {len(wrapped)}")
    return unwrap(kek, wrapped)


@dataclass(frozen=True)
class DekMaterial:
    """The usable content of a DEK: the XTS key and, if the DEK has one, its keytag."""

    key: XtsKey = field(repr=False)
    keytag: Secret | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        tag = "with keytag" if self.keytag is not None else "no keytag"
        return f"DekMaterial(<{self.key.bits_per_half}-bit halves, {tag}, hidden>)"


def parse_dek(plaintext: bytes | Secret, key_size: int, has_keytag: bool) -> DekMaterial:
    """Split a plaintext DEK ``key1 || key2 [|| keytag]`` into its parts."""
    data = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    expected = dek_plaintext_len(key_size, has_keytag)
    if len(data) != expected:
        raise ValueError(f"this DEK is {expected} bytes, not {len(data)}")
    xts_len = _XTS_KEY_LEN[key_size]
    keytag = Secret(data[xts_len:]) if has_keytag else None
    return DekMaterial(XtsKey(data[:xts_len]), keytag)


def wrap_dek(kek: bytes | Secret, xts_key: bytes, keytag: bytes | None = None) -> bytes:
    """Wrap ``key1 || key2 [|| keytag]`` as an application does before ``mlx5dv_dek_create``."""
    if len(xts_key) not in (32, 64):
        raise ValueError("an XTS key is 32 or 64 bytes")
    if keytag is not None and len(keytag) != KEYTAG_LEN:
        raise ValueError("a keytag is 8 bytes")
    return wrap(kek, xts_key + (keytag or b""))
