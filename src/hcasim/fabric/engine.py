"""What happens to a MAD a client injects: route it, answer it, or pass it on.

:class:`MadEngine` is the pure core of an ibsim-compatible server (reference ibsim.md
§2.1): the daemon decodes a ``sim_request`` datagram from a client attached at some port,
calls :meth:`MadEngine.process`, and sends the :class:`Delivery` list it gets back.  The
engine never touches sockets and never chooses among clients: a ``FORWARD`` names the
port whose client should get the MAD (the daemon picks it, as ibsim's ``find_client``
does: by TID for responses, the first IsSM client for requests, else it bounces).

Per request (ibsim ``process_packet``, ``sim_mad.c:1828-1915``, with the documented
differences below):

1. malformed MADs are dropped without a reply: base version not 1, class version above 2,
   and for directed route a non-zero hop pointer, D bit not equal to R, DR SLID/DLID or
   the datagram's DLID not the permissive LID, or more than 63 hops;
2. a LID-routed MAD with SLID 0 gets the sender's LID;
3. the sending node's firmware may swallow the MAD (``host_send``);
4. routing: DLID below 0xFFFF is LID-routed, else directed route (outbound for requests,
   inbound for responses); a MAD that cannot be routed comes back with status 110;
5. responses are forwarded to the port they reach;
6. requests reaching their node: SMPs go to the SMA, PerfMgt to the PMA, other classes to
   the node's firmware (``mad_received``); what none of them serves is forwarded to the
   port (SMInfo, traps, SA, unserved vendor classes);
7. a reply is built (GetResp; DR replies carry D=1, the status in the 15-bit DR field and
   the return path) and routed back; it must reach the requester's node.

Differences from ibsim, all deliberate: M_Keys are checked and violations raise trap 256
and get no reply; TrapRepress is routed and M_Key-checked before it is dropped; unknown
SMP attributes are answered with status 0x000C instead of being bounced; out-of-range
indexes are answered with status 0x001C; management classes are matched exactly (ibsim
looks handlers up by ``class & 0xF``).

The daemon is expected to have tagged the TID of non-response MADs with the client index
(ibsim.md §1.4) before calling :meth:`process`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from hcasim.fabric.firmware import Action, MadContext
from hcasim.fabric.pma import handle_perf
from hcasim.fabric.routing import NoRoute, route_dr_in, route_dr_out, route_lid
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
    node_info,
    port_info,
)
from hcasim.fabric.subnet import NODE_REVISION, PortState, Subnet
from hcasim.fabric.topology import PortRef
from hcasim.ib import mad
from hcasim.ib import smp_attrs as sa
from hcasim.ib.simproto import SIM_MAD_SIZE, SIM_STATUS_TIMEOUT, SimRequest

MAX_CLASS_VERSION = 2  # SMA/PMA use 1, SA uses 2 (ibsim decode_sim_MAD)
QP0 = 0


class DeliveryKind(enum.Enum):
    """Where a datagram produced by :meth:`MadEngine.process` goes."""

    REPLY = "reply"  # back to the client that sent the request
    FORWARD = "forward"  # to a client attached at ``Delivery.port``; bounce if none
    BOUNCE = "bounce"  # back to the sender with status 110 (unroutable)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One datagram to send: what, how to pick the receiver, and why."""

    kind: DeliveryKind
    request: SimRequest
    port: PortRef | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class FullReply:
    """A whole response MAD a firmware hook built (vendor classes)."""

    mad: bytes


def bounce(request: SimRequest, note: str) -> Delivery:
    """The sender's own datagram back with status 110 (ETIMEDOUT), as ibsim bounces."""
    return Delivery(DeliveryKind.BOUNCE, replace(request, status=SIM_STATUS_TIMEOUT),
                    note=note)


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
        subnet = self.subnet
        sender = subnet.port(source)
        raw = request.mad
        if raw[0] != mad.BASE_VERSION or raw[2] > MAX_CLASS_VERSION:
            return []
        response = mad.is_response(raw[3])
        dr: mad.DrSmp | None = None
        header: mad.MadHeader | mad.DrSmp
        if raw[1] == mad.CLASS_SUBN_DIRECTED_ROUTE:
            header = dr = mad.DrSmp.decode(raw)
            if (dr.hop_pointer != 0 or dr.direction != int(response)
                    or dr.dr_slid != mad.PERMISSIVE_LID or dr.dr_dlid != mad.PERMISSIVE_LID
                    or dr.hop_count > mad.MAX_DR_HOPS
                    or request.dlid != mad.PERMISSIVE_LID):
                return []
        else:
            header = (mad.Smp.decode(raw) if raw[1] == mad.CLASS_SUBN_LID_ROUTED
                      else mad.MadHeader.decode(raw))
            if request.slid == 0 and request.dlid != mad.PERMISSIVE_LID:
                request = SimRequest(request.dlid, sender.lid, request.dqp, request.sqp,
                                     request.status, request.length, raw)
        ctx = MadContext(sender.node, sender, header, raw, True, now)
        if sender.node.firmware.host_send(ctx) is Action.DROP:
            return []
        if header.method == mad.METHOD_TRAP_REPRESS:
            self._trap_repress(sender, request, header, dr, now)
            return []

        # -- route
        return_path = b""
        vl15 = header.mgmt_class == mad.CLASS_SUBN_LID_ROUTED
        try:
            if request.dlid != mad.PERMISSIVE_LID:
                target = route_lid(subnet, sender, request.dlid, vl15)
            elif dr is None:
                return [bounce(request, "permissive DLID on a LID-routed class")]
            elif response:
                target = route_dr_in(subnet, sender, dr.hop_count, dr.return_path)
            else:
                route = route_dr_out(subnet, sender, dr.hop_count, dr.initial_path)
                target, return_path = route.target, route.return_path
        except NoRoute as e:
            return [bounce(request, str(e))]
        if response:
            return [Delivery(DeliveryKind.FORWARD, request, target.ref, "response")]
        if dr is not None:
            # the return path travels with the request, for whoever answers it (ibsim
            # forward_MAD, sim_mad.c:249-258)
            raw = raw[:192] + return_path + raw[256:]
            dr.return_path = return_path
            request = SimRequest(request.dlid, request.slid, request.dqp, request.sqp,
                                 request.status, request.length, raw)

        # -- answer
        from_host = target.node is sender.node
        traps: list[Trap] = []
        outcome: Outcome | FullReply
        if isinstance(header, mad.Smp | mad.DrSmp):
            outcome, traps = self.sma.handle(target, header, raw, from_host, now, return_path)
        elif header.mgmt_class == mad.CLASS_PERF_MGT:
            outcome = handle_perf(target, mad.PerfMgtMad.decode(raw))
            if outcome is NOT_HANDLED:
                outcome = self._firmware_answer(target, header, raw, from_host, now)
        else:
            outcome = self._firmware_answer(target, header, raw, from_host, now)
        deliveries = [d for trap in traps for d in self._trap_deliveries(trap)]
        if outcome is DROPPED:
            return deliveries
        if outcome is NOT_HANDLED:
            return [Delivery(DeliveryKind.FORWARD, request, target.ref, "request")] + deliveries
        if isinstance(outcome, FullReply):
            reply_mad = outcome.mad
        else:
            assert isinstance(outcome, Reply)
            reply_mad = self._reply_mad(raw, header, dr, return_path, outcome)
        reply = SimRequest(request.slid, request.dlid, request.sqp, request.dqp, 0,
                           request.length, reply_mad)
        # -- route the reply back; it must reach the requester's node (ibsim :1904-1908)
        try:
            if reply.dlid != mad.PERMISSIVE_LID:
                back = route_lid(subnet, target, reply.dlid, vl15)
            else:
                assert dr is not None
                back = route_dr_in(subnet, target, dr.hop_count, return_path)
        except NoRoute as e:
            return [bounce(request, f"reply lost: {e}")] + deliveries
        if back.node is not sender.node:
            return [bounce(request, "reply reached another node")] + deliveries
        return [Delivery(DeliveryKind.REPLY, reply, source, "answered")] + deliveries

    def _firmware_answer(self, target: PortState, header: mad.MadHeader | mad.DrSmp, raw: bytes,
                         from_host: bool, now: float) -> Outcome | FullReply:
        ctx = MadContext(target.node, target, header, raw, from_host, now)
        answer = target.node.firmware.mad_received(ctx)
        if answer is None:
            return NOT_HANDLED
        if len(answer) != mad.MAD_SIZE:
            raise ValueError(f"firmware of {target.node.id!r} answered with {len(answer)} "
                             f"bytes, not {mad.MAD_SIZE}")
        return FullReply(answer)

    @staticmethod
    def _reply_mad(raw: bytes, header: mad.MadHeader | mad.DrSmp, dr: mad.DrSmp | None,
                   return_path: bytes, reply: Reply) -> bytes:
        """The response MAD: GetResp, status, data, and for DR the D bit and return path
        (ibsim reply_MAD, sim_mad.c:260-290; the hop pointer stays 0 as ibsim leaves it)."""
        buf = bytearray(raw)
        buf[3] = mad.response_method(header.method)
        if dr is not None:
            status = mad.DR_DIRECTION_BIT | (reply.status & 0x7FFF)
            buf[4:6] = status.to_bytes(2, "big")
            buf[192:256] = return_path
        else:
            buf[4:6] = reply.status.to_bytes(2, "big")
        offset = (mad.GMP_PERF_DATA_OFFSET if header.mgmt_class == mad.CLASS_PERF_MGT
                  else mad.SMP_DATA_OFFSET)
        buf[offset:offset + len(reply.data)] = reply.data
        return bytes(buf)

    def _trap_repress(self, sender: PortState, request: SimRequest,
                      header: mad.MadHeader | mad.DrSmp, dr: mad.DrSmp | None,
                      now: float) -> None:
        """Route a TrapRepress to its SMA for the M_Key check; it is never answered."""
        try:
            if request.dlid != mad.PERMISSIVE_LID:
                target = route_lid(self.subnet, sender, request.dlid)
            elif dr is not None:
                target = route_dr_out(self.subnet, sender, dr.hop_count,
                                      dr.initial_path).target
            else:
                return
        except NoRoute:
            return
        if isinstance(header, mad.Smp | mad.DrSmp):
            self.sma.handle(target, header, request.mad, target.node is sender.node, now)

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
        return [Delivery(DeliveryKind.FORWARD, request, destination.ref, "trap")]

    def set_is_sm(self, ref: PortRef, is_sm: bool) -> list[Delivery]:
        """A client attached at ``ref`` became (or stopped being) an SM: set or clear
        PortInfo.CapabilityMask.IsSM; if the mask changed and the port supports notices
        or traps and IsCapabilityMaskNotice, send trap 144 (ibsim.c:323-348)."""
        port = self.subnet.port(ref)
        before = port.capability_mask
        if is_sm:
            port.capability_mask |= sa.CAP_IS_SM
        else:
            port.capability_mask &= ~sa.CAP_IS_SM
        mask = port.capability_mask
        if mask == before:
            return []
        notices = mask & (sa.CAP_IS_NOTICE_SUPPORTED | sa.CAP_IS_TRAP_SUPPORTED)
        if notices and mask & sa.CAP_IS_CAPABILITY_MASK_NOTICE_SUPPORTED:
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
            if port.phys_state != sa.PHYS_DISABLED:
                return []
            port.phys_state = sa.PHYS_POLLING
            switches = self.subnet.train(port)
        else:
            if port.phys_state == sa.PHYS_DISABLED:
                return []
            switches = self.subnet.take_down(port, disable=True)
        return [d for node in switches
                for d in self._trap_deliveries(Trap(node.ports[0],
                                                    link_state_change_notice(node.ports[0])))]

    # -- the control channel (reads the daemon answers with; ibsim.md §1.2) ---------------------

    def node_info_data(self, ref: PortRef) -> bytes:
        """GET_NODEINFO: 64 bytes of NodeInfo as the attach port sees it."""
        port = self.subnet.port(ref)
        return node_info(port.node, port).encode() + bytes(24)

    def port_info_data(self, ref: PortRef) -> bytes:
        """GET_PORTINFO: 64 bytes of the port's PortInfo (M_Key read as stored)."""
        port = self.subnet.port(ref)
        return port_info(port, port.number).encode()

    def pkeys_data(self, ref: PortRef) -> bytes:
        """GET_PKEYS: the first 32 P_Keys of the port, network order, zero-padded."""
        table = self.subnet.port(ref).pkey_table()[:32]
        return b"".join(k.to_bytes(2, "big") for k in table) + bytes(64 - 2 * len(table))

    def vendor_data(self, ref: PortRef) -> tuple[int, int, int]:
        """GET_VENDOR: (NodeInfo VendorID, DeviceID, Revision)."""
        node = self.subnet.port(ref).node
        return node.spec.vendor_id, node.spec.device_id, NODE_REVISION
