"""Each mlx5 crypto operation is declared once (hcasim.lab.crypto_protocol.OPERATIONS); the
engine, the transport protocol, both transports and the daemon must agree with it, and the
control-protocol fields must stay those of docs/crypto.md §9."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from hcasim.devices.mlx5.constants import DekState, LoginState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    CryptoEngine,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.keywrap import Secret
from hcasim.lab.crypto_protocol import OP_PREFIX, OPERATIONS
from hcasim.lab.crypto_service import CryptoService
from hcasim.mlx5dv import CryptoTransport, InProcessTransport, SocketCryptoTransport

#: The transport methods that are a context's life rather than an engine operation.
LIFE = {"open_context", "close_context"}
#: The daemon's control operations that are not in the table.
DAEMON_OWN = {
    "mlx5_open",
    "mlx5_close_context",
    "mlx5_reg",
    # the verbs preload's (docs/crypto.md §11): the host's devices, the QP relay
    "mlx5_devices",
    "mlx5_qp_create",
    "mlx5_qp_destroy",
    "mlx5_qp_send",
    "mlx5_qp_fetch",
}

#: The wire form as it is today (request fields in order, reply field): changing it breaks
#: clients of older builds and docs/crypto.md §9.
WIRE: dict[str, tuple[tuple[str, ...], str | None]] = {
    "query_device": ((), "caps"),
    "crypto_login": (("credential_id", "import_kek_id", "credential", "comp_mask"), None),
    "crypto_login_query_state": ((), "state"),
    "crypto_logout": ((), None),
    "crypto_login_create": (
        ("credential_id", "import_kek_id", "credential", "comp_mask"),
        "login",
    ),
    "crypto_login_query": (("login", "comp_mask"), "state"),
    "crypto_login_destroy": (("login",), None),
    "dek_create": (
        ("key_size", "has_keytag", "key_purpose", "pd", "opaque", "key", "comp_mask",
         "crypto_login"),
        "dek",
    ),
    "dek_query": (("dek", "comp_mask"), "attr"),
    "dek_destroy": (("dek",), None),
    "mkey_create": (("create_flags", "max_entries"), "mkey"),
    "mkey_configure": (("mkey", "length", "crypto"), None),
    "mkey_destroy": (("mkey",), None),
    "mkey_transfer": (("mkey", "direction", "data", "offset"), "data"),
}

DEK_REQUEST = DekInitRequest(
    key_size=0, has_keytag=True, key_purpose=0, pd=3, opaque=b"disk0\0\0\0",
    key=Secret(bytes(range(128))), comp_mask=1, crypto_login=7,
)
CRYPTO_ATTR = CryptoAttrRequest(
    crypto_standard=0, encrypt_on_tx=True, signature_crypto_order=0, data_unit_size=1,
    initial_tweak=bytes(16), dek=9, keytag=Secret(b"tag-8byt"), comp_mask=0,
)

#: One request and one result per operation, for the round trips.
SAMPLES: dict[str, tuple[tuple[Any, ...], Any]] = {
    "query_device": ((), CryptoCaps(0, 6, 1, 7, 3)),
    "crypto_login": ((1, 2, Secret(bytes(48)), 0), None),
    "crypto_login_query_state": ((), LoginState.INVALID),
    "crypto_logout": ((), None),
    "crypto_login_create": ((1, 2, Secret(b"\x01" * 40), 0), 5),
    "crypto_login_query": ((5, 0), LoginState.VALID),
    "crypto_login_destroy": ((5,), None),
    "dek_create": ((DEK_REQUEST,), 11),
    "dek_query": ((11, 0), DekAttributes(DekState.READY, b"disk0\0\0\0", 0)),
    "dek_destroy": ((11,), None),
    "mkey_create": ((5, 1), 2),
    "mkey_configure": ((2, 4096, CRYPTO_ATTR), None),
    "mkey_destroy": ((2,), None),
    "mkey_transfer": ((2, Direction.RX, b"\xaa" * 512, 512), memoryview(bytearray(b"\x55" * 512))),
}


def methods(cls: type) -> set[str]:
    """The public methods a class defines."""
    return {name for name, value in vars(cls).items()
            if callable(value) and not name.startswith("_")}


def params(function: Callable[..., Any], skip: int) -> list[inspect.Parameter]:
    """The parameters of ``function`` after the first ``skip`` (self, handle or context)."""
    return list(inspect.signature(function).parameters.values())[skip:]


def test_the_table_names_every_engine_operation_of_the_protocol() -> None:
    assert set(OPERATIONS) == methods(CryptoTransport) - LIFE
    assert list(OPERATIONS) == list(WIRE)
    for name, op in OPERATIONS.items():
        assert op.name == name
        assert op.control_op == OP_PREFIX + name


@pytest.mark.parametrize("transport", [InProcessTransport, SocketCryptoTransport])
def test_each_transport_has_the_protocol_s_methods_with_its_signatures(transport: type) -> None:
    assert methods(transport) >= methods(CryptoTransport)
    for name in methods(CryptoTransport):
        assert inspect.signature(getattr(transport, name)) == inspect.signature(
            getattr(CryptoTransport, name)
        ), (transport.__name__, name)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_arguments_agree_with_the_protocol_and_the_engine(name: str) -> None:
    op = OPERATIONS[name]
    declared = [arg.param for arg in op.args]
    # (self, handle, ...) for the transports, (self, ctx, ...) for the engine.
    assert [p.name for p in params(getattr(CryptoTransport, name), 2)] == declared
    assert op.engine_method is getattr(CryptoEngine, name)
    assert [p.name for p in params(op.engine_method, 2)] == declared


def test_the_daemon_serves_exactly_the_table() -> None:
    registered: list[str] = []

    class Endpoint:
        def register(self, op: str, handler: object) -> None:
            registered.append(op)

    CryptoService(cast(Any, None)).register(cast(Any, Endpoint()))
    assert len(registered) == len(set(registered))
    assert set(registered) == DAEMON_OWN | {OP_PREFIX + name for name in OPERATIONS}


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_wire_fields_are_unchanged_and_round_trip(name: str) -> None:
    op = OPERATIONS[name]
    values, result = SAMPLES[name]
    request = json.loads(json.dumps(op.encode_request(values)))
    reply = json.loads(json.dumps(op.encode_reply(result)))
    fields, reply_field = WIRE[name]
    assert tuple(request) == fields
    assert list(reply) == ([] if reply_field is None else [reply_field])
    assert op.decode_request(request) == list(values)
    assert op.decode_reply(reply) == result
