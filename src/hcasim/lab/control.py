"""The control endpoint: one session per client connection, one handler per operation.

Handlers validate every argument before touching a device, so bad input gets an errno
and a message and changes nothing. A session's semaphores are released when it ends.

Who the client is comes from the kernel when it connects (``SO_PEERCRED``, mapped by
:class:`hcasim.lab.identity.Identities`): the lab operator may do everything; a process of a
lab host reaches only its own host's devices and none of :data:`OPERATOR_OPS`; any other
process is refused every operation (docs/security-model.md).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import itertools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from hcasim.devices.cx3 import Cx3Firmware, FirmwareError
from hcasim.lab.identity import Identities, IdentityError, Principal
from hcasim.lab.lab import Device, Lab
from hcasim.lab.protocol import (
    HEADER,
    ControlError,
    ProtocolError,
    body_length,
    decode_body,
    encode,
)

log = logging.getLogger("hcasim.control")
_session_ids = itertools.count(1)

#: Largest CR block one request may read or write (dwords); a MAD carries at most 56.
MAX_CR_DWORDS = 4096

#: Operations of the lab operator: refused to a process of any lab host, whatever host it
#: names (a machine cannot reboot another, stop the lab or start its subnet manager).
OPERATOR_OPS = frozenset({
    "status", "host_reboot", "driver_restart", "shutdown", "sm_start", "sm_stop",
    "sm_status", "web_start", "web_stop", "web_snapshot",
    # fault injection takes links and nodes of the whole fabric down (hcasim.lab.faults)
    "fault_link", "fault_port", "fault_node", "fault_show",
})


class Session:
    """One connected client: the host it runs on and the devices it opened."""

    def __init__(self, principal: Principal | None = None, refusal: str | None = None) -> None:
        self.ident = next(_session_ids)
        #: Who is at the other end, from the kernel (None with ``refusal``: nobody served).
        self.principal = principal
        self.refusal = refusal
        self.host: str | None = principal.host if principal is not None else None
        self.opened: dict[str, Device] = {}
        #: Called once when the session ends (device contexts, logins, ...).
        self.on_close: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Session({self.ident}, host={self.host})"


# The argument checks of every control operation (the crypto operations have theirs in
# hcasim.lab.crypto_protocol): JSON gives a handler whatever the client sent, so each field
# is taken through one of these, which refuse with EINVAL before anything is touched.


def int_arg(args: dict[str, Any], name: str, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``; booleans and floats (even integral ones) are refused."""
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ControlError(errno.EINVAL, f"{name} must be an integer in [{lo}, {hi}]")
    return value


def int_list_arg(args: dict[str, Any], name: str, lo: int, hi: int, max_len: int) -> list[int]:
    """A list of 1 to ``max_len`` integers in ``[lo, hi]`` (no booleans, no floats): what a
    device stores must be what a later read can return."""
    values = args.get(name)
    if (
        not isinstance(values, list)
        or not 1 <= len(values) <= max_len
        or not all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
                   for v in values)
    ):
        raise ControlError(
            errno.EINVAL, f"{name} must be a list of 1 to {max_len} integers in [{lo}, {hi}]"
        )
    return values


def str_arg(args: dict[str, Any], name: str) -> str:
    """A non-empty string."""
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(errno.EINVAL, f"{name} must be a non-empty string")
    return value


def str_list_arg(args: dict[str, Any], name: str, max_len: int) -> list[str]:
    """A list of at most ``max_len`` strings without NUL (they become a program's argv)."""
    values = args.get(name, [])
    if (
        not isinstance(values, list)
        or len(values) > max_len
        or not all(isinstance(v, str) and "\0" not in v for v in values)
    ):
        raise ControlError(
            errno.EINVAL, f"{name} must be a list of at most {max_len} strings without NUL"
        )
    return values


def seconds_arg(args: dict[str, Any], name: str, default: float, most: float) -> float:
    """A finite duration in ``(0, most]`` seconds, integer or float, never a boolean."""
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= most:
        raise ControlError(errno.EINVAL, f"{name} must be 0 < seconds <= {most:g}")
    return float(value)


class ControlEndpoint:
    """Serves the control protocol for one lab."""

    def __init__(self, lab: Lab, on_shutdown: Callable[[], None],
                 identities: Identities | None = None) -> None:
        self.lab = lab
        self.on_shutdown = on_shutdown
        self.identities = identities if identities is not None else Identities()
        self.handlers: dict[str, Callable[[Session, dict[str, Any]], dict[str, Any]]] = {
            "ping": lambda s, a: {},
            "hello": self.hello,
            "status": lambda s, a: self.lab.status(),
            "host_status": self.host_status,
            "open": self.open,
            "cr_read": self.cr_read,
            "cr_write": self.cr_write,
            "flash_info": self.flash_info,
            "flash_read": self.flash_read,
            "flash_write": self.flash_write,
            "host_reboot": self.host_reboot,
            "driver_restart": self.driver_restart,
            "shutdown": self.shutdown,
            "exec_register": self.exec_register,
        }

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Run one session until the client disconnects or misbehaves."""
        session = self.identify(writer.get_extra_info("socket"))
        try:
            while True:
                try:
                    header = await reader.readexactly(HEADER.size)
                    body = await reader.readexactly(body_length(header))
                    request = decode_body(body)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                except ProtocolError as exc:
                    writer.write(encode({"ok": False, "errno": errno.EPROTO, "error": str(exc)}))
                    break
                reply = self.dispatch(session, request)
                if "pending" in reply:  # an asynchronous operation: wait without blocking the lab
                    reply = await self._finish(reply["pending"])
                writer.write(encode(reply))
                await writer.drain()
        except asyncio.CancelledError:
            pass  # the daemon is stopping
        except ConnectionError:
            # The client went away before its reply was written: what it asked for is done
            # (or refused) all the same, exactly as if it had read the reply and then closed.
            pass
        finally:
            self.end_session(session)
            writer.close()

    def identify(self, sock: Any) -> Session:
        """A session for the peer of ``sock``, with the principal the kernel vouches for."""
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", raw)
        except (AttributeError, OSError) as exc:
            return Session(refusal=f"the peer's credentials cannot be read: {exc}")
        try:
            return Session(self.identities.resolve(pid, uid))
        except IdentityError as exc:
            if self.identities.log_refusal_once(pid, "control"):
                log.warning("control connection from pid %d refused: %s", pid, exc)
            return Session(refusal=str(exc))

    def dispatch(self, session: Session, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request and build its reply."""
        op = request.get("op")
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "errno": errno.EOPNOTSUPP, "error": f"unknown operation {op!r}"}
        if session.refusal is not None:
            return {"ok": False, "errno": errno.EACCES, "error": session.refusal}
        if session.principal is not None and not session.principal.is_operator \
                and op in OPERATOR_OPS:
            return {"ok": False, "errno": errno.EPERM,
                    "error": f"{op} is the lab operator's: refused from host "
                             f"{session.principal.host}"}
        try:
            reply = handler(session, request)
        except (ControlError, FirmwareError) as exc:  # refused by the daemon or the device
            return {"ok": False, "errno": exc.errno, "error": str(exc)}
        reply["ok"] = True
        return reply

    @staticmethod
    async def _finish(pending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        try:
            reply = await pending
        except (ControlError, FirmwareError) as exc:  # refused by the daemon or the device
            return {"ok": False, "errno": exc.errno, "error": str(exc)}
        reply["ok"] = True
        return reply

    def end_session(self, session: Session) -> None:
        """Release what a finished session held."""
        for device in session.opened.values():
            device.firmware.release(session)
        session.opened.clear()
        while session.on_close:
            session.on_close.pop()()

    def register(
        self, op: str, handler: Callable[[Session, dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Serve another operation (device models and services add theirs).

        A handler that must wait (for another process, say) returns ``{"pending": aw}``
        with an awaitable of its reply; the lab keeps serving everything else meanwhile.
        """
        if op in self.handlers:
            raise ValueError(f"operation {op!r} is already served")
        self.handlers[op] = handler

    # ---------------------------------------------------------------- operations
    def hello(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        host = self.lab.host(str_arg(args, "host"))
        self.check_own_host(session, host.name)
        session.host = host.name
        # the PCI functions the host's sysfs lists (hcasim exec builds them for the
        # preload through which the real mstflint reaches them, docs/secure-host.md)
        pci = [
            {"address": d.pci_address, "device_id": d.firmware.kind.device_id}
            for d in host.devices
            if d.pci_address is not None and isinstance(d.firmware, Cx3Firmware)
        ]
        return {"host": host.name, "devices": [d.mst_paths[0] for d in host.devices], "pci": pci}

    def host_status(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``host_status [host]``: ``status`` narrowed to one host, the one a host's process
        may see (its own: what its root could read from its own devices). Without ``host``,
        the caller's own host."""
        principal = session.principal
        if args.get("host") is not None:
            name = str_arg(args, "host")
        elif principal is not None and principal.host is not None:
            name = principal.host
        else:
            raise ControlError(errno.EINVAL, "host_status names a host")
        host = self.lab.host(name)
        self.check_own_host(session, host.name)
        return {"hosts": [self.lab.host_status(host)]}

    @staticmethod
    def check_own_host(session: Session, host: str) -> None:
        """Refuse a host's process acting on another host (EACCES, one line)."""
        principal = session.principal
        if principal is not None and principal.host is not None and principal.host != host:
            raise ControlError(
                errno.EACCES, f"a process of host {principal.host} cannot act as host {host}")

    def exec_register(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``hcasim exec``: the connecting process (by its kernel pid) and everything it
        starts become ``host``. A host's process may only register for its own host."""
        host = self.lab.host(str_arg(args, "host")).name
        self.check_own_host(session, host)
        if session.principal is None:
            # an in-process session has no process the kernel could name to register
            raise ControlError(errno.EPERM, "exec_register: the session has no peer "
                               "process to register (only a control socket peer has)")
        nested = session.principal.host is not None
        try:
            self.identities.register(session.principal.pid, host)
        except IdentityError as exc:
            raise ControlError(errno.ESRCH, str(exc)) from None
        session.host = host
        # from inside its host, a process is confined already (no sandbox in a sandbox)
        return {"host": host, "nested": nested}

    def open(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        path = str_arg(args, "path")
        if session.host is None:
            raise ControlError(errno.ENOENT, "No such file or directory")
        device = self.lab.host(session.host).device_at(path)
        if device is None:
            raise ControlError(errno.ENOENT, "No such file or directory")
        session.opened[device.ident] = device
        firmware = device.firmware
        device_id = firmware.kind.device_id if isinstance(firmware, Cx3Firmware) else 0
        return {"handle": device.ident, "device_id": device_id, "model": firmware.mst_name}

    def _device(self, session: Session, args: dict[str, Any]) -> Device:
        handle = args.get("handle")
        device = session.opened.get(handle) if isinstance(handle, str) else None
        if device is None:
            raise ControlError(errno.EBADF, "device not opened in this session")
        return device

    def _cx3(self, session: Session, args: dict[str, Any]) -> Cx3Firmware:
        firmware = self._device(session, args).firmware
        if not isinstance(firmware, Cx3Firmware):
            raise ControlError(errno.EOPNOTSUPP, "not a ConnectX-3 CR-space device")
        return firmware

    def cr_read(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        firmware = self._cx3(session, args)
        addr = int_arg(args, "addr", 0, 0xFFFFFFFF)
        count = int_arg(args, "count", 1, MAX_CR_DWORDS)
        return {"values": firmware.cr_read(addr, count, session)}

    def cr_write(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        firmware = self._cx3(session, args)
        addr = int_arg(args, "addr", 0, 0xFFFFFFFF)
        values = int_list_arg(args, "values", 0, 0xFFFFFFFF, MAX_CR_DWORDS)
        firmware.cr_write(addr, values, session)
        return {}

    def flash_info(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        flash = self._cx3(session, args).flash
        return {"size": flash.size, "programmed": len(flash.contents)}

    def flash_read(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        firmware = self._cx3(session, args)
        size = firmware.flash.size
        offset = int_arg(args, "offset", 0, size)
        length = int_arg(args, "length", 0, size - offset)
        data = firmware.flash_read(offset, length, session)
        return {"data": base64.b64encode(data).decode()}

    def flash_write(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        firmware = self._cx3(session, args)
        try:
            image = base64.b64decode(str_arg(args, "data"), validate=True)
        except ValueError:  # binascii.Error, and a string that is not ASCII at all
            raise ControlError(errno.EINVAL, "data is not valid base64") from None
        firmware.flash_write_image(image, session)
        return {}

    def host_reboot(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.lab.reboot_host(str_arg(args, "host"))
        return {}

    def driver_restart(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.lab.restart_driver(str_arg(args, "host"))
        return {}

    def shutdown(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        self.on_shutdown()
        return {}
