"""A program on a lab host that speaks the ibsim protocol itself, for MADs no tool sends.

It does what libumad2sim.so does (reference ibsim.md §1): binds ``<base>:in<id>``,
CONNECTs on ``<base>:ctl`` with ``SIM_HOST``, then exchanges 288-byte ``sim_request``
datagrams on ``<base>:out<index>``, and DISCONNECTs when closed.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path
from types import TracebackType

from hcasim.ib import build, mad
from hcasim.ib.simproto import SIM_MAGIC, SimClientInfo, SimCtl, SimCtlType, SimRequest
from hcasim.lab.home import LabHome

_ids = itertools.count(os.getpid() * 100 % 0x7FFF0000 + 0x10000)


def _abstract(name: str) -> bytes:
    return b"\0" + name.encode() + b"\0"


class SimClient:
    """One attached client on ``host`` of the lab whose home is ``home``."""

    def __init__(self, home: Path, host: str) -> None:
        base = LabHome(Path(home)).ibsim_sockname
        ident = next(_ids)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ctl.bind(_abstract(f"{base}:ctl{ident}"))
        self.ctl.settimeout(5)
        self.ctl.connect(_abstract(f"{base}:ctl"))
        self.data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.data.bind(_abstract(f"{base}:in{ident}"))
        reply = self.call(SimCtlType.CONNECT, SimClientInfo(id=ident, nodeid=host).encode())
        if reply.type != SimCtlType.CONNECT:
            raise RuntimeError(f"the lab refused a client on {host!r}")
        self.index = SimClientInfo.decode(reply.data).id
        self.data.connect(_abstract(f"{base}:out{self.index}"))

    def call(self, kind: int, payload: bytes = b"") -> SimCtl:
        """One control message and its reply."""
        clientid = getattr(self, "index", 0)
        self.ctl.send(SimCtl(SIM_MAGIC, clientid, kind, len(payload), payload).encode())
        return SimCtl.decode(self.ctl.recv(80))

    def mad(self, raw: bytes, dlid: int | None = None,
            timeout: float = 1.0) -> SimRequest | None:
        """Send a MAD (``dlid=None``: directed route); the reply datagram, or None."""
        self.data.settimeout(timeout)
        self.data.send(build.sim_request(raw, dlid).encode())
        try:
            while True:
                reply = SimRequest.decode(self.data.recv(512))
                if reply.mad[12:16] == raw[12:16] and (
                        reply.status or mad.is_response(reply.mad[3])):
                    return reply
        except TimeoutError:
            return None

    def close(self) -> None:
        """DISCONNECT, as libumad2sim does at exit (once)."""
        if self.ctl.fileno() < 0:
            return
        try:
            self.call(SimCtlType.DISCONNECT)
        finally:
            self.ctl.close()
            self.data.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
