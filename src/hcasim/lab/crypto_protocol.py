"""Control-protocol form of the mlx5 crypto operations, shared by the daemon and its clients.

One control operation per :class:`hcasim.mlx5dv.CryptoTransport` method (``mlx5_`` + the
method name), plus ``mlx5_open`` (the connection becomes a device context) and ``mlx5_reg``
(a crypto-officer access register). This module only turns the engine's request and result
types into JSON values and back, checking every field; what an operation *means* is decided
by the engine (:mod:`hcasim.devices.mlx5.crypto_engine`).

Byte strings travel as base64. Secrets (credentials, keys, keytags) are among them: neither
side ever logs a request. A firmware refusal is not a control error: the reply is ``ok`` and
carries ``crypto_error`` = ``{errno, status, wc_status, stale, message}``, from which the
client rebuilds the engine's exception class (:func:`decode_error`); control errors (bad
arguments, no context on the connection, unknown device) are ordinary ``ok: false`` replies.
"""

from __future__ import annotations

import base64
import binascii
import errno
from collections.abc import Mapping
from typing import Any, Final

from hcasim.devices.mlx5.constants import DekState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    DekAttributes,
    DekInitRequest,
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
    "OP_PREFIX",
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
    except binascii.Error:
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
