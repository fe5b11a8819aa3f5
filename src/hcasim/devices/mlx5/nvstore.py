"""Non-volatile state of the crypto engine and how its secrets are kept at rest.

The device keeps, across power cycles (docs/sources.md §15.1, §15.2, §18): whether it is
operational, whether it goes back to commissioning at the next firmware reset, and its table of
credentials and import KEKs (the ones of the CRYPTO_OPERATIONAL register at index 0 and the ones
the crypto officer added). The model stores:

* a credential as ``HMAC-SHA256(hash_key, salt || credential)`` with a random per-entry salt:
  the device only ever *compares* a presented credential with the stored one;
* an import KEK AES-KW-wrapped under ``wrap_key``: it must stay usable for unwrapping.

``hash_key`` and ``wrap_key`` are derived with HKDF-SHA256 from a device-unique *storage key*
that the lab daemon owns and passes in; the snapshot also carries ``storage_check`` so that a
snapshot loaded with the wrong storage key is refused instead of silently failing every login.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .constants import ID_MASK_24, CredentialRole
from .keywrap import KeyUnwrapError, Secret, kek_len, unwrap, wrap

__all__ = [
    "NV_FORMAT",
    "CredentialRecord",
    "KekRecord",
    "NvSnapshot",
    "NvState",
    "StorageKeys",
]

#: Version tag of the snapshot produced by :meth:`NvState.to_snapshot`.
NV_FORMAT: Final = "hcasim.mlx5.crypto.nv/1"
_SALT_LEN: Final = 16

#: The JSON-compatible dict the daemon persists (str keys; ints, bools, hex strings).
NvSnapshot = dict[str, Any]


class StorageKeys:
    """Keys derived from the daemon's device-unique storage key; never printed."""

    __slots__ = ("_check", "_hash_key", "_wrap_key")

    def __init__(self, storage_key: bytes) -> None:
        """Derive the KEK-wrapping key and the credential-hashing key (HKDF-SHA256)."""
        if len(storage_key) < 16:
            raise ValueError("the storage key must be at least 16 bytes")
        okm = HKDF(
            algorithm=hashes.SHA256(),
            length=64,
            salt=None,
            info=b"hcasim mlx5 crypto engine NV storage v1",
        ).derive(bytes(storage_key))
        self._wrap_key = okm[:32]
        self._hash_key = okm[32:]
        self._check = hmac.new(self._hash_key, b"storage-check", sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        return "StorageKeys(<hidden>)"

    @property
    def check(self) -> str:
        """A short public fingerprint that identifies the storage key (not secret)."""
        return self._check

    def hash_credential(self, role: CredentialRole, credential: Secret) -> CredentialRecord:
        """Make the at-rest record of a plaintext credential: a fresh salt and its keyed hash."""
        salt = os.urandom(_SALT_LEN)
        digest = hmac.new(self._hash_key, salt + credential.reveal(), sha256).digest()
        return CredentialRecord(role, salt, digest)

    def credential_matches(self, record: CredentialRecord, credential: Secret) -> bool:
        """Constant-time comparison of a presented credential with a stored record."""
        digest = hmac.new(self._hash_key, record.salt + credential.reveal(), sha256).digest()
        return hmac.compare_digest(digest, record.digest)

    def seal_kek(self, key_size: int, kek: Secret) -> KekRecord:
        """Wrap an import KEK for storage."""
        if len(kek) != kek_len(key_size):
            raise ValueError("KEK length does not match its size")
        return KekRecord(key_size, wrap(self._wrap_key, kek))

    def open_kek(self, record: KekRecord) -> Secret:
        """Unwrap a stored import KEK for use."""
        try:
            return unwrap(self._wrap_key, record.sealed)
        except KeyUnwrapError:
            raise ValueError("stored import KEK does not unwrap: wrong storage key?") from None


@dataclass(frozen=True)
class CredentialRecord:
    """A stored credential: its role and a salted keyed hash (never the credential)."""

    role: CredentialRole
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)


@dataclass(frozen=True)
class KekRecord:
    """A stored import KEK: its size (0 = 128-bit, 1 = 256-bit) and its sealed bytes."""

    key_size: int
    sealed: bytes = field(repr=False)


@dataclass(frozen=True)
class NvState:
    """Everything the crypto engine keeps across firmware resets and power cycles."""

    operational: bool = False
    going_to_commissioning: bool = False
    credentials: Mapping[int, CredentialRecord] = field(default_factory=dict)
    import_keks: Mapping[int, KekRecord] = field(default_factory=dict)

    def to_snapshot(self, keys: StorageKeys) -> NvSnapshot:
        """The JSON-compatible form the daemon persists (no secret in the clear)."""
        return {
            "format": NV_FORMAT,
            "storage_check": keys.check,
            "operational": self.operational,
            "going_to_commissioning": self.going_to_commissioning,
            "credentials": {
                str(cid): {"role": int(r.role), "salt": r.salt.hex(), "digest": r.digest.hex()}
                for cid, r in sorted(self.credentials.items())
            },
            "import_keks": {
                str(kid): {"key_size": r.key_size, "sealed": r.sealed.hex()}
                for kid, r in sorted(self.import_keks.items())
            },
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], keys: StorageKeys) -> NvState:
        """Rebuild the state from :meth:`to_snapshot` output; refuses a foreign storage key."""
        if snapshot.get("format") != NV_FORMAT:
            raise ValueError(f"unknown NV snapshot format {snapshot.get('format')!r}")
        if snapshot.get("storage_check") != keys.check:
            raise ValueError("the NV snapshot was written under a different storage key")
        credentials: dict[int, CredentialRecord] = {}
        for key, rec in dict(snapshot["credentials"]).items():
            credentials[_nv_id(key)] = CredentialRecord(
                CredentialRole(int(rec["role"])),
                bytes.fromhex(rec["salt"]),
                bytes.fromhex(rec["digest"]),
            )
        keks: dict[int, KekRecord] = {}
        for key, rec in dict(snapshot["import_keks"]).items():
            record = KekRecord(int(rec["key_size"]), bytes.fromhex(rec["sealed"]))
            kek_len(record.key_size)
            keys.open_kek(record)  # fail now, not at the first login
            keks[_nv_id(key)] = record
        return cls(
            operational=bool(snapshot["operational"]),
            going_to_commissioning=bool(snapshot["going_to_commissioning"]),
            credentials=credentials,
            import_keks=keks,
        )


def _nv_id(text: str) -> int:
    value = int(text)
    if not 0 <= value <= ID_MASK_24:
        raise ValueError(f"NV id {text!r} is not a 24-bit id")
    return value
