"""Control-protocol form of the mlx5 crypto operations, shared by the daemon and its clients.

Each engine operation a device context offers is declared once, in :data:`OPERATIONS`: its
name (the :class:`hcasim.mlx5dv.CryptoTransport` method, the
:class:`~hcasim.devices.mlx5.crypto_engine.CryptoEngine` method and, after ``mlx5_``, the
control operation), its arguments with their request fields and codecs, its result with its
reply field and codec, and the engine method the daemon calls. The daemon
(:mod:`hcasim.lab.crypto_service`) serves the table and the socket transport
(:mod:`hcasim.mlx5dv.socket_transport`) sends through it. Besides these there are ``mlx5_open``
(the connection becomes a device context), ``mlx5_close_context``, ``mlx5_reg`` (a
crypto-officer access register), and for the verbs preload ``mlx5_devices`` and the QP relay
``mlx5_qp_*`` (:mod:`hcasim.lab.crypto_service`). This module only turns the engine's
request and result types into JSON values and back, checking every field; what an operation
*means* is decided by the engine (:mod:`hcasim.devices.mlx5.crypto_engine`).

Byte strings travel as base64. Secrets (credentials, keys, keytags) are among them: neither
side ever logs a request. A firmware refusal is not a control error: the reply is ``ok`` and
carries ``crypto_error`` = ``{errno, status, wc_status, stale, message}``, from which the
client rebuilds the engine's exception class (:func:`decode_error`); control errors (bad
arguments, no context on the connection, unknown device) are ordinary ``ok: false`` replies.
"""

from __future__ import annotations

import base64
import errno
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from hcasim.devices.mlx5.constants import DekState, LoginState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    CryptoEngine,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.errors import (
    CryptoCompletionError,
    CryptoError,
    CryptoStaleContext,
    error_from_code,
)
from hcasim.devices.mlx5.keywrap import Secret

__all__ = [
    "MAX_TRANSFER",
    "OPERATIONS",
    "OP_PREFIX",
    "Arg",
    "Operation",
    "Result",
    "WireError",
    "b64",
    "decode_caps",
    "decode_crypto_attr",
    "decode_dek_attributes",
    "decode_dek_request",
    "decode_error",
    "encode_caps",
    "encode_crypto_attr",
    "encode_dek_attributes",
    "encode_dek_request",
    "encode_error",
    "get_bool",
    "get_bytes",
    "get_int",
    "get_str",
]

#: Control operations of the crypto service are named ``mlx5_<transport method>``.
OP_PREFIX: Final = "mlx5_"
#: Largest buffer one ``mlx5_mkey_transfer`` carries (16 MiB; base64 keeps the message under
#: the protocol's 24 MiB limit). Bigger buffers are split by the client at data-unit bounds.
MAX_TRANSFER: Final = 16 * 1024 * 1024


class WireError(ValueError):
    """A field is missing or has the wrong type or size (the daemon answers EINVAL)."""


def b64(data: bytes | bytearray | memoryview) -> str:
    """Encode bytes for a control message."""
    return base64.b64encode(data).decode()


def get_int(args: Mapping[str, Any], name: str, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
    """An integer field in ``[lo, hi]`` (booleans are not integers here)."""
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise WireError(f"{name} must be an integer in [{lo}, {hi}]")
    return value


def get_bool(args: Mapping[str, Any], name: str) -> bool:
    """A boolean field."""
    value = args.get(name)
    if not isinstance(value, bool):
        raise WireError(f"{name} must be true or false")
    return value


def get_str(args: Mapping[str, Any], name: str) -> str:
    """A non-empty string field."""
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise WireError(f"{name} must be a non-empty string")
    return value


def get_bytes(args: Mapping[str, Any], name: str, max_len: int) -> bytes:
    """A base64 field of at most ``max_len`` decoded bytes."""
    value = args.get(name)
    if not isinstance(value, str) or len(value) > (max_len + 2) // 3 * 4:
        raise WireError(f"{name} must be base64 of at most {max_len} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, and a string that is not ASCII at all
        raise WireError(f"{name} is not valid base64") from None


# --- capabilities -----------------------------------------------------------------------------

_CAPS_FIELDS: Final = (
    "failed_selftests",
    "crypto_engines",
    "wrapped_import_method",
    "log_max_num_deks",
    "flags",
)


def encode_caps(caps: CryptoCaps) -> dict[str, int]:
    """``struct mlx5dv_crypto_caps`` as JSON."""
    return caps.as_dict()


def decode_caps(data: Mapping[str, Any]) -> CryptoCaps:
    """The inverse of :func:`encode_caps`."""
    return CryptoCaps(**{name: get_int(data, name) for name in _CAPS_FIELDS})


# --- DEKs -------------------------------------------------------------------------------------


def encode_dek_request(attr: DekInitRequest) -> dict[str, Any]:
    """``mlx5dv_dek_init_attr`` as JSON (the key field in base64)."""
    return {
        "key_size": attr.key_size,
        "has_keytag": bool(attr.has_keytag),
        "key_purpose": attr.key_purpose,
        "pd": attr.pd,
        "opaque": b64(attr.opaque),
        "key": b64(attr.key.reveal()),
        "comp_mask": attr.comp_mask,
        "crypto_login": attr.crypto_login,
    }


def decode_dek_request(data: Mapping[str, Any]) -> DekInitRequest:
    """The inverse of :func:`encode_dek_request`; value checks are the engine's."""
    login = data.get("crypto_login")
    return DekInitRequest(
        key_size=get_int(data, "key_size"),
        has_keytag=get_bool(data, "has_keytag"),
        key_purpose=get_int(data, "key_purpose"),
        pd=get_int(data, "pd"),
        opaque=get_bytes(data, "opaque", 64),
        key=Secret(get_bytes(data, "key", 1024)),
        comp_mask=get_int(data, "comp_mask"),
        crypto_login=None if login is None else get_int(data, "crypto_login"),
    )


def encode_dek_attributes(attr: DekAttributes) -> dict[str, Any]:
    """``mlx5dv_dek_attr`` as JSON."""
    return {"state": int(attr.state), "opaque": b64(attr.opaque), "comp_mask": attr.comp_mask}


def decode_dek_attributes(data: Mapping[str, Any]) -> DekAttributes:
    """The inverse of :func:`encode_dek_attributes`."""
    return DekAttributes(
        DekState(get_int(data, "state", 0, 1)),
        get_bytes(data, "opaque", 64),
        get_int(data, "comp_mask"),
    )


# --- crypto MKeys -----------------------------------------------------------------------------


def encode_crypto_attr(attr: CryptoAttrRequest | None) -> dict[str, Any] | None:
    """``mlx5dv_crypto_attr`` as JSON (None: an MKey without crypto properties)."""
    if attr is None:
        return None
    return {
        "crypto_standard": attr.crypto_standard,
        "encrypt_on_tx": bool(attr.encrypt_on_tx),
        "signature_crypto_order": attr.signature_crypto_order,
        "data_unit_size": attr.data_unit_size,
        "initial_tweak": b64(attr.initial_tweak),
        "dek": attr.dek,
        "keytag": b64(attr.keytag.reveal()),
        "comp_mask": attr.comp_mask,
    }


def decode_crypto_attr(data: object) -> CryptoAttrRequest | None:
    """The inverse of :func:`encode_crypto_attr`."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise WireError("crypto must be an object or null")
    return CryptoAttrRequest(
        crypto_standard=get_int(data, "crypto_standard"),
        encrypt_on_tx=get_bool(data, "encrypt_on_tx"),
        signature_crypto_order=get_int(data, "signature_crypto_order"),
        data_unit_size=get_int(data, "data_unit_size"),
        initial_tweak=get_bytes(data, "initial_tweak", 64),
        dek=get_int(data, "dek"),
        keytag=Secret(get_bytes(data, "keytag", 64)),
        comp_mask=get_int(data, "comp_mask"),
    )


# --- errors -----------------------------------------------------------------------------------


def encode_error(exc: CryptoError) -> dict[str, Any]:
    """What a client needs to rebuild ``exc`` (no secret is ever in an engine message)."""
    return {
        "errno": exc.errno,
        "status": None if exc.status is None else int(exc.status),
        "wc_status": int(exc.wc_status) if isinstance(exc, CryptoCompletionError) else None,
        "stale": isinstance(exc, CryptoStaleContext),
        "message": exc.message,
    }


def decode_error(data: Mapping[str, Any]) -> CryptoError:
    """The inverse of :func:`encode_error`: the same exception class the engine raised."""
    status = data.get("status")
    wc_status = data.get("wc_status")
    code = data.get("errno")
    message = str(data.get("message", "crypto operation failed"))
    code = code if isinstance(code, int) and not isinstance(code, bool) else errno.EIO
    try:
        return error_from_code(
            code,
            message,
            status=status if isinstance(status, int) else None,
            wc_status=wc_status if isinstance(wc_status, int) else None,
            stale_context=bool(data.get("stale")),
        )
    except ValueError:  # a status this client does not know: keep the errno
        return error_from_code(code, message)


# --- the operations ---------------------------------------------------------------------------

R = TypeVar("R")


@dataclass(frozen=True)
class Arg:
    """One argument of an operation: the transport and engine parameter it is, the request
    field that carries it, and how it is encoded (client) and decoded and checked (daemon)."""

    #: The parameter's name in the transport, the in-process transport and the engine.
    param: str
    #: The request field; None when the encoded value is an object whose fields are the
    #: request's own (``mlx5_dek_create`` carries the ``mlx5dv_dek_init_attr`` fields flat).
    field: str | None
    encode: Callable[[Any], Any]
    #: Reads the argument from the whole request; raises :class:`WireError` (a ValueError).
    decode: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Result(Generic[R]):
    """What an operation returns: the reply field that carries it (None: nothing) and its
    encoding (daemon) and decoding (client)."""

    field: str | None
    encode: Callable[[R], Any]
    decode: Callable[[Any], R]


@dataclass(frozen=True)
class Operation(Generic[R]):
    """One engine operation as the control protocol carries it: control operation
    ``mlx5_<name>`` runs ``engine_method(engine, context id, *args)`` on the daemon."""

    #: The transport method, engine method and (after :data:`OP_PREFIX`) control operation.
    name: str
    #: The :class:`~hcasim.devices.mlx5.crypto_engine.CryptoEngine` method, unbound.
    engine_method: Callable[..., R]
    #: The arguments after the context, in the transport's order.
    args: tuple[Arg, ...]
    result: Result[R]

    @property
    def control_op(self) -> str:
        """The control operation's name."""
        return OP_PREFIX + self.name

    def encode_request(self, values: Sequence[Any]) -> dict[str, Any]:
        """The request fields for the transport arguments ``values`` (client side)."""
        request: dict[str, Any] = {}
        for arg, value in zip(self.args, values, strict=True):
            encoded = arg.encode(value)
            if arg.field is None:
                request.update(encoded)
            else:
                request[arg.field] = encoded
        return request

    def decode_request(self, request: Mapping[str, Any]) -> list[Any]:
        """The engine arguments of a request (daemon side); :class:`WireError` if malformed."""
        return [arg.decode(request) for arg in self.args]

    def encode_reply(self, value: R) -> dict[str, Any]:
        """The reply fields for the engine's result (daemon side)."""
        if self.result.field is None:
            return {}
        return {self.result.field: self.result.encode(value)}

    def decode_reply(self, reply: Mapping[str, Any]) -> R:
        """The transport's result from a reply (client side)."""
        field = self.result.field
        return self.result.decode(None if field is None else reply[field])


def _same(value: Any) -> Any:
    return value


def _nothing(value: object) -> None:
    return None


#: The result of an operation that returns nothing: an empty reply.
_NOTHING: Final = Result[None](None, _nothing, _nothing)


def _int(param: str, field: str | None = None) -> Arg:
    """An integer argument (an id, a mask, a length), sent as it is."""
    name = field or param
    return Arg(param, name, _same, lambda request: get_int(request, name))


def _secret(param: str) -> Arg:
    """A :class:`Secret` byte string (a wrapped credential), in base64."""
    return Arg(
        param,
        param,
        lambda secret: b64(secret.reveal()),
        lambda request: Secret(get_bytes(request, param, 1024)),
    )


def _transfer_data(data: bytes | bytearray | memoryview) -> str:
    """A transfer's buffer in base64; more than :data:`MAX_TRANSFER` bytes is refused with
    EINVAL before anything is sent (split it at data-unit bounds)."""
    view = memoryview(data).cast("B")
    if len(view) > MAX_TRANSFER:
        raise error_from_code(errno.EINVAL, f"one transfer carries at most {MAX_TRANSFER} bytes")
    return b64(view)


def _decode_data(encoded: str) -> memoryview:
    return memoryview(bytearray(base64.b64decode(encoded)))


_STATE: Final = Result[LoginState]("state", int, LoginState)

QUERY_DEVICE: Final = Operation(
    "query_device", CryptoEngine.query_device, (), Result("caps", encode_caps, decode_caps)
)
CRYPTO_LOGIN: Final = Operation(
    "crypto_login",
    CryptoEngine.crypto_login,
    (_int("credential_id"), _int("import_kek_id"), _secret("credential"), _int("comp_mask")),
    _NOTHING,
)
CRYPTO_LOGIN_QUERY_STATE: Final = Operation(
    "crypto_login_query_state", CryptoEngine.crypto_login_query_state, (), _STATE
)
CRYPTO_LOGOUT: Final = Operation("crypto_logout", CryptoEngine.crypto_logout, (), _NOTHING)
CRYPTO_LOGIN_CREATE: Final = Operation(
    "crypto_login_create",
    CryptoEngine.crypto_login_create,
    (_int("credential_id"), _int("import_kek_id"), _secret("credential"), _int("comp_mask")),
    Result[int]("login", _same, int),
)
CRYPTO_LOGIN_QUERY: Final = Operation(
    "crypto_login_query",
    CryptoEngine.crypto_login_query,
    (_int("login_id", "login"), _int("comp_mask")),
    _STATE,
)
CRYPTO_LOGIN_DESTROY: Final = Operation(
    "crypto_login_destroy",
    CryptoEngine.crypto_login_destroy,
    (_int("login_id", "login"),),
    _NOTHING,
)
DEK_CREATE: Final = Operation(
    "dek_create",
    CryptoEngine.dek_create,
    (Arg("attr", None, encode_dek_request, decode_dek_request),),
    Result[int]("dek", _same, int),
)
DEK_QUERY: Final = Operation(
    "dek_query",
    CryptoEngine.dek_query,
    (_int("dek_id", "dek"), _int("comp_mask")),
    Result("attr", encode_dek_attributes, decode_dek_attributes),
)
DEK_DESTROY: Final = Operation(
    "dek_destroy", CryptoEngine.dek_destroy, (_int("dek_id", "dek"),), _NOTHING
)
MKEY_CREATE: Final = Operation(
    "mkey_create",
    CryptoEngine.mkey_create,
    (_int("create_flags"), _int("max_entries")),
    Result[int]("mkey", _same, int),
)
MKEY_CONFIGURE: Final = Operation(
    "mkey_configure",
    CryptoEngine.mkey_configure,
    (
        _int("mkey_id", "mkey"),
        _int("length"),
        Arg("crypto", "crypto", encode_crypto_attr, lambda r: decode_crypto_attr(r.get("crypto"))),
    ),
    _NOTHING,
)
MKEY_DESTROY: Final = Operation(
    "mkey_destroy", CryptoEngine.mkey_destroy, (_int("mkey_id", "mkey"),), _NOTHING
)
MKEY_TRANSFER: Final = Operation(
    "mkey_transfer",
    CryptoEngine.mkey_transfer,
    (
        _int("mkey_id", "mkey"),
        Arg("direction", "direction", int, lambda r: Direction(get_int(r, "direction", 0, 1))),
        Arg("data", "data", _transfer_data, lambda r: get_bytes(r, "data", MAX_TRANSFER)),
        _int("offset"),
    ),
    Result("data", b64, _decode_data),
)

#: Every engine operation a device context offers, each ``mlx5_<name>`` on the control socket.
#: ``mlx5_open``, ``mlx5_close_context``, ``mlx5_reg``, ``mlx5_devices`` and ``mlx5_qp_*`` are
#: the daemon's own (a context's life, the officer's registers, the verbs preload's device
#: list and QP relay) and not in this table.
OPERATIONS: Final[Mapping[str, Operation[Any]]] = {
    op.name: op
    for op in (
        QUERY_DEVICE,
        CRYPTO_LOGIN,
        CRYPTO_LOGIN_QUERY_STATE,
        CRYPTO_LOGOUT,
        CRYPTO_LOGIN_CREATE,
        CRYPTO_LOGIN_QUERY,
        CRYPTO_LOGIN_DESTROY,
        DEK_CREATE,
        DEK_QUERY,
        DEK_DESTROY,
        MKEY_CREATE,
        MKEY_CONFIGURE,
        MKEY_DESTROY,
        MKEY_TRANSFER,
    )
}
