"""What a crypto officer sends: register payloads for commissioning and key management.

Real deployments set CRYPTO_OPERATIONAL with ``mlxreg --set`` (docs/sources.md §15.1);
no public tool drives IMPORT_KEK_HANDLE / CREDENTIAL_HANDLE (docs/sources.md §15.2). This
module builds those register payloads from the field tables of :mod:`.registers`, and
:class:`CryptoOfficer` runs them through any register-access function (the in-process
:class:`.CryptoRegisters`, or the lab daemon's register path), raising :class:`OfficerError` on
a non-OK register status.

The officer's own login travels in every handle-register access as a ``crypto_login_obj_ext``:
its credential id, its session import KEK id and its credential wrapped under that KEK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hcasim.devices.mlx5.constants import CredentialRole
from hcasim.devices.mlx5.keywrap import CREDENTIAL_LEN, Secret, kek_len, wrap, wrap_credential
from hcasim.devices.mlx5.register_access import RegisterMethod, RegisterReply, RegStatus
from hcasim.devices.mlx5.registers import (
    CREDENTIAL_HANDLE,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    RegisterId,
    Values,
    WriteOperation,
)

__all__ = [
    "CryptoOfficer",
    "OfficerError",
    "OfficerIdentity",
    "RegisterAccessFn",
    "commissioning_payload",
    "going_to_commissioning_payload",
]

#: ``access(register_id, method, data) -> RegisterReply``.
RegisterAccessFn = Callable[[int, int, bytes], RegisterReply]


class OfficerError(Exception):
    """A register access answered with a non-OK status."""

    def __init__(self, reply: RegisterReply) -> None:
        super().__init__(f"register status {reply.status.name}: {reply.message}")
        self.status = reply.status
        self.reply = reply


def commissioning_payload(credential: bytes, kek: bytes) -> bytes:
    """CRYPTO_OPERATIONAL write that moves a device from commissioning to operational:
    the 40-byte plaintext credential and a 16- or 32-byte plaintext import KEK (kek_size
    0 or 1; a 128-bit KEK occupies the first 16 bytes of the field)."""
    if len(credential) != CREDENTIAL_LEN:
        raise ValueError("the credential is 40 bytes")
    kek_size = {16: 0, 32: 1}.get(len(kek))
    if kek_size is None:
        raise ValueError("the KEK is 16 or 32 bytes")
    return CRYPTO_OPERATIONAL.pack(
        {"kek_size": kek_size, "credential": bytes(credential), "kek": bytes(kek)}
    )


def going_to_commissioning_payload(flag: bool) -> bytes:
    """CRYPTO_OPERATIONAL write of ``wrapped_crypto_going_to_commissioning`` alone."""
    return CRYPTO_OPERATIONAL.pack({"wrapped_crypto_going_to_commissioning": int(flag)})


@dataclass(frozen=True)
class OfficerIdentity:
    """An officer-role credential and the import KEK it logs in with (plaintext, hidden)."""

    credential_id: int
    import_kek_id: int
    credential: Secret = field(repr=False)
    kek: Secret = field(repr=False)

    def login_object(self) -> Values:
        """The ``crypto_login_obj_ext`` fields for a handle register."""
        return {
            "credential_pointer": self.credential_id,
            "session_import_kek_ptr": self.import_kek_id,
            "credential": wrap_credential(self.kek, self.credential),
        }


class CryptoOfficer:
    """Runs crypto-officer operations through a register-access function."""

    def __init__(self, access: RegisterAccessFn, identity: OfficerIdentity | None = None) -> None:
        """``identity`` is needed for the handle registers, not for CRYPTO_OPERATIONAL."""
        self._access = access
        self.identity = identity

    def __repr__(self) -> str:
        who = "anonymous" if self.identity is None else f"credential {self.identity.credential_id}"
        return f"CryptoOfficer({who})"

    def _run(self, register_id: int, method: RegisterMethod, payload: bytes) -> bytes:
        reply = self._access(register_id, method, payload)
        if reply.status is not RegStatus.OK:
            raise OfficerError(reply)
        return reply.data

    def _login(self) -> Values:
        if self.identity is None:
            raise ValueError("this operation needs the officer's identity")
        return self.identity.login_object()

    # -- CRYPTO_OPERATIONAL --------------------------------------------------------------

    def commission(self, credential: bytes, kek: bytes) -> None:
        """Write the first credential and import KEK (both become id 0): operational."""
        self._run(
            RegisterId.CRYPTO_OPERATIONAL,
            RegisterMethod.WRITE,
            commissioning_payload(credential, kek),
        )

    def set_going_to_commissioning(self, flag: bool = True) -> None:
        """Ask for a return to commissioning mode at the next firmware reset (or cancel it)."""
        self._run(
            RegisterId.CRYPTO_OPERATIONAL,
            RegisterMethod.WRITE,
            going_to_commissioning_payload(flag),
        )

    def query_operational(self) -> tuple[bool, bool]:
        """(wrapped_crypto_operational, wrapped_crypto_going_to_commissioning)."""
        data = self._run(
            RegisterId.CRYPTO_OPERATIONAL, RegisterMethod.QUERY, bytes(CRYPTO_OPERATIONAL.size)
        )
        values = CRYPTO_OPERATIONAL.unpack(data)
        return (
            bool(values["wrapped_crypto_operational"]),
            bool(values["wrapped_crypto_going_to_commissioning"]),
        )

    # -- CREDENTIAL_HANDLE -----------------------------------------------------------------

    def add_credential(self, credential: bytes, role: CredentialRole = CredentialRole.USER) -> int:
        """Add a 40-byte credential (wrapped here under the officer's KEK); return its id."""
        wrapped = wrap_credential(self._kek(), credential)
        return self.add_wrapped_credential(wrapped, role)

    def add_wrapped_credential(self, wrapped: bytes, role: int = CredentialRole.USER) -> int:
        """Add a credential given already wrapped (e.g. deliberately corrupted, in tests)."""
        payload = CREDENTIAL_HANDLE.pack(
            {
                "crypto_login_object": self._login(),
                "credential_object": {"credential_role": int(role), "credential": wrapped},
                "write_operation": WriteOperation.ADD,
            }
        )
        data = self._run(RegisterId.CREDENTIAL_HANDLE, RegisterMethod.WRITE, payload)
        return _int(CREDENTIAL_HANDLE.unpack(data)["credential_id"])

    def delete_credential(self, credential_id: int) -> None:
        """Delete a credential; logins that used it turn INVALID."""
        payload = CREDENTIAL_HANDLE.pack(
            {
                "crypto_login_object": self._login(),
                "credential_id": credential_id,
                "write_operation": WriteOperation.DELETE,
            }
        )
        self._run(RegisterId.CREDENTIAL_HANDLE, RegisterMethod.WRITE, payload)

    def query_credential(self, credential_id: int) -> int:
        """The role of a stored credential (0 officer, 1 user)."""
        payload = CREDENTIAL_HANDLE.pack(
            {"crypto_login_object": self._login(), "credential_id": credential_id}
        )
        data = self._run(RegisterId.CREDENTIAL_HANDLE, RegisterMethod.QUERY, payload)
        obj = CREDENTIAL_HANDLE.unpack(data)["credential_object"]
        assert isinstance(obj, dict)
        return _int(obj["credential_role"])

    # -- IMPORT_KEK_HANDLE -----------------------------------------------------------------

    def add_import_kek(self, kek: bytes) -> int:
        """Add a 16- or 32-byte import KEK (wrapped here under the officer's KEK)."""
        key_size = {16: 0, 32: 1}.get(len(kek))
        if key_size is None:
            raise ValueError("an import KEK is 16 or 32 bytes")
        kek_len(key_size)
        return self.add_wrapped_import_kek(wrap(self._kek(), kek), key_size)

    def add_wrapped_import_kek(self, wrapped: bytes, key_size: int) -> int:
        """Add an import KEK given already wrapped."""
        payload = IMPORT_KEK_HANDLE.pack(
            {
                "crypto_login_object": self._login(),
                "import_kek_object": {"key_size": key_size, "key": wrapped},
                "write_operation": WriteOperation.ADD,
            }
        )
        data = self._run(RegisterId.IMPORT_KEK_HANDLE, RegisterMethod.WRITE, payload)
        return _int(IMPORT_KEK_HANDLE.unpack(data)["import_kek_id"])

    def delete_import_kek(self, import_kek_id: int) -> None:
        """Delete an import KEK; logins that use it turn INVALID."""
        payload = IMPORT_KEK_HANDLE.pack(
            {
                "crypto_login_object": self._login(),
                "import_kek_id": import_kek_id,
                "write_operation": WriteOperation.DELETE,
            }
        )
        self._run(RegisterId.IMPORT_KEK_HANDLE, RegisterMethod.WRITE, payload)

    def query_import_kek(self, import_kek_id: int) -> int:
        """The key_size (0 = 128-bit, 1 = 256-bit) of a stored import KEK."""
        payload = IMPORT_KEK_HANDLE.pack(
            {"crypto_login_object": self._login(), "import_kek_id": import_kek_id}
        )
        data = self._run(RegisterId.IMPORT_KEK_HANDLE, RegisterMethod.QUERY, payload)
        obj = IMPORT_KEK_HANDLE.unpack(data)["import_kek_object"]
        assert isinstance(obj, dict)
        return _int(obj["key_size"])

    def _kek(self) -> Secret:
        if self.identity is None:
            raise ValueError("this operation needs the officer's identity")
        return self.identity.kek


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError("expected a number")
    return value
