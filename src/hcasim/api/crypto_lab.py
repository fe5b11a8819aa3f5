"""A one-device crypto lab in this process: engine, registers, officer and client transport.

For tests, benchmarks and examples. The lab daemon builds the same pieces itself (with its
store as ``nv_sink`` and a socket transport); this module only wires them for in-process use:

>>> lab = InProcessCryptoLab()
>>> admin = lab.commission()               # CRYPTO_OPERATIONAL: credential 0 + import KEK 0
>>> from hcasim import mlx5dv
>>> ctx = mlx5dv.Mlx5Context(lab.device_name, transport=lab.transport)
>>> mlx5dv.mlx5dv_crypto_login(ctx, mlx5dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
0
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hcasim.api.officer import CryptoOfficer, OfficerIdentity
from hcasim.devices.mlx5.crypto_engine import CONNECTX6DX, CryptoEngine, DeviceProfile
from hcasim.devices.mlx5.keywrap import Secret, wrap_credential, wrap_dek
from hcasim.devices.mlx5.nvstore import NvSnapshot
from hcasim.devices.mlx5.register_access import CryptoRegisters
from hcasim.mlx5dv import InProcessTransport

__all__ = ["DPDK_EXAMPLE_CREDENTIAL", "InProcessCryptoLab", "UserKeys"]

#: The credential of DPDK's mlxreg example, "credential[0]=0x10000000, credential[1]=0x10000000"
#: with the other dwords 0 (DPDK doc/guides/cryptodevs/mlx5.rst:67-126, docs/sources.md §15.1).
DPDK_EXAMPLE_CREDENTIAL = bytes.fromhex("1000000010000000") + bytes(32)


@dataclass(frozen=True)
class UserKeys:
    """A credential and the import KEK a user logs in with (plaintext; hidden in repr)."""

    credential_id: int
    import_kek_id: int
    credential: bytes = field(repr=False)
    kek: bytes = field(repr=False)

    def wrapped_credential(self) -> bytes:
        """The 48 bytes to put in ``mlx5dv_crypto_login_attr.credential``."""
        return wrap_credential(self.kek, self.credential)

    def wrap_dek(self, xts_key: bytes, keytag: bytes | None = None) -> bytes:
        """A DEK wrapped under this session's import KEK."""
        return wrap_dek(self.kek, xts_key, keytag)


class InProcessCryptoLab:
    """One engine named ``device_name``, its registers, a crypto officer and a transport."""

    def __init__(
        self,
        profile: DeviceProfile = CONNECTX6DX,
        *,
        device_name: str = "mlx5_0",
        storage_key: bytes | None = None,
        nv: NvSnapshot | None = None,
    ) -> None:
        """Build the lab; ``nv`` restores a previous :attr:`snapshots` entry."""
        self.device_name = device_name
        self.storage_key = os.urandom(32) if storage_key is None else storage_key
        self.snapshots: list[NvSnapshot] = []
        self.engine = CryptoEngine(
            self.storage_key, profile=profile, nv=nv, nv_sink=self.snapshots.append
        )
        self.registers = CryptoRegisters(self.engine)
        self.transport: InProcessTransport = InProcessTransport({device_name: self.engine})
        self.officer = CryptoOfficer(self.registers.access)
        self.admin: UserKeys | None = None

    def __repr__(self) -> str:
        return f"InProcessCryptoLab({self.device_name}, {self.engine!r})"

    def commission(
        self, credential: bytes = DPDK_EXAMPLE_CREDENTIAL, kek: bytes = bytes(16)
    ) -> UserKeys:
        """Write CRYPTO_OPERATIONAL (default: DPDK's example credential and an all-zero
        128-bit KEK) and make the officer use credential 0 / KEK 0 from then on."""
        self.officer.commission(credential, kek)
        self.admin = UserKeys(0, 0, credential, kek)
        self.officer.identity = OfficerIdentity(0, 0, Secret(credential), Secret(kek))
        return self.admin

    def admin_keys(self) -> UserKeys:
        """Credential 0 and import KEK 0, as written by :meth:`commission`."""
        if self.admin is None:
            raise ValueError("commission the device first")
        return self.admin

    def wrapped_credential(self) -> bytes:
        """Credential 0 wrapped under import KEK 0 (after :meth:`commission`)."""
        return self.admin_keys().wrapped_credential()

    def add_user(self, credential: bytes | None = None, kek: bytes | None = None) -> UserKeys:
        """Have the officer add a USER credential and a 256-bit import KEK; return both."""
        credential = os.urandom(40) if credential is None else credential
        kek = os.urandom(32) if kek is None else kek
        credential_id = self.officer.add_credential(credential)
        kek_id = self.officer.add_import_kek(kek)
        return UserKeys(credential_id, kek_id, credential, kek)
