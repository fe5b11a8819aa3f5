"""A client of the ibsim socket protocol: what libumad2sim.so does, from Python.

It attaches to a server (the lab daemon's ibsim endpoint, or a real ``ibsim``) as a
libumad2sim process does (docs/sources.md §1.1-§1.3): it binds ``<base>:ctl<id>`` and
``<base>:in<id>`` (abstract unix datagram sockets, trailing NUL included), sends CONNECT
with ``SIM_HOST`` on ``<base>:ctl``, connects its data socket to ``<base>:out<index>``,
and then exchanges 80-byte ``sim_ctl`` control messages and 288-byte ``sim_request``
datagrams.  Unlike libumad2sim it also sends what no well-behaved client sends (any bytes,
on either socket), for conformance and robustness tests.

Example::

    with IbsimClient(LabHome.resolve().ibsim_sockname, "node2") as client:
        info = NodeInfo.decode(client.node_info())
        reply = client.request(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
"""

from __future__ import annotations

import errno
import os
import random
import socket
import time
from types import TracebackType

from hcasim.ib import build, mad
from hcasim.ib.simproto import (
    SIM_CTL_SIZE,
    SIM_MAGIC,
    SIM_REQUEST_SIZE,
    SimClientInfo,
    SimCtl,
    SimCtlType,
    SimGuid,
    SimIssm,
    SimPort,
    SimRequest,
    SimVendor,
)

#: ECONNREFUSED while the server is not up yet: libumad2sim retries every 2 s without
#: limit (docs/sources.md §1.1); this client retries for ``connect_timeout`` seconds.
_RETRY_INTERVAL = 0.05


class IbsimRefused(Exception):
    """The server answered a control message with SIM_CTL_ERROR (type 0)."""


def abstract_name(name: str) -> bytes:
    """The abstract socket address ibsim and libumad2sim use: NUL, name, NUL (docs/sources.md
    §1.1, ``make_name``)."""
    return b"\0" + name.encode() + b"\0"


class IbsimClient:
    """One attached client of the ibsim server named ``sockname``, at ``sim_host``.

    ``ident`` plays the pid's part in the socket names (default: a random unused
    number); ``issm`` connects as an SM client (``SIM_SET_ISSM``).  Raises
    :class:`IbsimRefused` when the server refuses the CONNECT.
    """

    def __init__(self, sockname: str, sim_host: str | None = None, *, issm: bool = False,
                 ident: int | None = None, timeout: float = 5.0,
                 connect_timeout: float = 10.0) -> None:
        self.base = sockname
        self.timeout = timeout
        self.ctl, self.data, self.ident = self._bind(ident)
        try:
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    self.ctl.connect(abstract_name(f"{sockname}:ctl"))
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(_RETRY_INTERVAL)
            self.index = 0
            info = SimClientInfo(id=self.ident, issm=int(issm), nodeid=sim_host or "")
            reply = self.control(SimCtlType.CONNECT, info.encode())
            attached = SimClientInfo.decode(reply.data)
            self.index = attached.id
            self.node = attached.nodeid
            self.data.connect(abstract_name(f"{sockname}:out{self.index}"))
        except BaseException:
            self.ctl.close()
            self.data.close()
            raise
        self._closed = False

    def _bind(self, ident: int | None) -> tuple[socket.socket, socket.socket, int]:
        for _ in range(100):
            chosen = ident if ident is not None else random.randrange(1 << 22, 1 << 31)
            ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                ctl.bind(abstract_name(f"{self.base}:ctl{chosen}"))
                data.bind(abstract_name(f"{self.base}:in{chosen}"))
            except OSError as exc:
                ctl.close()
                data.close()
                if exc.errno != errno.EADDRINUSE or ident is not None:
                    raise
                continue
            ctl.settimeout(self.timeout)
            data.settimeout(self.timeout)
            return ctl, data, chosen
        raise OSError(errno.EADDRINUSE, "no free client socket name")

    # -- control channel ---------------------------------------------------------------------

    def control(self, kind: int, payload: bytes = b"", clientid: int | None = None) -> SimCtl:
        """Send one ``sim_ctl`` and return the reply; :class:`IbsimRefused` on type 0."""
        message = SimCtl(SIM_MAGIC, self.index if clientid is None else clientid, kind,
                         len(payload), payload)
        reply = self.control_raw(message.encode())
        if reply is None:
            raise TimeoutError(f"no reply to control message {kind}")
        decoded = SimCtl.decode(reply)
        if decoded.type == SimCtlType.ERROR:
            raise IbsimRefused(f"control message {kind} refused")
        return decoded

    def control_raw(self, message: bytes, timeout: float | None = None) -> bytes | None:
        """Send any bytes on the control socket; the reply datagram, or None if none came
        within ``timeout`` seconds (default: the client's timeout)."""
        self.ctl.settimeout(self.timeout if timeout is None else timeout)
        self.ctl.send(message)
        try:
            return self.ctl.recv(SIM_CTL_SIZE + 1)
        except TimeoutError:
            return None

    def vendor(self) -> SimVendor:
        """GET_VENDOR: VendorID, DeviceID, Revision and fw_ver of the attach node."""
        return SimVendor.decode(self.control(SimCtlType.GET_VENDOR).data)

    def node_info(self) -> bytes:
        """GET_NODEINFO: 64 bytes of raw NodeInfo."""
        return self.control(SimCtlType.GET_NODEINFO).data

    def port_info(self, port: int = 0) -> bytes:
        """GET_PORTINFO: 64 bytes of raw PortInfo of ``port`` (0: the attach port)."""
        return self.control(SimCtlType.GET_PORTINFO, bytes([port])).data

    def pkeys(self) -> bytes:
        """GET_PKEYS: the first 32 P_Keys, network order."""
        return self.control(SimCtlType.GET_PKEYS).data

    def port(self) -> tuple[int, int]:
        """GET_PORT: (LID, PortState) of the attach port."""
        port = SimPort.decode(self.control(SimCtlType.GET_PORT).data)
        return port.lid, port.state

    def gid(self) -> bytes:
        """GET_GID: GidPrefix (network order) and the node GUID (host order), 16 bytes."""
        return self.control(SimCtlType.GET_GID).data[:16]

    def guid(self) -> int:
        """GET_GUID: the node GUID."""
        return SimGuid.decode(self.control(SimCtlType.GET_GUID).data).guid

    def set_issm(self, issm: bool) -> None:
        """SET_ISSM: become (or stop being) an SM client."""
        self.control(SimCtlType.SET_ISSM, SimIssm(int(issm)).encode())

    # -- data channel ------------------------------------------------------------------------

    def send(self, datagram: bytes) -> None:
        """Send any bytes on the data socket."""
        self.data.send(datagram)

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next datagram the server sent this client, or None after ``timeout``."""
        self.data.settimeout(self.timeout if timeout is None else timeout)
        try:
            return self.data.recv(SIM_REQUEST_SIZE + 1)
        except TimeoutError:
            return None

    def request(self, raw_mad: bytes, dlid: int | None = None, *,
                timeout: float | None = None) -> SimRequest | None:
        """Send a MAD (``dlid=None``: directed route, as :func:`hcasim.ib.build.sim_request`)
        and return the reply or bounce with the same TID (low 32 bits, as libibmad
        matches), or None after ``timeout``."""
        self.send(build.sim_request(raw_mad, dlid).encode())
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            datagram = self.recv(left)
            if datagram is None:
                return None
            if len(datagram) != SIM_REQUEST_SIZE:
                continue
            reply = SimRequest.decode(datagram)
            if reply.mad[12:16] == raw_mad[12:16] and (
                    reply.status or mad.is_response(reply.mad[3])):
                return reply

    # -- life --------------------------------------------------------------------------------

    def close(self) -> None:
        """DISCONNECT (as libumad2sim does at exit) and close the sockets; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.control_raw(SimCtl(SIM_MAGIC, self.index, SimCtlType.DISCONNECT, 0).encode(),
                             timeout=1.0)
        except OSError:
            pass  # the server is gone
        finally:
            self.ctl.close()
            self.data.close()

    def __enter__(self) -> IbsimClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def unique_sockname(prefix: str = "hcasim") -> str:
    """A socket-name base no other server on the machine uses (for a private ``ibsim``)."""
    return f"{prefix}{os.getpid()}x{random.randrange(1 << 30):x}"
