"""The control endpoint: one session per client connection, one handler per operation.

Handlers validate every argument before touching a device, so bad input gets an errno
and a message and changes nothing. A session's semaphores are released when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hcasim.devices.cx3 import Cx3Firmware, FirmwareError
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


class Session:
    """One connected client: the host it runs on and the devices it opened."""

    def __init__(self) -> None:
        self.ident = next(_session_ids)
        self.host: str | None = None
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

    def __init__(self, lab: Lab, on_shutdown: Callable[[], None]) -> None:
        self.lab = lab
        self.on_shutdown = on_shutdown
        self.handlers: dict[str, Callable[[Session, dict[str, Any]], dict[str, Any]]] = {
            "ping": lambda s, a: {},
            "hello": self.hello,
            "status": lambda s, a: self.lab.status(),
            "open": self.open,
            "cr_read": self.cr_read,
            "cr_write": self.cr_write,
            "flash_info": self.flash_info,
            "flash_read": self.flash_read,
            "flash_write": self.flash_write,
            "host_reboot": self.host_reboot,
            "driver_restart": self.driver_restart,
            "shutdown": self.shutdown,
        }

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Run one session until the client disconnects or misbehaves."""
        session = Session()
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

    def dispatch(self, session: Session, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request and build its reply."""
        op = request.get("op")
        handler = self.handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "errno": errno.EOPNOTSUPP, "error": f"unknown operation {op!r}"}
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
        session.host = host.name
        # the PCI functions the host's sysfs lists (hcasim exec builds them for the
        # preload through which the real mstflint reaches them, docs/secure-host.md)
        pci = [
            {"address": d.pci_address, "device_id": d.firmware.kind.device_id}
            for d in host.devices
            if d.pci_address is not None and isinstance(d.firmware, Cx3Firmware)
        ]
        return {"host": host.name, "devices": [d.mst_paths[0] for d in host.devices], "pci": pci}

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
