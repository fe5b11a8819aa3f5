"""The lab's ibsim endpoint: libumad2sim.so clients attach to hosts of the lab.

Speaks the ibsim 0.10 socket protocol (docs/sources.md §1): abstract unix datagram
sockets ``\\0<base>:ctl\\0`` (control, 80-byte ``sim_ctl``) and ``\\0<base>:out<i>\\0`` (one
per client, 288-byte ``sim_request``), so Debian's unmodified libumad2sim.so, and through
it OpenSM, infiniband-diags and mstflint, run against the lab. ``<base>`` is the lab's own
name (``LabHome.ibsim_sockname``), which ``hcasim exec`` exports as ``IBSIM_SOCKNAME``.

Differences from ibsim, deliberate and documented in docs/fabric.md: any number of clients
(up to :data:`MAX_CLIENTS`, out sockets bound on demand), a CONNECT whose data socket is
missing is refused instead of killing the server, IsSM is cleared when an SM client goes
away, and requests of classes an SM client never registers (vendor classes) are not
forwarded, so they cannot crash OpenSM: a Get or Set nobody takes is answered with status
0x000C by the node it reached (:meth:`hcasim.fabric.engine.MadEngine.unclaimed`), other
requests are bounced.  Bad input is refused, never fatal:
control messages for a client index are taken only from the socket that attached it;
responses reach a client only in a class it has sent MADs of; datagrams handed to another
client have status 0 and a MAD length a MAD can have; complaints about bad input are
logged at most once a second per kind.

Who attaches is settled at CONNECT, from the kernel: the control socket receives each
datagram with its sender's credentials (``SO_PASSCRED``), and :class:`Identities` maps the
sender's pid to the lab host whose process tree it belongs to. A host's process attaches
only to its own node, whatever it names (``SIM_HOST``); a process of another uid, or of
no host and not the operator's, is refused; each refusal is logged once per process. The
MAD path carries no check: a data socket only takes datagrams from the client it was
connected to (docs/security-model.md §2).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hcasim.fabric.engine import Delivery, DeliveryKind, MadEngine, bounce
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.subnet import PortState, Subnet
from hcasim.fabric.topology import PortRef
from hcasim.ib import mad
from hcasim.ib.simproto import (
    SIM_CTL_SIZE,
    SIM_MAGIC,
    SIM_REQUEST_SIZE,
    SimClientInfo,
    SimCtl,
    SimCtlType,
    SimGid,
    SimGuid,
    SimIssm,
    SimPort,
    SimRequest,
    SimVendor,
)
from hcasim.lab.identity import Identities, IdentityError

log = logging.getLogger("hcasim.ibsim")

MAX_CLIENTS = 4096
#: Classes an SM client registers with umad (SMI LID/DR, SA); only these are forwarded
#: to it. A class it never registered crashes umad2sim's receiver (docs/sources.md §1.9).
SM_CLASSES = frozenset({mad.CLASS_SUBN_LID_ROUTED, mad.CLASS_SUBN_DIRECTED_ROUTE, 0x03})
#: Datagrams handled per event-loop turn, from all the sockets being polled together (taken
#: in turn, one from each, so a flood cannot starve other clients); then the loop runs its
#: other callbacks before polling resumes.
BATCH: Final = 64
#: Seconds to keep polling a client's socket after its last traffic, a datagram from it
#: or one handed to it, before going back to the event loop (busy polling, docs/fabric.md
#: §8): an SM keeps a few SMPs in flight and sends the next one as soon as a reply
#: arrives, and a client handed a forwarded request (OpenSM given an SA query) or a
#: forwarded answer (osmtest given OpenSM's) usually answers or sends its next request
#: within this time; catching it awake spares both processes a sleep and a wake-up.
BUSY_POLL: Final = 0.001
#: Longest a turn of polling holds the event loop, in seconds, even if datagrams keep
#: coming (slowly enough to stay under :data:`BATCH`).
TURN: Final = 0.002
#: Most sockets polled together: the clients with the most recent traffic (a send to a
#: client beyond it does not add it; the client's own datagram always does).
HOT_MAX: Final = 16


#: Room for one SCM_CREDENTIALS message (struct ucred: pid, uid, gid).
CREDS_SPACE: Final = socket.CMSG_SPACE(12)


def _credentials(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
    """``(pid, uid)`` of a datagram's sender, from its SCM_CREDENTIALS message."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(value) >= 12:
            pid, uid, _gid = struct.unpack("=iII", value[:12])
            return pid, uid
    return None


def _abstract(name: str) -> bytes:
    # Abstract names carry a trailing NUL, as umad2sim and ibsim make them (docs/sources.md §1.1).
    return b"\0" + name.encode() + b"\0"


@dataclass
class Client:
    """One attached libumad2sim process (``state`` is the attach port's run-time state)."""

    index: int
    pid: int
    port: PortRef
    sock: socket.socket
    issm: bool = False
    state: PortState | None = None
    #: The control-socket address its CONNECT came from; its other control messages must
    #: come from there too (no other process can detach it or change its IsSM).
    ctl_peer: Any = None
    #: The lab host whose process attached it (None: the lab operator), from the kernel.
    host: str | None = None
    #: Until when (``time.perf_counter``) its socket is polled: :data:`BUSY_POLL` after
    #: its last traffic.
    poll_until: float = 0.0

    def __post_init__(self) -> None:
        self.tag = self.index.to_bytes(2, "big")  # TID bits 63-48 of what it sends
        #: Management classes it has sent MADs of: classes it registered with umad, so
        #: the only ones whose responses it can take (libumad2sim dereferences NULL on a
        #: MAD of a class the process never registered, docs/sources.md §1.9).
        self.classes: set[int] = set()


class IbsimServer:
    """Serves the ibsim protocol for one lab's subnet on the daemon's event loop."""

    def __init__(self, base: str, engine: MadEngine, loop: asyncio.AbstractEventLoop,
                 identities: Identities) -> None:
        self.base = base
        self.identities = identities
        self.engine = engine
        self.subnet: Subnet = engine.subnet
        self.loop = loop
        self.clients: dict[int, Client] = {}
        #: Called with each client that detaches (device models release what it held).
        self.detach_listeners: list[Callable[[Client], None]] = []
        #: Edit what a host reads of its own PortInfo on the control channel (GET_PORTINFO):
        #: ``filter(port, data) -> data`` (device firmware hides the M_Key from its host).
        self.port_info_filters: list[Callable[[PortRef, bytes], bytes]] = []
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ctl.bind(_abstract(f"{base}:ctl"))
        # every datagram comes with its sender's pid and uid, as the kernel knows them
        self.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.ctl.setblocking(False)
        loop.add_reader(self.ctl.fileno(), self._on_ctl)
        self.started = time.monotonic()
        self._complaints: dict[str, tuple[float, int]] = {}
        #: The clients whose sockets are being busy-polled, by index (docs/fabric.md §8).
        self._hot: dict[int, Client] = {}
        #: The time of the current polling pass (what a send marks its receiver with).
        self._now = 0.0
        #: Whether a turn of polling is scheduled on the loop (the last one ran out of
        #: its batch with clients still hot).
        self._resume_pending = False

    def close(self) -> None:
        """Stop serving: detach every client and close the sockets."""
        for client in list(self.clients.values()):
            self._drop(client)
        self.loop.remove_reader(self.ctl.fileno())
        self.ctl.close()

    # ------------------------------------------------------------------ control channel
    def _on_ctl(self) -> None:
        for _ in range(BATCH):
            try:
                data, ancillary, _flags, peer = self.ctl.recvmsg(SIM_CTL_SIZE + 1, CREDS_SPACE)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("control socket: %s", exc)
                return
            try:
                reply = self.control(data, peer, _credentials(ancillary))
            except Exception:  # a bug must not take the lab down
                self._complain("control", "control message could not be handled", exc=True)
                reply = None
            if reply is not None and peer:
                try:
                    self.ctl.sendto(reply, peer)
                except OSError as exc:
                    log.info("control reply to %r lost: %s", peer, exc)

    def control(self, data: bytes, peer: Any = None,
                creds: tuple[int, int] | None = None) -> bytes | None:
        """Handle one ``sim_ctl`` from control-socket address ``peer`` sent by a process
        with kernel credentials ``creds`` (pid, uid); return the 80-byte reply, or None to
        drop it (wrong size or magic, as ibsim; and, unlike ibsim, a client index that is
        not attached from ``peer``)."""
        if len(data) != SIM_CTL_SIZE:
            self._complain("size", f"control datagram of {len(data)} bytes dropped")
            return None
        ctl = SimCtl.decode(data)
        if ctl.magic != SIM_MAGIC:
            self._complain("magic", f"control datagram with magic {ctl.magic:#x} dropped")
            return None
        if not peer:  # an unbound sender cannot get the reply
            self._complain("peer", "control datagram from an unbound socket dropped")
            return None
        client = self.clients.get(ctl.clientid)
        if ctl.type != SimCtlType.CONNECT and (client is None or client.ctl_peer != peer):
            self._complain("client", f"control message for client {ctl.clientid} not "
                           f"attached from {peer!r} dropped")
            return None
        payload: bytes | None = ctl.data
        try:
            if ctl.type == SimCtlType.CONNECT:
                payload = self._connect(ctl.data, peer, creds)
            elif client is None:
                payload = None
            elif ctl.type == SimCtlType.DISCONNECT:
                self._drop(client)
            elif ctl.type == SimCtlType.GET_VENDOR:
                vendor_id, part_id, hw_ver = self.engine.vendor_data(client.port)
                payload = SimVendor(vendor_id, part_id, hw_ver, 1).encode()
            elif ctl.type == SimCtlType.GET_NODEINFO:
                payload = self.engine.node_info_data(client.port)
            elif ctl.type == SimCtlType.GET_PORTINFO:
                ref = self._port_arg(client, ctl.data[0])
                payload = self.engine.port_info_data(ref)
                for port_info_filter in self.port_info_filters:
                    payload = port_info_filter(ref, payload)
            elif ctl.type == SimCtlType.GET_PKEYS:
                payload = self.engine.pkeys_data(client.port)
            elif ctl.type == SimCtlType.GET_PORT:
                port = self.subnet.port(client.port)
                payload = SimPort(port.lid, port.state).encode()
            elif ctl.type == SimCtlType.GET_GUID:
                payload = SimGuid(self.subnet.port(client.port).node.spec.guid).encode()
            elif ctl.type == SimCtlType.GET_GID:
                port = self.subnet.port(client.port)
                payload = SimGid(port.gid_prefix, port.node.spec.guid).encode()
            elif ctl.type == SimCtlType.SET_ISSM:
                self._set_issm(client, SimIssm.decode(ctl.data).issm != 0)
        except (KeyError, ValueError, struct.error) as exc:
            self._complain("refused", f"control {ctl.type} refused: {exc}")
            payload = None
        if payload is None and ctl.type not in (SimCtlType.DISCONNECT, SimCtlType.SET_ISSM):
            ctl.type = SimCtlType.ERROR
        elif payload is not None:
            ctl.data = payload.ljust(len(ctl.data), b"\0")[: len(ctl.data)]
        return ctl.encode()

    def _complain(self, kind: str, message: str, exc: bool = False) -> None:
        """Log bad input or a dropped datagram, at most once a second per kind (a flood
        must not turn into a flood of log lines); says how many were not logged."""
        now = time.monotonic()
        last, quiet = self._complaints.get(kind, (-1.0, 0))
        if now - last < 1.0:
            self._complaints[kind] = (last, quiet + 1)
            return
        self._complaints[kind] = (now, 0)
        suffix = f" (and {quiet} more like it)" if quiet else ""
        if exc:
            log.exception("%s%s", message, suffix)
        else:
            log.info("%s%s", message, suffix)

    def _port_arg(self, client: Client, number: int) -> PortRef:
        return client.port if number == 0 else PortRef(client.port.node, number)

    def _connect(self, data: bytes, peer: Any = None,
                 creds: tuple[int, int] | None = None) -> bytes | None:
        info = SimClientInfo.decode(data)
        if creds is None:
            self._complain("creds", "CONNECT without sender credentials refused")
            return None
        try:
            host = self.identities.resolve(creds[0], creds[1]).host
        except IdentityError as exc:
            if self.identities.log_refusal_once(creds[0], "attach"):
                log.warning("CONNECT from pid %d refused: %s", creds[0], exc)
            return None
        wanted = info.nodeid or host  # a host's process names no node: its own
        try:
            port = self.subnet.attach_port(wanted or None)
        except KeyError:
            self._complain("host", f"attempt to attach to unknown host {info.nodeid!r}")
            return None
        if host is not None and port.node.spec.id != self._node_of(host):
            if self.identities.log_refusal_once(creds[0], f"attach {port.node.spec.id}"):
                log.warning("CONNECT from pid %d refused: a process of host %s cannot attach "
                            "as %s", creds[0], host, port.node.spec.id)
            return None
        if info.issm and any(
            c.issm and c.port.node == port.node.spec.id for c in self.clients.values()
        ):
            self._complain("issm", f"SM already exists on {port.node.spec.id}")
            return None
        index = next((i for i in range(MAX_CLIENTS) if i not in self.clients), None)
        if index is None:
            self._complain("slots", f"no free client slot (of {MAX_CLIENTS})")
            return None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as exc:  # out of file descriptors: refuse, keep serving
            self._complain("socket", f"no socket for a new client: {exc}")
            return None
        try:
            sock.bind(_abstract(f"{self.base}:out{index}"))
            sock.connect(_abstract(f"{self.base}:in{info.id}"))
        except OSError as exc:
            sock.close()
            # ibsim exits here (IBPANIC, docs/sources.md §1.9); the lab refuses the client
            self._complain("insock", f"client pid {info.id}: data socket: {exc}")
            return None
        sock.setblocking(False)
        client = Client(index, info.id, port.ref, sock, state=port, ctl_peer=peer, host=host)
        self.clients[index] = client
        self.loop.add_reader(sock.fileno(), self._on_data, client)
        if info.issm:
            self._set_issm(client, True)
        log.info("client %d (pid %d) attached at %s", index, info.id, port.ref)
        info.id = index
        info.nodeid = port.node.spec.id
        return info.encode()

    def _node_of(self, host: str) -> str | None:
        """The fabric node a lab host is (its name or node description in the net file)."""
        try:
            return self.subnet.attach_port(host).node.spec.id
        except (KeyError, LookupError):
            return None

    def _set_issm(self, client: Client, issm: bool) -> None:
        client.issm = issm
        self._send_all(client, self.engine.set_is_sm(client.port, issm))

    def _drop(self, client: Client) -> None:
        if self.clients.pop(client.index, None) is None:
            return
        if self._hot.get(client.index) is client:
            del self._hot[client.index]
        self.loop.remove_reader(client.sock.fileno())
        client.sock.close()
        if client.issm and not any(c.issm and c.port == client.port for c in self.clients.values()):
            self._send_all(None, self.engine.set_is_sm(client.port, False))
        for listener in self.detach_listeners:
            listener(client)
        log.info("client %d (pid %d) detached", client.index, client.pid)

    # ------------------------------------------------------------------ data channel
    def _on_data(self, client: Client) -> None:
        """The loop saw ``client``'s socket readable: poll it, with the others still hot."""
        now = time.perf_counter()
        client.poll_until = now + BUSY_POLL
        hot = self._hot
        if client.index not in hot:
            if len(hot) >= HOT_MAX:
                del hot[next(iter(hot))]  # the oldest entry makes room
            hot[client.index] = client
        self._poll(now)

    def _resume(self) -> None:
        """Continue polling after the loop has had its turn (scheduled by :meth:`_poll`)."""
        self._resume_pending = False
        self._poll(time.perf_counter())

    def _poll(self, now: float) -> None:
        """Busy-poll the hot clients' sockets (docs/fabric.md §8), one datagram from each in
        turn, until none has had traffic for :data:`BUSY_POLL` (then the loop waits in the
        kernel again) or the turn has handled :data:`BATCH` datagrams or lasted
        :data:`TURN` (then the loop runs what else is ready and polling resumes after)."""
        hot = self._hot
        clients = self.clients
        handled = 0
        turn_end = now + TURN
        while hot:
            self._now = now
            for client in tuple(hot.values()):
                if clients.get(client.index) is not client:
                    if hot.get(client.index) is client:
                        del hot[client.index]  # detached meanwhile
                    continue
                try:
                    data = client.sock.recv(SIM_REQUEST_SIZE + 1)
                except BlockingIOError:
                    if now >= client.poll_until and hot.get(client.index) is client:
                        del hot[client.index]
                    continue
                except OSError:
                    self._drop(client)
                    continue
                handled += 1
                client.poll_until = now + BUSY_POLL
                self.handle(client, data)
            if not hot:
                return
            now = time.perf_counter()
            if handled >= BATCH or now >= turn_end:
                if not self._resume_pending:
                    self._resume_pending = True
                    self.loop.call_soon(self._resume)
                return
        # nothing hot: the loop sleeps until a socket is readable

    def handle(self, client: Client, data: bytes) -> None:
        """Route one datagram a client sent and deliver whatever it produces."""
        if len(data) != SIM_REQUEST_SIZE:
            self._complain("datagram", f"datagram of {len(data)} bytes from client "
                           f"{client.index} dropped")
            return  # ibsim: "bad packet size", no reply
        client.classes.add(data[33])
        if not data[35] & mad.METHOD_RESPONSE_BIT:
            # The server writes the client index into TID bits 48-63 (docs/sources.md §1.4).
            data = data[:40] + client.tag + data[42:]
        sender = client.state if client.state is not None else self.subnet.port(client.port)
        try:
            deliveries = self.engine.process_datagram(sender, data, time.monotonic())
        except Exception:  # a model bug must not take the lab down
            self._complain("mad", f"MAD from client {client.index} could not be processed",
                           exc=True)
            deliveries = [bounce(SimRequest.decode(data), "internal error")]
        if len(deliveries) == 1 and deliveries[0].kind is DeliveryKind.REPLY:
            self._send(client, deliveries[0].datagram)  # the common case: an SMA's answer
        else:
            self._send_all(client, deliveries)

    def deliver_all(self, deliveries: list[Delivery]) -> None:
        """Send what an event of the lab (not a client's MAD) produced: traps after a reboot
        or an operator's change."""
        self._send_all(None, deliveries)

    def _send_all(self, sender: Client | None, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self._deliver(sender, delivery)

    def _deliver(self, sender: Client | None, delivery: Delivery) -> None:
        datagram = delivery.datagram
        if delivery.kind is DeliveryKind.FORWARD:
            target = self._receiver(delivery)
            if target is not None and self._send(target, datagram):
                return
            if sender is None or delivery.note == "trap":
                return  # a trap nobody takes is dropped, like ibsim's
            if mad.is_response(datagram[35]):
                return
            state = sender.state if sender.state is not None else self.subnet.port(sender.port)
            datagram = self.engine.unclaimed(delivery, state).datagram
        if sender is not None:
            self._send(sender, datagram)

    def _receiver(self, delivery: Delivery) -> Client | None:
        datagram = delivery.datagram
        target = delivery.target
        if mad.is_response(datagram[35]):
            client = self.clients.get(int.from_bytes(datagram[40:42], "big"))
            if client is None or datagram[33] not in client.classes:
                return None
            if target is not None and client.state is not None:
                return client if client.state is target else None
            return client if client.port == delivery.port else None
        if datagram[33] not in SM_CLASSES:
            return None
        for client in self.clients.values():
            if client.issm and (client.state is target if target is not None
                                and client.state is not None
                                else client.port == delivery.port):
                return client
        return None

    def _send(self, client: Client, datagram: bytes) -> bool:
        try:
            client.sock.send(datagram)
        except BlockingIOError:
            self._complain(f"full{client.index}",
                           f"client {client.index} is not reading; datagram dropped")
            return True
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT):
                self._drop(client)
            return False
        # Its answer (or next request) is likely soon: poll its socket too (docs/fabric.md §8).
        until = self._now + BUSY_POLL
        if until > client.poll_until:
            client.poll_until = until
        hot = self._hot
        if client.index not in hot and len(hot) < HOT_MAX:
            hot[client.index] = client
        return True


def build_engine(definition: dict[str, Any]) -> MadEngine:
    """The lab's subnet and MAD engine, from its stored net file."""
    from hcasim.lab.spec import take_parsed_topology

    text = definition["netfile"]
    topology = take_parsed_topology(text) or parse_netfile_text(text, "<lab>")
    return MadEngine(Subnet(topology))

