"""Moving a MAD through the fabric: directed-route and LID routing.

Directed route (IBTA 14.2.2; ibsim ``sim_mad.c:1711-1806``, docs/sources.md §2.2):

* outbound, for i = 1 .. HopCount, the MAD leaves the current node by port
  ``InitialPath[i]`` and enters the peer; every node before the last must be a switch;
  egress port 0 of a switch is the switch's own SMA;
* ``ReturnPath[0]`` is the requester's port and ``ReturnPath[i]`` the ingress port at hop
  i, so the responder can walk ``ReturnPath[HopCount .. 1]`` back;
* each hop needs PortPhysicalState LinkUp on both ends; PortState is not checked (SMPs
  travel on VL15, which IBTA allows from Init on).

LID routing (IBTA ch. 18, switch forwarding; ibsim 0.10 ``sim_mad.c:1632-1709``,
docs/sources.md §2.3): a DLID within the sender's own LID range stays local; a CA or router
hands the packet to its link peer; each switch forwards by its linear forwarding table (an entry
above LinearFDBTop or 0xFF is a miss, egress 0 is the switch itself); at most
:data:`MAX_LID_HOPS` switches.  Subnet management packets (``vl15=True``) need the links
up, any other MAD needs both ends Active (IBTA ch. 7 link states: only VL15 flows before
Active; ibsim requires Active for all LID routing).

Every traversal counts one packet on the egress and ingress port; failures count
PortXmitDiscards or PortRcvSwitchRelayErrors, as ibsim does, except that a directed-route
SMP whose first hop names a port its own node lacks counts nothing (no switch relayed it).

The walk follows IBTA's hop-by-hop rules, but the HopPointer field of the datagrams is left
as the requester wrote it (0), in requests handed to a client and in replies, because that
is what OpenSM and the diagnostic tools see from ibsim (observed; docs/sources.md §2.2).
"""

from __future__ import annotations

from typing import Final, NamedTuple

from hcasim.fabric.subnet import (
    COUNTER_COUNT,
    RCV_DATA,
    RCV_PKTS,
    RCV_SWITCH_RELAY_ERRORS,
    TOTAL_DLID_MAPPING_ERRORS,
    TOTAL_INACTIVE_DISCARDS,
    TOTAL_RCV_VL15,
    TOTAL_XMIT_VL15,
    XMIT_DATA,
    XMIT_DISCARDS,
    XMIT_PKTS,
    PortFault,
    PortState,
    Subnet,
    count_error,
    count_hop,
)
from hcasim.ib import smp_attrs
from hcasim.ib.mad import DR_PATH_SIZE, MAX_DR_HOPS
from hcasim.ib.smp_attrs import PHYS_LINK_UP

MAX_LID_HOPS: Final = 64  # loop guard; ibsim uses 16 (MAXHOPS, sim.h:111)


class NoRoute(Exception):
    """The MAD cannot reach its destination; the message says where it stopped."""


class DrRoute(NamedTuple):
    """Where an outbound directed-route SMP arrived, and the return path it recorded."""

    target: PortState
    return_path: bytes


def _step(node_port: PortState, egress_number: int, relayed: bool) -> PortState:
    """Leave ``node_port``'s node by port ``egress_number``; return the ingress port.

    ``relayed``: the SMP came in at ``node_port`` and a switch relays it.  Only then is a
    bad egress port a PortRcvSwitchRelayError of ``node_port`` (IBTA 16.1.3.5: packets a
    switch received and could not relay); at the first hop the SMP leaves the node that
    made it, which received nothing, so nothing is counted there."""
    node = node_port.node
    table = node.by_number
    egress = table[egress_number] if egress_number < len(table) else None
    if egress is None:
        if relayed:
            count_error(node_port, RCV_SWITCH_RELAY_ERRORS)
        raise NoRoute(f"{node.id!r} has no port {egress_number}")
    if egress_number == 0:
        return egress  # only a switch has a port 0: its own SMA
    ingress = egress.peer
    if egress.phys_state != PHYS_LINK_UP or ingress is None:
        count_error(egress, XMIT_DISCARDS, TOTAL_INACTIVE_DISCARDS)
        raise NoRoute(f"{node.id!r} port {egress_number} is not LinkUp")
    if ingress.phys_state != PHYS_LINK_UP:
        count_error(egress, XMIT_DISCARDS, TOTAL_INACTIVE_DISCARDS)
        raise NoRoute(f"{ingress.node.id!r} port {ingress.number} is not LinkUp")
    # count_hop, inlined: this runs for every hop of every MAD
    counters = egress.counters
    if counters is None:
        counters = egress.counters = [0] * COUNTER_COUNT
    counters[XMIT_PKTS] += 1
    counters[XMIT_DATA] += 72
    counters[TOTAL_XMIT_VL15] += 1  # directed route: SMPs, VL15
    counters = ingress.counters
    if counters is None:
        counters = ingress.counters = [0] * COUNTER_COUNT
    counters[RCV_PKTS] += 1
    counters[RCV_DATA] += 72
    counters[TOTAL_RCV_VL15] += 1
    fault = ingress.fault
    if fault is not None:
        _arrive(fault, ingress)
    return ingress


def _arrive(fault: PortFault, port: PortState) -> None:
    """An injected fault at ``port`` may lose the MAD entering it (docs/fabric.md §7.2)."""
    lost = fault.arrives(port)
    if lost:
        raise NoRoute(f"{port.node.id!r} port {port.number}: {lost}")


def route_dr_out(subnet: Subnet, start: PortState, hop_count: int,
                 initial_path: bytes, relayed: bool = False) -> DrRoute:
    """Walk an outbound directed-route SMP from the requester's port ``start``, or, with
    ``relayed``, from the port where its LID-routed part arrived (its node relays it).

    Raises :class:`NoRoute`; the caller bounces the MAD.
    """
    if not 0 <= hop_count <= MAX_DR_HOPS or len(initial_path) < hop_count + 1:
        raise NoRoute(f"bad hop count {hop_count}")
    path = bytearray(DR_PATH_SIZE)
    port = start
    path[0] = port.number
    for i in range(1, hop_count + 1):
        if i > 1 and not port.node.is_switch:
            raise NoRoute(f"hop {i - 1} is not a switch ({port.node.id!r})")
        port = _step(port, initial_path[i], relayed or i > 1)
        path[i] = port.number
    return DrRoute(port, bytes(path))


def route_dr_in(subnet: Subnet, start: PortState, hop_count: int,
                return_path: bytes) -> PortState:
    """Walk a returning directed-route SMP from the responder's port ``start`` along
    ``ReturnPath[hop_count .. 1]``; return the port it arrives at."""
    if not 0 <= hop_count <= MAX_DR_HOPS or len(return_path) < hop_count + 1:
        raise NoRoute(f"bad hop count {hop_count}")
    port = start
    for i in range(hop_count, 0, -1):
        if i < hop_count and not port.node.is_switch:
            raise NoRoute(f"hop {i} is not a switch ({port.node.id!r})")
        port = _step(port, return_path[i], i < hop_count)
    return port


def route_neighbour(start: PortState) -> PortState:
    """Carry an SMP addressed to the permissive LID 0xFFFF over ``start``'s link and return
    the port it enters: the permissive DLID is accepted by whichever port receives it
    (IBTA 7.11.1, 14.2.2.1), so the neighbour answers.  Raises :class:`NoRoute`."""
    peer = start.peer
    if start.phys_state != PHYS_LINK_UP or peer is None or peer.phys_state != PHYS_LINK_UP:
        count_error(start, XMIT_DISCARDS, TOTAL_INACTIVE_DISCARDS)
        raise NoRoute(f"{start.node.id!r} port {start.number} is not LinkUp")
    count_hop(start, peer)
    if peer.fault is not None:
        _arrive(peer.fault, peer)
    return peer


def _usable(port: PortState, vl15: bool) -> bool:
    if port.phys_state != PHYS_LINK_UP:
        return False
    return vl15 or port.state == smp_attrs.PORT_STATE_ACTIVE


def route_lid(subnet: Subnet, start: PortState, dlid: int, vl15: bool = True) -> PortState:
    """Route a LID-addressed MAD from ``start`` to the port that owns ``dlid``.

    Raises :class:`NoRoute`.
    """
    if dlid == 0 or dlid >= 0xFFFF:
        raise NoRoute(f"invalid DLID {dlid:#x}")
    if start.covers_lid(dlid):
        return start
    port = start
    if not port.node.is_switch:
        peer = port.peer
        if peer is None or not _usable(port, vl15) or not _usable(peer, vl15):
            count_error(port, XMIT_DISCARDS, TOTAL_INACTIVE_DISCARDS)
            raise NoRoute(f"{port.node.id!r} port {port.number} has no usable link")
        count_hop(port, peer, vl15)
        if peer.fault is not None:
            _arrive(peer.fault, peer)
        port = peer
    for _ in range(MAX_LID_HOPS):
        if port.covers_lid(dlid):
            return port
        node = port.node
        switch = node.switch
        if switch is None:
            raise NoRoute(f"DLID {dlid} reached CA {node.id!r} port {port.number}, "
                          "which does not own it")
        out = switch.lft_lookup(dlid)
        egress = node.port(out) if out != 0xFF else None
        if egress is None:
            count_error(port, RCV_SWITCH_RELAY_ERRORS, TOTAL_DLID_MAPPING_ERRORS)
            raise NoRoute(f"switch {node.id!r} has no route to LID {dlid}")
        if egress.number == 0:
            if egress.covers_lid(dlid):
                return egress
            raise NoRoute(f"switch {node.id!r} routes LID {dlid} to itself but does "
                          "not own it")
        peer = egress.peer
        if peer is None or not _usable(egress, vl15) or not _usable(peer, vl15):
            count_error(egress, XMIT_DISCARDS, TOTAL_INACTIVE_DISCARDS)
            raise NoRoute(f"switch {node.id!r} port {egress.number} has no usable link")
        count_hop(egress, peer, vl15)
        if peer.fault is not None:
            _arrive(peer.fault, peer)
        port = peer
    raise NoRoute(f"LID {dlid}: more than {MAX_LID_HOPS} hops (routing loop?)")
