"""Access-register front end of the crypto engine: bytes in, bytes and a status out.

The lab daemon receives register accesses (an ACCESS_REG command, or a vendor MAD carrying an
Operation TLV and a Reg TLV, docs/sources.md §7.1) and hands the register id, the method
and the register bytes to :meth:`CryptoRegisters.access`. This module decodes them with the
field tables of :mod:`.registers`, calls the engine's typed officer methods, and encodes the
reply; it decides nothing itself.

Secrets never come back: write-only fields (credentials, keys) read as zero and are zeroed in
the echo of a write, which is what ``mlxreg --get`` shows for WO fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .crypto_engine import CryptoEngine, OfficerLogin
from .errors import CmdStatus, CryptoError, CryptoInvalidArgument
from .keywrap import Secret
from .registers import (
    CREDENTIAL_HANDLE,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    Layout,
    RegisterId,
    Values,
    WriteOperation,
)

__all__ = ["CryptoRegisters", "RegStatus", "RegisterMethod", "RegisterReply"]


class RegisterMethod(IntEnum):
    """Operation TLV ``method``: 1 = GET (query), 2 = SET (write) (docs/sources.md §7.1)."""

    QUERY = 1
    WRITE = 2


class RegStatus(IntEnum):
    """Operation TLV ``status`` (mstflint ``return_by_reg_status``, docs/sources.md §7.1)."""

    OK = 0x0
    DEV_BUSY = 0x1
    VER_NOT_SUPP = 0x2
    UNKNOWN_TLV = 0x3
    REG_NOT_SUPP = 0x4
    CLASS_NOT_SUPP = 0x5
    METHOD_NOT_SUPP = 0x6
    BAD_PARAM = 0x7
    RES_NOT_AVLBL = 0x8
    MSG_RECPT_ACK = 0x9
    BAD_CONFIG = 0x20
    ERASE_EXCEEDED = 0x21
    CONF_CORRUPT = 0x22
    LEN_TOO_SMALL = 0x24
    INTERNAL_ERROR = 0x70


#: How a firmware command status of the engine shows up as a register status (model choice).
_REG_STATUS: Final[dict[CmdStatus, RegStatus]] = {
    CmdStatus.BAD_OP: RegStatus.BAD_PARAM,
    CmdStatus.BAD_PARAM: RegStatus.BAD_PARAM,
    CmdStatus.BAD_RES: RegStatus.BAD_PARAM,
    CmdStatus.BAD_RES_STATE: RegStatus.BAD_PARAM,
    CmdStatus.BAD_SYS_STATE: RegStatus.BAD_PARAM,
    CmdStatus.LIM: RegStatus.RES_NOT_AVLBL,
    CmdStatus.NO_RES: RegStatus.RES_NOT_AVLBL,
    CmdStatus.INT_ERR: RegStatus.INTERNAL_ERROR,
}


@dataclass(frozen=True)
class RegisterReply:
    """The reply to one register access: its status, the register bytes, and why (if not OK).

    On error ``data`` is the request as received (devices echo it), secrets zeroed.
    """

    status: RegStatus
    data: bytes
    message: str = ""


class CryptoRegisters:
    """CRYPTO_OPERATIONAL (0xC002), IMPORT_KEK_HANDLE (0xC004), CREDENTIAL_HANDLE (0xC005)."""

    REGISTER_IDS: Final = frozenset(int(r) for r in RegisterId)

    def __init__(self, engine: CryptoEngine) -> None:
        """Serve the crypto registers of ``engine``."""
        self._engine = engine

    def access(self, register_id: int, method: int, data: bytes) -> RegisterReply:
        """Run one register access and return the reply; never raises for device errors."""
        layout = _LAYOUTS.get(register_id)
        if layout is None:
            return RegisterReply(RegStatus.REG_NOT_SUPP, bytes(data), "register not supported")
        if method not in (RegisterMethod.QUERY, RegisterMethod.WRITE):
            return RegisterReply(RegStatus.METHOD_NOT_SUPP, bytes(data), "method not supported")
        if len(data) < layout.size:
            return RegisterReply(
                RegStatus.LEN_TOO_SMALL, bytes(data), f"{layout.name} is {layout.size} bytes"
            )
        values = layout.unpack(data)
        try:
            if register_id == RegisterId.CRYPTO_OPERATIONAL:
                reply = self._crypto_operational(RegisterMethod(method), values)
            elif register_id == RegisterId.CREDENTIAL_HANDLE:
                reply = self._credential_handle(RegisterMethod(method), values)
            else:
                reply = self._import_kek_handle(RegisterMethod(method), values)
        except CryptoError as exc:
            status = _REG_STATUS.get(exc.status or CmdStatus.BAD_PARAM, RegStatus.BAD_PARAM)
            return RegisterReply(status, _scrub(layout, values), exc.message)
        return RegisterReply(RegStatus.OK, layout.pack(reply))

    # -- CRYPTO_OPERATIONAL ---------------------------------------------------------------

    def _crypto_operational(self, method: RegisterMethod, values: Values) -> Values:
        if method is RegisterMethod.WRITE:
            self._engine.write_crypto_operational(
                kek_size=_int(values, "kek_size"),
                credential=Secret(_bytes(values, "credential")),
                kek=Secret(_bytes(values, "kek")),
                going_to_commissioning=bool(_int(values, "wrapped_crypto_going_to_commissioning")),
            )
        state = self._engine.query_crypto_operational()
        return {
            "wrapped_crypto_operational": int(state.operational),
            "wrapped_crypto_going_to_commissioning": int(state.going_to_commissioning),
        }

    # -- handle registers ----------------------------------------------------------------

    def _credential_handle(self, method: RegisterMethod, values: Values) -> Values:
        officer = _officer(values)
        obj = _sub(values, "credential_object")
        cred_id = _int(values, "credential_id")
        engine = self._engine
        reply_obj: dict[str, int | bytes | Values] = {}
        if method is RegisterMethod.QUERY:
            info = engine.query_credential(officer, cred_id)
            reply_obj = {"credential_role": int(info.role), "state": int(info.state)}
        else:
            op = _write_operation(values)
            if op is WriteOperation.ADD:
                cred_id = engine.add_credential(
                    officer, _int(obj, "credential_role"), _bytes(obj, "credential")
                )
                reply_obj = {"credential_role": _int(obj, "credential_role")}
            else:
                engine.delete_credential(officer, cred_id)
        return {
            "crypto_login_object": _login_echo(values),
            "credential_object": reply_obj,
            "credential_id": cred_id,
            "write_operation": _int(values, "write_operation"),
        }

    def _import_kek_handle(self, method: RegisterMethod, values: Values) -> Values:
        officer = _officer(values)
        obj = _sub(values, "import_kek_object")
        kek_id = _int(values, "import_kek_id")
        engine = self._engine
        reply_obj: dict[str, int | bytes | Values] = {}
        if method is RegisterMethod.QUERY:
            info = engine.query_import_kek(officer, kek_id)
            reply_obj = {"key_size": info.key_size, "state": int(info.state)}
        else:
            op = _write_operation(values)
            if op is WriteOperation.ADD:
                kek_id = engine.add_import_kek(officer, _int(obj, "key_size"), _bytes(obj, "key"))
                reply_obj = {"key_size": _int(obj, "key_size")}
            else:
                engine.delete_import_kek(officer, kek_id)
        return {
            "crypto_login_object": _login_echo(values),
            "import_kek_object": reply_obj,
            "import_kek_id": kek_id,
            "write_operation": _int(values, "write_operation"),
        }


_LAYOUTS: Final[dict[int, Layout]] = {
    RegisterId.CRYPTO_OPERATIONAL: CRYPTO_OPERATIONAL,
    RegisterId.IMPORT_KEK_HANDLE: IMPORT_KEK_HANDLE,
    RegisterId.CREDENTIAL_HANDLE: CREDENTIAL_HANDLE,
}

#: Write-only secret fields, by layout, that are zeroed in every reply.
_SECRETS: Final[dict[str, tuple[str, ...]]] = {
    "crypto_operational_ext": ("credential", "kek"),
    "crypto_login_obj_ext": ("credential",),
    "credential_obj_ext": ("credential",),
    "import_kek_object_ext": ("key",),
}


def _scrub(layout: Layout, values: Values) -> bytes:
    """Re-encode ``values`` with every secret field zeroed."""
    return layout.pack(_scrubbed(layout, values))


def _scrubbed(layout: Layout, values: Values) -> dict[str, int | bytes | Values]:
    out: dict[str, int | bytes | Values] = {}
    hidden = _SECRETS.get(layout.name, ())
    for f in layout.fields:
        value = values.get(f.name)
        if value is None or f.name in hidden:
            continue
        if f.layout is not None and isinstance(value, Mapping):
            out[f.name] = _scrubbed(f.layout, value)
        else:
            out[f.name] = value
    return out


def _int(values: Values, name: str) -> int:
    value = values.get(name, 0)
    if not isinstance(value, int):
        raise TypeError(f"{name} is not a number")
    return value


def _bytes(values: Values, name: str) -> bytes:
    value = values.get(name, b"")
    if not isinstance(value, bytes):
        raise TypeError(f"{name} is not a byte field")
    return value


def _sub(values: Values, name: str) -> Values:
    value = values.get(name, {})
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} is not a structure")
    return value


def _officer(values: Values) -> OfficerLogin:
    login = _sub(values, "crypto_login_object")
    return OfficerLogin(
        credential_id=_int(login, "credential_pointer"),
        import_kek_id=_int(login, "session_import_kek_ptr"),
        credential=Secret(_bytes(login, "credential")),
    )


def _login_echo(values: Values) -> Values:
    login = _sub(values, "crypto_login_object")
    return {
        "credential_pointer": _int(login, "credential_pointer"),
        "session_import_kek_ptr": _int(login, "session_import_kek_ptr"),
    }


def _write_operation(values: Values) -> WriteOperation:
    op = _int(values, "write_operation")
    if op not in (WriteOperation.ADD, WriteOperation.DELETE):
        raise CryptoInvalidArgument(
            f"write_operation {op} is not ADD (1) or DELETE (2)", status=CmdStatus.BAD_PARAM
        )
    return WriteOperation(op)
