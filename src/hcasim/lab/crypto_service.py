"""The ConnectX-6 Dx crypto devices inside the lab daemon: storage keys and control ops.

When the daemon starts (:func:`hcasim.lab.daemon.start_services`), :func:`bind_storage_keys`
gives every such device (:class:`~hcasim.devices.mlx5.firmware.Mlx5CryptoFirmware`) its
storage key, and :class:`CryptoService` serves the crypto control operations of
:mod:`hcasim.lab.crypto_protocol`:

* ``mlx5_open {device}`` makes the connection a device context on the verbs device ``device``
  (``mlx5_0``) of the session's host (``hello`` first). One connection holds at most one
  context; when the connection ends (close, or the process dies) the context ends with its
  login session, login objects, DEKs and MKeys (``session.on_close``).
* ``mlx5_<op>`` for each operation of :data:`hcasim.lab.crypto_protocol.OPERATIONS` (one per
  :class:`hcasim.mlx5dv.CryptoTransport` engine operation), on that context.
* ``mlx5_devices``: the verbs devices of the session's host, ``[{name, node_guid}]`` in verbs
  order (what ``ibv_get_device_list`` shows a program of that host; the verbs preload asks).
* ``mlx5_qp_create``, ``mlx5_qp_destroy {qpn}``, ``mlx5_qp_send {qpn, dest_qpn, opcode, data,
  rkey, remote_addr}``, ``mlx5_qp_fetch {qpn}``: the lab-wide RC QP numbers of the verbs
  preload and the relay between QPs of different processes or hosts (docs/crypto.md §11):
  a SEND or RDMA WRITE waits in the destination QP's inbox until its process fetches it. A
  context's QPs end with it.
* ``mlx5_reg {device, register_id, method, data}``: one crypto-officer access register
  (CRYPTO_OPERATIONAL, IMPORT_KEK_HANDLE, CREDENTIAL_HANDLE) of a device of the session's host;
  the reply carries the register status and bytes, never a secret (write-only fields read 0).

Non-volatile crypto state is the engine's NV snapshot, kept in the store's ``nv_object`` table
under ``mlx5_crypto``; the engine hands each new snapshot to the store *before* the change
takes effect, so one officer operation is one SQLite transaction and a kill -9 leaves it done
or not done. The snapshot holds no secret in the clear: credentials are salted keyed hashes and
import KEKs are wrapped under a key derived from the device's *storage key*. That key lives
outside the database: each device's is derived (HMAC-SHA256 over the device name) from the lab
secret in ``HOME/crypto-storage.key`` (64 hex digits, mode 0600), created when the lab first
starts with a crypto device. Without that file (or with a damaged one) a device that has NV
crypto objects cannot open them: it comes up failed (``hcasim status`` says why, every open
gets EIO) instead of silently losing its officer's keys.

Events: a host reboot and a daemon restart are firmware resets (every context dies; a pending
return to commissioning takes effect); a driver restart ends every context (calls on it get
EIO) but the firmware keeps running.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import hmac
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hcasim.devices.mlx5.crypto_engine import ContextId
from hcasim.devices.mlx5.errors import CryptoError
from hcasim.devices.mlx5.firmware import Mlx5CryptoFirmware
from hcasim.lab.control import ControlEndpoint, Session
from hcasim.lab.crypto_protocol import (
    MAX_TRANSFER,
    OP_PREFIX,
    OPERATIONS,
    Operation,
    WireError,
    b64,
    encode_caps,
    encode_error,
    get_bytes,
    get_int,
    get_str,
)
from hcasim.lab.home import LabHome
from hcasim.lab.lab import Lab
from hcasim.lab.protocol import ControlError

__all__ = [
    "STORAGE_KEY_FILE",
    "CryptoService",
    "StorageKeyError",
    "device_storage_key",
    "load_lab_secret",
    "bind_storage_keys",
]

log = logging.getLogger("hcasim.crypto")

#: The lab secret from which every device's storage key is derived (in the lab home).
STORAGE_KEY_FILE: Final = "crypto-storage.key"
_SECRET_LEN: Final = 32
#: Largest register payload accepted (the handle registers are 0x300 bytes).
_MAX_REGISTER: Final = 4096
#: QP numbers are 24 bits; the relay hands them out from here, lab-wide.
_FIRST_QPN: Final = 0x100
_QPN_LIMIT: Final = 1 << 24
#: Work requests waiting in one QP's inbox before the relay refuses more (ENOBUFS).
_MAX_INBOX: Final = 4096
#: What a relayed work request may be.
_QP_OPCODES: Final = ("send", "write")


class StorageKeyError(Exception):
    """The lab secret file is missing or damaged; the message says which and why."""


def load_lab_secret(home: LabHome, *, may_create: bool) -> bytes:
    """Read the lab's crypto secret, creating it (0600, fsync'd) when allowed and missing."""
    path = home.path / STORAGE_KEY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        if not may_create:
            raise StorageKeyError(
                f"{STORAGE_KEY_FILE} is missing from the lab home: "
                "the stored crypto objects cannot be opened"
            ) from None
        return _create_secret(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageKeyError(f"{STORAGE_KEY_FILE} is unreadable: {exc}") from None
    digits = text.strip()
    if len(digits) != 2 * _SECRET_LEN:
        raise StorageKeyError(f"{STORAGE_KEY_FILE} does not hold {2 * _SECRET_LEN} hex digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise StorageKeyError(f"{STORAGE_KEY_FILE} is not hexadecimal") from None


def _create_secret(path: Path) -> bytes:
    secret = os.urandom(_SECRET_LEN)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile: use that one
        return bytes.fromhex(path.read_text().strip())
    try:
        os.write(fd, secret.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("created the lab's crypto storage secret %s", path.name)
    return secret


def device_storage_key(lab_secret: bytes, ident: str) -> bytes:
    """The storage key of one device: HMAC-SHA256(lab secret, purpose || device name)."""
    return hmac.new(
        lab_secret, b"hcasim mlx5 crypto storage key\0" + ident.encode(), hashlib.sha256
    ).digest()





# --- the control operations -------------------------------------------------------------------


@dataclass
class _RelayQp:
    """A QP of the verbs preload: its context's connection and what waits for it."""

    session: int
    inbox: deque[dict[str, Any]]


@dataclass
class _OpenContext:
    """A connection's device context: which device, and the engine's name for it."""

    firmware: Mlx5CryptoFirmware
    ctx: ContextId


class CryptoService:
    """Serves the crypto control operations of one lab."""

    def __init__(self, lab: Lab) -> None:
        """Serve the crypto devices of ``lab``."""
        self.lab = lab
        self._contexts: dict[int, _OpenContext] = {}
        self._qps: dict[int, _RelayQp] = {}
        self._next_qpn = _FIRST_QPN

    def register(self, endpoint: ControlEndpoint) -> None:
        """Add every ``mlx5_*`` operation to the control endpoint."""
        endpoint.register(OP_PREFIX + "devices", self.devices)
        endpoint.register(OP_PREFIX + "open", self.open)
        endpoint.register(OP_PREFIX + "close_context", self.close_context)
        endpoint.register(OP_PREFIX + "reg", self.register_access)
        endpoint.register(OP_PREFIX + "qp_create", self.qp_create)
        endpoint.register(OP_PREFIX + "qp_destroy", self.qp_destroy)
        endpoint.register(OP_PREFIX + "qp_send", self.qp_send)
        endpoint.register(OP_PREFIX + "qp_fetch", self.qp_fetch)
        for op in OPERATIONS.values():
            endpoint.register(op.control_op, functools.partial(self._engine_call, op))

    def crypto_devices(self, host: str) -> list[Mlx5CryptoFirmware]:
        """The crypto devices of a host, in verbs order (mlx5_0, mlx5_1, ...)."""
        return [
            d.firmware
            for d in self.lab.host(host).devices
            if isinstance(d.firmware, Mlx5CryptoFirmware)
        ]

    def devices(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_devices``: the session's host's verbs devices with their node GUIDs."""
        if session.host is None:
            raise ControlError(errno.ENOENT, "no host on this connection (hello first)")
        guids = {
            spec.get("name"): spec.get("guid", 0)
            for spec in self.lab.definition.get("hosts", [])
            if isinstance(spec, dict)
        }
        guid = guids.get(session.host, 0)
        return {
            "devices": [
                {"name": firmware.verbs_name, "node_guid": guid if isinstance(guid, int) else 0}
                for firmware in self.crypto_devices(session.host)
            ]
        }

    def _device(self, session: Session, args: dict[str, Any]) -> Mlx5CryptoFirmware:
        name = _wire(get_str, args, "device")
        if session.host is not None:
            for firmware in self.crypto_devices(session.host):
                if firmware.verbs_name == name:
                    return firmware
        raise ControlError(errno.ENODEV, f"no verbs device {name!r} on this host")

    def open(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_open``: this connection becomes a context on the named device."""
        firmware = self._device(session, args)
        if session.ident in self._contexts:
            raise ControlError(errno.EBUSY, "this connection already holds a device context")
        engine = firmware.engine
        if engine is None:
            raise ControlError(errno.EIO, f"the device failed: {firmware.failure}")
        ctx: ContextId = ("session", session.ident)
        caps = engine.open_context(ctx)
        self._contexts[session.ident] = _OpenContext(firmware, ctx)
        session.on_close.append(functools.partial(self._end, session.ident))
        return {"caps": encode_caps(caps)}

    def close_context(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_close_context``: end the connection's context (the connection stays)."""
        self._end(session.ident)
        return {}

    def _end(self, session_ident: int) -> None:
        for qpn in [n for n, qp in self._qps.items() if qp.session == session_ident]:
            del self._qps[qpn]
        opened = self._contexts.pop(session_ident, None)
        if opened is not None and opened.firmware.engine is not None:
            opened.firmware.engine.close_context(opened.ctx)

    def _engine_call(
        self, op: Operation[Any], session: Session, args: dict[str, Any]
    ) -> dict[str, Any]:
        opened = self._contexts.get(session.ident)
        if opened is None:
            raise ControlError(errno.EBADF, "no device context on this connection (mlx5_open)")
        engine = opened.firmware.engine
        if engine is None:
            raise ControlError(errno.EIO, f"the device failed: {opened.firmware.failure}")
        try:
            result = op.engine_method(engine, opened.ctx, *op.decode_request(args))
            return op.encode_reply(result)
        except CryptoError as exc:
            return {"crypto_error": encode_error(exc)}
        except ValueError as exc:  # WireError and out-of-range enum values
            raise ControlError(errno.EINVAL, str(exc)) from None

    # -- the QP relay of the verbs preload ------------------------------------------------

    def _own_qp(self, session: Session, args: dict[str, Any], field: str = "qpn") -> int:
        qpn: int = _wire(get_int, args, field, 0, _QPN_LIMIT - 1)
        qp = self._qps.get(qpn)
        if qp is None or qp.session != session.ident:
            raise ControlError(errno.EINVAL, f"QP {qpn:#x} is not this context's")
        return qpn

    def qp_create(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_qp_create``: a lab-wide QP number for a QP of this connection's context."""
        if session.ident not in self._contexts:
            raise ControlError(errno.EBADF, "no device context on this connection (mlx5_open)")
        for _ in range(_QPN_LIMIT):
            qpn = self._next_qpn
            self._next_qpn = qpn + 1 if qpn + 1 < _QPN_LIMIT else _FIRST_QPN
            if qpn not in self._qps:
                self._qps[qpn] = _RelayQp(session.ident, deque())
                return {"qpn": qpn}
        raise ControlError(errno.ENOMEM, "no QP number left")

    def qp_destroy(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_qp_destroy``: the QP's number is free again; what waited for it is dropped."""
        del self._qps[self._own_qp(session, args)]
        return {}

    def qp_send(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_qp_send``: a SEND or RDMA WRITE (wire bytes) into the destination's inbox.

        ENOENT when no QP has that number (the sender completes with a retry error), ENOBUFS
        when its inbox is full.
        """
        src = self._own_qp(session, args)
        dest = self._qps.get(_wire(get_int, args, "dest_qpn", 0, _QPN_LIMIT - 1))
        opcode = _wire(get_str, args, "opcode")
        if opcode not in _QP_OPCODES:
            raise ControlError(errno.EINVAL, f"opcode must be one of {', '.join(_QP_OPCODES)}")
        _wire(get_bytes, args, "data", MAX_TRANSFER)  # checked; relayed as it came
        message = {
            "src_qpn": src,
            "opcode": opcode,
            "data": args["data"],
            "rkey": _wire(get_int, args, "rkey", 0, 0xFFFFFFFF),
            "remote_addr": _wire(get_int, args, "remote_addr"),
        }
        if dest is None:
            raise ControlError(errno.ENOENT, "no QP with that number in the lab")
        if len(dest.inbox) >= _MAX_INBOX:
            raise ControlError(errno.ENOBUFS, "the destination QP's inbox is full")
        dest.inbox.append(message)
        return {}

    def qp_fetch(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_qp_fetch``: what waits for one of this context's QPs, oldest first."""
        qp = self._qps[self._own_qp(session, args)]
        messages = list(qp.inbox)
        qp.inbox.clear()
        return {"messages": messages}

    def register_access(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``mlx5_reg``: one access register of a crypto device of the session's host."""
        firmware = self._device(session, args)
        register_id = _wire(get_int, args, "register_id", 0, 0xFFFF)
        method = _wire(get_int, args, "method", 0, 0xFF)
        data = _wire(get_bytes, args, "data", _MAX_REGISTER)
        registers = firmware.registers
        if registers is None:
            raise ControlError(errno.EIO, f"the device failed: {firmware.failure}")
        reply = registers.access(register_id, method, data)
        return {"status": int(reply.status), "data": b64(reply.data), "message": reply.message}

    def stop(self) -> None:
        """End every open context (the daemon is stopping)."""
        for ident in list(self._contexts):
            self._end(ident)


def _wire(getter: Callable[..., Any], args: dict[str, Any], *spec: Any) -> Any:
    try:
        return getter(args, *spec)
    except WireError as exc:
        raise ControlError(errno.EINVAL, str(exc)) from None


def bind_storage_keys(lab: Lab, home: LabHome) -> list[Mlx5CryptoFirmware]:
    """Daemon start: name each host's crypto devices (mlx5_0, mlx5_1, ...) and give each its
    storage key, derived from the lab secret (created on the first start); a device whose
    key cannot be had is left failed. Returns the crypto devices."""
    devices: list[Mlx5CryptoFirmware] = []
    for host in lab.hosts.values():
        index = 0
        for device in host.devices:
            if isinstance(device.firmware, Mlx5CryptoFirmware):
                device.firmware.verbs_name = f"mlx5_{index}"
                index += 1
                devices.append(device.firmware)
    if devices:
        try:
            secret = load_lab_secret(home, may_create=not any(d.has_nv_state for d in devices))
        except StorageKeyError as exc:
            for firmware in devices:
                firmware.fail(str(exc))
        else:
            for firmware in devices:
                firmware.bind(device_storage_key(secret, firmware.ident))
    return devices
