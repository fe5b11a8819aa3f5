"""What happens to a MAD a client injects: route it, answer it, or pass it on.

:class:`MadEngine` is the pure core of an ibsim-compatible server (docs/sources.md
§2.1): the daemon decodes a ``sim_request`` datagram from a client attached at some port,
calls :meth:`MadEngine.process`, and sends the :class:`Delivery` list it gets back.  The
engine never touches sockets and never chooses among clients: a ``FORWARD`` names the
port whose client should get the MAD (the daemon picks it, as ibsim's ``find_client``
does: by TID for responses, the first IsSM client for requests, else it bounces).

Per request (ibsim ``process_packet``, ``sim_mad.c:1828-1915``, with the documented
differences below):

1. malformed MADs are dropped without a reply: base version not 1, class version above 2,
   and for directed route a non-zero hop pointer, D bit not equal to R, DrDLID not the
   permissive LID, DrSLID and the datagram's DLID not both permissive (a request with a
   LID-routed part at its start, IBTA 14.2.2.1, has both set: LID-routed to DLID, directed
   from there, the answer directed back and then LID-routed to DrSLID; ibsim drops it),
   or more than 63 hops;
2. a LID-routed MAD with SLID 0 gets the sender's LID;
3. the sending node's firmware may swallow the MAD (``host_send``), silently or reporting
   the send as timed out (a bounce);
4. routing: DLID below 0xFFFF is LID-routed, else directed route (outbound for requests,
   inbound for responses); a MAD that cannot be routed comes back with status 110;
5. responses are forwarded to the port they reach;
6. requests reaching their node: SMPs go to the SMA, PerfMgt to the PMA (which answers
   every attribute, those it lacks with status 0x000C), other classes to the node's
   firmware (``mad_received``); what none of them serves is forwarded to the port
   (SMInfo, traps, SA, unserved vendor classes);
7. a reply is built (GetResp; DR replies carry D=1, the status in the 15-bit DR field and
   the return path) and routed back; it must reach the requester's node.

Differences from ibsim, all deliberate: M_Keys are checked and violations raise trap 256
and get no reply; TrapRepress is routed and M_Key-checked before it is dropped; unknown
SMP attributes are answered with status 0x000C instead of being bounced; out-of-range
indexes are answered with status 0x001C; management classes are matched exactly (ibsim
looks handlers up by ``class & 0xF``); a datagram handed to another client (``FORWARD``)
carries status 0 and must say its MAD is 24 to 256 bytes long, else it goes back to its
sender (libumad2sim trusts the length); a LID-routed request whose SLID is the permissive
LID cannot be answered and bounces; a LID-routed SMP to the permissive DLID is answered by
the node at the other end of the sender's link (IBTA 7.11.1), where ibsim answers from the
sender's own node.

The daemon is expected to have tagged the TID of non-response MADs with the client index
(docs/sources.md §1.4) before calling :meth:`process`; it hands over the datagram itself
(:meth:`MadEngine.process_datagram`), and each :class:`Delivery` carries the 288 bytes to
send, so nothing is decoded or encoded that the MAD does not need.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace
from typing import Final

from hcasim.fabric.pma import advance_samples, handle_perf
from hcasim.fabric.routing import (
    NoRoute,
    route_dr_in,
    route_dr_out,
    route_lid,
    route_neighbour,
)
from hcasim.fabric.sma import (
    DROPPED,
    NOT_HANDLED,
    Outcome,
    Reply,
    Sma,
    Trap,
    can_send_trap,
    capability_mask_change_notice,
    link_state_change_notice,
    node_info_data,
    port_info_data,
)
from hcasim.fabric.subnet import (
    LINK_DOWNED,
    NODE_REVISION,
    Action,
    MadContext,
    NodeFirmware,
    PortFault,
    PortState,
    Subnet,
)
from hcasim.fabric.topology import PortRef
from hcasim.ib import mad, smp_attrs
from hcasim.ib.simproto import SIM_MAD_SIZE, SIM_REQUEST_SIZE, SIM_STATUS_TIMEOUT, SimRequest

MAX_CLASS_VERSION: Final = 2  # SMA/PMA use 1, SA uses 2 (ibsim decode_sim_MAD)
QP0: Final = 0


class DeliveryKind(enum.Enum):
    """Where a datagram produced by :meth:`MadEngine.process` goes."""

    REPLY = "reply"  # back to the client that sent the request
    FORWARD = "forward"  # to a client attached at ``Delivery.port``; bounce if none
    BOUNCE = "bounce"  # back to the sender with status 110 (unroutable)


class Delivery:
    """One datagram to send: what, how to pick the receiver, and why.

    ``datagram`` is the 288-byte ``sim_request`` ready for the socket; ``request`` decodes
    it.  ``target`` is the port a FORWARD is for, ``port`` the same as a
    :class:`PortRef`.
    """

    __slots__ = ("kind", "datagram", "target", "note", "_port")

    def __init__(self, kind: DeliveryKind, request: SimRequest | bytes,
                 port: PortRef | None = None, note: str = "",
                 target: PortState | None = None) -> None:
        self.kind = kind
        self.datagram = request if isinstance(request, bytes) else request.encode()
        self.target = target
        self.note = note
        self._port = port

    @property
    def request(self) -> SimRequest:
        """The datagram decoded."""
        return SimRequest.decode(self.datagram)

    @property
    def port(self) -> PortRef | None:
        """The port a FORWARD is for (``None`` for other kinds unless given)."""
        if self._port is None and self.target is not None:
            self._port = self.target.ref
        return self._port

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Delivery):
            return NotImplemented
        return (self.kind, self.datagram, self.port, self.note) == (
            other.kind, other.datagram, other.port, other.note)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Delivery({self.kind.name}, {self.port}, {self.note!r})"


@dataclass(frozen=True, slots=True)
class FullReply:
    """A whole response MAD a firmware hook built (vendor classes)."""

    mad: bytes


def bounce(request: SimRequest, note: str) -> Delivery:
    """The sender's own datagram back with status 110 (ETIMEDOUT), as ibsim bounces."""
    return Delivery(DeliveryKind.BOUNCE, replace(request, status=SIM_STATUS_TIMEOUT),
                    note=note)


#: ``struct sim_request`` without the MAD (docs/sources.md §1.3): DLID and SLID as big-endian
#: LIDs in the first two bytes of their u32 containers, DQP, SQP, status, 4 bytes of
#: padding, length.  Written with zeros in the container halves and the padding, as
#: :class:`SimRequest` encodes them.
_SIM_HEADER: Final = struct.Struct(">H2xH2xIII4xQ")
#: Common MAD header: versions, class, method, status, class-specific (IBTA 13.4.2).
_MAD_FIRST: Final = struct.Struct(">BBBBHBB")
#: Directed-route SMP: DrSLID and DrDLID (IBTA 14.2.1.2).
_DR_LIDS: Final = struct.Struct(">32xHH")


#: What a datagram handed to another client may say its MAD length is: a whole MAD header
#: at least, 256 bytes at most.  libumad2sim trusts the field (``umad->length = umad_size()
#: + length``, docs/sources.md §1.3) and a larger value makes OpenSM's receive fail and OpenSM
#: exit (observed with a fuzzed datagram), so such datagrams go back to their sender.
_FORWARD_LENGTHS: Final = (mad.MadHeader.SIZE, SIM_MAD_SIZE)


def _datagram(dlid: int, slid: int, dqp: int, sqp: int, status: int, length: int,
              raw: bytes | bytearray) -> bytes:
    return _SIM_HEADER.pack(dlid, slid, dqp, sqp, status, length) + raw


class MadEngine:
    """Routes and answers MADs over a :class:`Subnet`; see the module docstring."""

    def __init__(self, subnet: Subnet) -> None:
        self.subnet = subnet
        self.sma = Sma(subnet)

    # -- the data channel ----------------------------------------------------------------------

    def process(self, source: PortRef, request: SimRequest, now: float) -> list[Delivery]:
        """Handle one ``sim_request`` a client attached at ``source`` sent.

        ``now`` is a monotonic clock in seconds (M_Key lease timers).  An empty list means
        the MAD is silently dropped.
        """
        return self.process_datagram(self.subnet.port(source), request.encode(), now)

    def process_datagram(self, sender: PortState, data: bytes,
                         now: float) -> list[Delivery]:
        """:meth:`process` for the 288-byte datagram itself, from a client attached at
        ``sender`` (the daemon's path: nothing is decoded that the MAD does not need)."""
        if len(data) != SIM_REQUEST_SIZE:
            return []
        subnet = self.subnet
        if now >= subnet.sample_due:  # a PMA sample starts or ends before this MAD counts
            advance_samples(subnet, now)
        # typed, so the compiled build works on machine integers (src/hcasim/native.py)
        header: tuple[int, int, int, int, int, int] = _SIM_HEADER.unpack_from(data)
        dlid, slid, dqp, sqp, status, length = header
        raw = data[32:]
        first: tuple[int, int, int, int, int, int, int] = _MAD_FIRST.unpack_from(raw)
        base_version, mgmt_class, class_version, method, word, hop_pointer, hop_count = first
        if base_version != mad.BASE_VERSION or class_version > MAX_CLASS_VERSION:
            return []
        response = method & mad.METHOD_RESPONSE_BIT
        dr = mgmt_class == mad.CLASS_SUBN_DIRECTED_ROUTE
        # a directed-route request with a LID-routed part at its start (IBTA 14.2.2.1):
        # LID-routed to DLID, directed from there; DrSLID is where the answer returns to
        lid_start = False
        dr_slid = mad.PERMISSIVE_LID
        if dr:
            dr_lids: tuple[int, int] = _DR_LIDS.unpack_from(raw)
            dr_slid, dr_dlid = dr_lids
            lid_start = dlid != mad.PERMISSIVE_LID and not response
            if (hop_pointer != 0 or (word >> 15) != (1 if response else 0)
                    or (dr_slid != mad.PERMISSIVE_LID) is not lid_start
                    or dr_dlid != mad.PERMISSIVE_LID or hop_count > mad.MAX_DR_HOPS
                    or (dlid != mad.PERMISSIVE_LID and not lid_start)):
                return []
            if lid_start and slid == 0:
                slid = sender.lid
        elif slid == 0 and dlid != mad.PERMISSIVE_LID:
            slid = sender.lid
        firmware = sender.node.firmware
        if firmware.__class__ is not NodeFirmware:  # the base class's hooks do nothing
            ctx = MadContext(sender.node, sender, None, raw, True, now)
            verdict = firmware.host_send(ctx)
            if verdict is Action.TIMED_OUT:
                return [Delivery(DeliveryKind.BOUNCE, _datagram(
                    dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                    note="send timed out")]
            if verdict is Action.DROP:
                return []
        if method == mad.METHOD_TRAP_REPRESS:
            self._trap_repress(sender, dlid, raw, dr, hop_count, now)
            return []

        # -- route
        return_path = b""
        vl15 = mgmt_class == mad.CLASS_SUBN_LID_ROUTED
        neighbour: PortState | None = None  # the port a permissive-LID SMP entered
        try:
            if lid_start:
                start = route_lid(subnet, sender, dlid, True)
                if hop_count and not start.node.is_switch:
                    raise NoRoute(f"DLID {dlid} is a CA's: it relays no directed route")
                route = route_dr_out(subnet, start, hop_count, raw[128:192], relayed=True)
                target, return_path = route.target, route.return_path
            elif dlid != mad.PERMISSIVE_LID:
                target = route_lid(subnet, sender, dlid, vl15)
            elif not dr:
                if not vl15 or response or sender.is_management_port:
                    return [Delivery(DeliveryKind.BOUNCE, _datagram(
                        dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                        note="permissive DLID on a LID-routed class")]
                neighbour = route_neighbour(sender)
                target = neighbour.node.management_port(neighbour)
            elif response:
                target = route_dr_in(subnet, sender, hop_count, raw[192:256])
            else:
                route = route_dr_out(subnet, sender, hop_count, raw[128:192])
                target, return_path = route.target, route.return_path
        except NoRoute as e:
            return [Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw), note=str(e))]
        if response:
            if not _FORWARD_LENGTHS[0] <= length <= _FORWARD_LENGTHS[1]:
                return []  # a response nobody could read (no one to bounce it to either)
            return [Delivery(DeliveryKind.FORWARD,
                             _datagram(dlid, slid, dqp, sqp, 0, length, raw),
                             note="response", target=target)]
        if dr:
            # the return path travels with the request, for whoever answers it (ibsim
            # forward_MAD, sim_mad.c:249-258)
            raw = raw[:192] + return_path + raw[256:]

        # -- answer
        if target.node.silent:  # an injected fault: the node's agents answer nothing
            return [Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                note="node not answering (injected fault)")]
        from_host = target.node is sender.node
        traps: list[Trap] = []
        outcome: Outcome | FullReply
        if dr or vl15:
            outcome, traps = self.sma.handle_raw(target, raw, from_host, now, return_path)
        elif mgmt_class == mad.CLASS_PERF_MGT:
            outcome = handle_perf(target, mad.PerfMgtMad.decode(raw), now, subnet)
        else:
            outcome = self._firmware_answer(target, raw, from_host, now)
        if outcome is DROPPED:
            return [d for trap in traps for d in self._trap_deliveries(trap)]
        if outcome is NOT_HANDLED:
            if not _FORWARD_LENGTHS[0] <= length <= _FORWARD_LENGTHS[1]:
                forward = Delivery(DeliveryKind.BOUNCE, _datagram(
                    dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                    note=f"MAD length {length} cannot be forwarded")
            else:
                forward = Delivery(DeliveryKind.FORWARD,
                                   _datagram(dlid, slid, dqp, sqp, 0, length, raw),
                                   note="request", target=target)
            return [forward] + [d for trap in traps for d in self._trap_deliveries(trap)]
        if isinstance(outcome, FullReply):
            reply_mad: bytes | bytearray = outcome.mad
        else:
            assert isinstance(outcome, Reply)
            reply_mad = self._reply_mad(raw, method, mgmt_class, dr, return_path, outcome)
        # -- route the reply back; it must reach the requester's node (ibsim :1904-1908)
        try:
            if neighbour is not None:
                back = route_neighbour(neighbour)  # back over the link it came in on
            elif lid_start:
                # directed back to where the directed part began, then LID-routed to DrSLID
                start = route_dr_in(subnet, target, hop_count, return_path)
                back = route_lid(subnet, start, dr_slid, True)
            elif slid != mad.PERMISSIVE_LID:
                back = route_lid(subnet, target, slid, vl15)
            elif dr:
                back = route_dr_in(subnet, target, hop_count, return_path)
            else:
                raise NoRoute("permissive SLID on a LID-routed class")
        except NoRoute as e:
            delivery = Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                note=f"reply lost: {e}")
        else:
            if back.node is not sender.node:
                delivery = Delivery(DeliveryKind.BOUNCE, _datagram(
                    dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                    note="reply reached another node")
            else:
                delivery = Delivery(DeliveryKind.REPLY, _datagram(
                    slid, dlid, sqp, dqp, 0, length, reply_mad), note="answered",
                    target=sender)
        if traps:
            return [delivery] + [d for trap in traps for d in self._trap_deliveries(trap)]
        return [delivery]

    def unclaimed(self, delivery: Delivery, sender: PortState) -> Delivery:
        """What a request handed to a client at ``delivery.target`` (a FORWARD) becomes
        when no client there takes it; ``sender`` is the port it came from.

        A Get or Set of a management class other than subnet management is answered by
        the receiving node itself with status 0x000C: the class is not implemented there
        (IBTA 13.4.7; it is what a Linux host's MAD layer sends for requests no agent is
        registered for), so ``ibccquery`` against a node without a congestion control
        agent gets an error at once, as on real hardware.  Anything else, and a reply that
        cannot get back to the sender, goes back with status 110 as ibsim bounces it."""
        data = delivery.datagram
        raw = data[32:]
        header: tuple[int, int, int, int, int, int] = _SIM_HEADER.unpack_from(data)
        dlid, slid, dqp, sqp, status, length = header
        mgmt_class, method = raw[1], raw[3]
        target = delivery.target
        if (target is None or method not in (mad.METHOD_GET, mad.METHOD_SET)
                or mgmt_class in (mad.CLASS_SUBN_LID_ROUTED, mad.CLASS_SUBN_DIRECTED_ROUTE)
                or slid == mad.PERMISSIVE_LID):
            return Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                note="no one to handle pkt")
        try:
            back = route_lid(self.subnet, target, slid, False)
        except NoRoute as e:
            return Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                note=f"reply lost: {e}")
        if back.node is not sender.node:
            return Delivery(DeliveryKind.BOUNCE, _datagram(
                dlid, slid, dqp, sqp, SIM_STATUS_TIMEOUT, length, raw),
                note="reply reached another node")
        reply = bytearray(raw)
        reply[3] = mad.response_method(method)
        reply[4:6] = mad.STATUS_METHOD_ATTR_UNSUPPORTED.to_bytes(2, "big")
        return Delivery(DeliveryKind.REPLY, _datagram(slid, dlid, sqp, dqp, 0, length, reply),
                        note="class not implemented", target=sender)

    def _firmware_answer(self, target: PortState, raw: bytes, from_host: bool,
                         now: float) -> Outcome | FullReply:
        ctx = MadContext(target.node, target, None, raw, from_host, now)
        answer = target.node.firmware.mad_received(ctx)
        if answer is None:
            return NOT_HANDLED
        if len(answer) != mad.MAD_SIZE:
            raise ValueError(f"firmware of {target.node.id!r} answered with {len(answer)} "
                             f"bytes, not {mad.MAD_SIZE}")
        return FullReply(answer)

    @staticmethod
    def _reply_mad(raw: bytes, method: int, mgmt_class: int, dr: bool, return_path: bytes,
                   reply: Reply) -> bytearray:
        """The response MAD: GetResp, status, data, and for DR the D bit and return path
        (ibsim reply_MAD, sim_mad.c:260-290; the hop pointer stays 0 as ibsim leaves it)."""
        buf = bytearray(raw)
        buf[3] = mad.response_method(method)
        if dr:
            status = mad.DR_DIRECTION_BIT | (reply.status & 0x7FFF)
            buf[4:6] = status.to_bytes(2, "big")
            buf[192:256] = return_path
        else:
            buf[4:6] = reply.status.to_bytes(2, "big")
        offset = (mad.GMP_PERF_DATA_OFFSET if mgmt_class == mad.CLASS_PERF_MGT
                  else mad.SMP_DATA_OFFSET)
        buf[offset:offset + len(reply.data)] = reply.data
        return buf

    def _trap_repress(self, sender: PortState, dlid: int, raw: bytes, dr: bool,
                      hop_count: int, now: float) -> None:
        """Route a TrapRepress to its SMA for the M_Key check; it is never answered."""
        try:
            if dlid != mad.PERMISSIVE_LID:
                target = route_lid(self.subnet, sender, dlid)
            elif dr:
                target = route_dr_out(self.subnet, sender, hop_count, raw[128:192]).target
            else:
                return
        except NoRoute:
            return
        if raw[1] in (mad.CLASS_SUBN_LID_ROUTED, mad.CLASS_SUBN_DIRECTED_ROUTE):
            self.sma.handle_raw(target, raw, target.node is sender.node, now)

    # -- traps -----------------------------------------------------------------------------------

    def _trap_deliveries(self, trap: Trap) -> list[Delivery]:
        """Route a trap from its port to the port's SM (LID-routed SMP, method Trap, attribute
        Notice, M_Key 0; ibsim send_trap, sim_mad.c:1973-2029)."""
        source = trap.source
        if not can_send_trap(source):
            return []
        try:
            destination = route_lid(self.subnet, source, source.sm_lid)
        except NoRoute:
            return []
        smp = mad.Smp(base_version=mad.BASE_VERSION, mgmt_class=mad.CLASS_SUBN_LID_ROUTED,
                      class_version=1, method=mad.METHOD_TRAP,
                      tid=self.subnet.next_trap_tid(), attr_id=mad.ATTR_NOTICE,
                      data=trap.notice)
        request = SimRequest(dlid=source.sm_lid, slid=source.lid, dqp=QP0, sqp=QP0,
                             length=SIM_MAD_SIZE, mad=smp.encode())
        return [Delivery(DeliveryKind.FORWARD, request, note="trap", target=destination)]

    def set_is_sm(self, ref: PortRef, is_sm: bool) -> list[Delivery]:
        """A client attached at ``ref`` became (or stopped being) an SM: set or clear
        PortInfo.CapabilityMask.IsSM; if the mask changed and the port supports notices
        or traps and IsCapabilityMaskNotice, send trap 144 (ibsim.c:323-348)."""
        port = self.subnet.port(ref)
        before = port.capability_mask
        if is_sm:
            port.capability_mask |= smp_attrs.CAP_IS_SM
        else:
            port.capability_mask &= ~smp_attrs.CAP_IS_SM
        mask = port.capability_mask
        if mask == before:
            return []
        notices = mask & (smp_attrs.CAP_IS_NOTICE_SUPPORTED | smp_attrs.CAP_IS_TRAP_SUPPORTED)
        if notices and mask & smp_attrs.CAP_IS_CAPABILITY_MASK_NOTICE_SUPPORTED:
            return self._trap_deliveries(Trap(port, capability_mask_change_notice(port)))
        return []

    def set_link(self, ref: PortRef, enabled: bool) -> list[Delivery]:
        """Disable (PortPhysicalState Disabled) or re-enable the port at ``ref``, as an
        operator would; switches whose port state changed note PortStateChange and send
        trap 128 to their SM (ibsim console Unlink/ReLink, sim_cmd.c; send_trap)."""
        port = self.subnet.port(ref)
        if port.is_management_port:
            raise ValueError("switch port 0 has no link")
        if enabled:
            if port.phys_state != smp_attrs.PHYS_DISABLED:
                return []
            port.phys_state = smp_attrs.PHYS_POLLING
            switches = self.subnet.train(port)
        else:
            if port.phys_state == smp_attrs.PHYS_DISABLED:
                return []
            switches = self.subnet.take_down(port, disable=True)
        return [d for node in switches
                for d in self._trap_deliveries(Trap(node.ports[0],
                                                    link_state_change_notice(node.ports[0])))]

    # -- injected faults (hcasim fault; docs/fabric.md §7.2) -------------------------------------

    def fail_link(self, ref: PortRef, up: bool) -> list[Delivery]:
        """Take the link at ``ref`` down as a failure would (``up`` False: both ends Down /
        Polling and LinkDownedCounter + 1 on each, IBTA 16.1.3.5; nothing trains it, not
        even a PortInfo Set, until it is restored), or let it train again;
        switches whose port state changed send trap 128 to their SM, as for
        :meth:`set_link`."""
        port = self.subnet.port(ref)
        if port.is_management_port:
            raise ValueError("switch port 0 has no link")
        peer = port.peer
        ends = [p for p in (port, peer) if p is not None]
        if up:
            for p in ends:
                p.link_failed = False
            switches = self.subnet.train(port) if not port.link_up else []
        else:
            was_up = port.link_up
            for p in ends:
                p.link_failed = True
            if not was_up:
                return []
            for p in ends:
                self.subnet.count_error(p, LINK_DOWNED)
            switches = self.subnet.take_down(port)
        return [d for node in switches
                for d in self._trap_deliveries(Trap(node.ports[0],
                                                    link_state_change_notice(node.ports[0])))]

    def set_port_fault(self, ref: PortRef, symbol_rate: int, rcv_error_rate: int,
                       drop_rate: int) -> None:
        """Inject error rates (percent of the MADs entering the port) at ``ref``; all zero
        makes the port healthy again (see :class:`hcasim.fabric.subnet.PortFault`)."""
        port = self.subnet.port(ref)
        if symbol_rate or rcv_error_rate or drop_rate:
            port.fault = PortFault(symbol_rate, rcv_error_rate, drop_rate)
        else:
            port.fault = None

    def set_node_silent(self, node_id: str, silent: bool) -> None:
        """Make the node's agents (SMA, PMA, firmware) stop answering, or answer again;
        requests to it come back to their sender as timed out.  Its switch, if it is one,
        still relays."""
        self.subnet.node(node_id).silent = silent

    # -- the control channel (reads the daemon answers with; docs/sources.md §1.2) -----------------

    def node_info_data(self, ref: PortRef) -> bytes:
        """GET_NODEINFO: 64 bytes of NodeInfo as ibsim stores it (docs/sources.md §1.2): as the
        attach port sees it, except PortGUID, which is the node GUID (libumad2sim uses
        neither; the SMA's NodeInfo carries the port's GUID)."""
        port = self.subnet.port(ref)
        data = bytearray(node_info_data(port.node, port) + bytes(24))
        smp_attrs.NodeInfo.spec("port_guid").put(data, port.node.guid)
        return bytes(data)

    def port_info_data(self, ref: PortRef) -> bytes:
        """GET_PORTINFO: 64 bytes of the port's PortInfo (M_Key read as stored)."""
        port = self.subnet.port(ref)
        return port_info_data(port, port.number)

    def pkeys_data(self, ref: PortRef) -> bytes:
        """GET_PKEYS: the first 32 P_Keys of the port, network order, zero-padded."""
        table = tuple(self.subnet.port(ref).pkey_table()[:smp_attrs.PKeyTable.BLOCK])
        pkeys = table + (0,) * (smp_attrs.PKeyTable.BLOCK - len(table))
        return smp_attrs.PKeyTable(pkeys=pkeys).encode()

    def vendor_data(self, ref: PortRef) -> tuple[int, int, int]:
        """GET_VENDOR: (NodeInfo VendorID, DeviceID, Revision)."""
        node = self.subnet.port(ref).node
        return node.spec.vendor_id, node.spec.device_id, NODE_REVISION
