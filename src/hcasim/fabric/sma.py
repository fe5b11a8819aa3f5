"""The subnet management agent (SMA) of every node: Get and Set of SMP attributes.

One :class:`Sma` serves the whole subnet; :meth:`Sma.handle` answers one SMP that reached
``port``.  Order of work, per IBTA 14.2 and the Linux qib reference SMA
(``drivers/infiniband/hw/qib/qib_mad.c``, as summarised in docs/sources.md §10.1):

1. the node's firmware hook sees the SMP first (:class:`~hcasim.fabric.subnet.NodeFirmware`) and may
   drop it or answer it itself;
2. the M_Key check (IBTA 14.2.4) on the management port (the port itself on a CA, port 0
   on a switch): a lease that expired first resets ProtectBits to 0; the key is valid if
   the port's M_Key is 0 or equal to the SMP's; a valid Get/Set/TrapRepress stops the lease
   timer; an invalid Get is a violation only with ProtectBits 2 or 3 (with 1 it is answered
   with the M_Key read as 0); an invalid Set or TrapRepress always is.  A violation
   increments M_KeyViolations (saturating at 0xFFFF), starts the lease timer if the period
   is not 0, sends trap 256 "Bad M_Key" to the port's MasterSMLID and drops the SMP;
3. the attribute handler; a Set is checked completely before anything changes, and its
   response carries the attribute as it is afterwards;
4. the firmware hook may edit the reply data.

Statuses (IBTA 13.4.7): 0x0008 for a method the SMA does not serve, 0x000C for a
method/attribute combination it does not serve (Set of a read-only attribute, switch
attributes on a CA, unknown attributes), 0x001C for an invalid attribute modifier or field
value: out-of-range port numbers and table blocks are answered with 0x001C and never
index outside a table.  SMInfo (0x0020) and Trap/Notice are not the SMA's: they are
returned as :data:`NOT_HANDLED` so the caller can hand them to an SM client.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from hcasim.fabric.subnet import (
    DEFAULT_SL2VL,
    DEFAULT_VLARB_HIGH,
    DEFAULT_VLARB_LOW,
    EXT_SPEED_ORDER,
    LINEAR_FDB_CAP,
    MAX_UNICAST_LID,
    MULTICAST_FDB_CAP,
    NODE_REVISION,
    PARTITION_ENFORCEMENT_CAP,
    SPEED_ORDER,
    VL_ARB_CAP,
    WIDTH_ORDER,
    Action,
    Answer,
    MadContext,
    NodeFirmware,
    NodeState,
    PortChange,
    PortState,
    Subnet,
    highest_common,
)
from hcasim.ib import mad, smp_attrs
from hcasim.ib.mad import DrSmp, Smp

SMP_DATA = mad.SMP_DATA_SIZE
MAX_VIOLATIONS: Final = 0xFFFF  # M_KeyViolations saturates (IBTA 14.2.5.6)
MAX_DR_NOTICE_PATH: Final = 30  # trap 256 carries at most 30 return-path bytes (ntc_256)
NO_CHANGE: Final = 0
LINK_WIDTH_SET_TO_SUPPORTED: Final = 0xFF  # IBTA 14.2.5.6 LinkWidthEnabled 255
LINK_SPEED_SET_TO_SUPPORTED: Final = 0xF  # LinkSpeedEnabled 15
EXT_SPEED_DISABLE: Final = 30  # LinkSpeedExtEnabled 30: disable extended speeds
EXT_SPEED_SET_TO_SUPPORTED: Final = 31
#: Method (byte 3), AttributeID (16-17), AttributeModifier (20-23) and M_Key (24-31) of an
#: SMP, the same offsets in both SMP formats (IBTA 14.2.1.1-14.2.1.2).
_SMP_FIELDS: Final = struct.Struct(">3xB12xH2xIQ")
_CLIENT_REREGISTER: Final = PortChange.CLIENT_REREGISTER.value
_GID_PREFIX: Final = PortChange.GID_PREFIX.value
_LID: Final = PortChange.LID.value
_M_KEY: Final = PortChange.M_KEY.value
_PORT_STATE: Final = PortChange.PORT_STATE.value
_SM_LID: Final = PortChange.SM_LID.value
_SM_SL: Final = PortChange.SM_SL.value
_PKEY_TABLE: Final = PortChange.PKEY_TABLE.value
_GUID_TABLE: Final = PortChange.GUID_TABLE.value
_SL2VL_TABLE: Final = PortChange.SL2VL_TABLE.value


class Reply(NamedTuple):
    """The SMA answers: MAD status and the 64 bytes of SMP data."""

    status: int
    data: bytes


class _Dropped:
    """The SMP is discarded; nothing is sent back."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROPPED"


class _NotHandled:
    """Not an SMA attribute or method (SMInfo, Trap): for an SM client at the port."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_HANDLED"


DROPPED = _Dropped()
NOT_HANDLED = _NotHandled()
Outcome = Reply | _Dropped | _NotHandled


@dataclass(frozen=True, slots=True)
class Trap:
    """A trap an SMA raised: the issuing port and the 64-byte Notice it sends to its SM."""

    source: PortState
    notice: bytes


@dataclass(slots=True)
class _Request:
    """One SMP being handled, and what handling it produced."""

    subnet: Subnet
    node: NodeState
    port: PortState  # ingress port
    method: int
    attr_mod: int
    data: bytes
    hide_m_key: bool
    traps: list[Trap]
    #: port number -> PortChange bits (an int: Flag arithmetic is slow on the MAD path)
    changes: dict[int, int] = field(default_factory=dict)

    @property
    def is_set(self) -> bool:
        return self.method == mad.METHOD_SET

    def changed(self, port: PortState, what: int) -> None:
        self.changes[port.number] = self.changes.get(port.number, 0) | what


Handler = Callable[[_Request], Reply]


def _pad(data: bytes) -> bytes:
    return data + bytes(SMP_DATA - len(data))


def _invalid(current: bytes) -> Reply:
    return Reply(mad.STATUS_INVALID_FIELD, _pad(current))


# -- M_Key -------------------------------------------------------------------------------------


def check_m_key(mport: PortState, smp: Smp | DrSmp, now: float) -> tuple[bool, bool]:
    """Apply the M_Key rules (module docstring, step 2) to ``mport``.

    Returns ``(allowed, hide_m_key)``; on a violation the counters and lease timer are
    updated here and the caller sends trap 256.
    """
    return _check_m_key(mport, smp.method, smp.m_key, now)


def _check_m_key(mport: PortState, method: int, m_key: int,
                 now: float) -> tuple[bool, bool]:
    deadline = mport.m_key_lease_deadline
    if deadline is not None and now >= deadline:
        mport.m_key_lease_deadline = None
        mport.m_key_protect_bits = 0
    if mport.m_key == 0 or m_key == mport.m_key:
        if mport.m_key_lease_deadline is not None and method in (
                mad.METHOD_GET, mad.METHOD_SET, mad.METHOD_TRAP_REPRESS):
            mport.m_key_lease_deadline = None
        return True, False
    if method == mad.METHOD_GET and mport.m_key_protect_bits < 2:
        return True, mport.m_key_protect_bits == 1
    mport.m_key_violations = min(mport.m_key_violations + 1, MAX_VIOLATIONS)
    if mport.m_key_lease_deadline is None and mport.m_key_lease_period:
        mport.m_key_lease_deadline = now + mport.m_key_lease_period
    return False, False


def bad_m_key_notice(mport: PortState, smp: Smp | DrSmp, return_path: bytes) -> bytes:
    """The Notice of trap 256 for ``smp`` (IBTA 14.3.9; fields as Linux ntc_256)."""
    details = smp_attrs.BadMKeyDetails(lid=mport.lid, method=smp.method, attr_id=smp.attr_id,
                                attr_mod=smp.attr_mod, m_key=smp.m_key)
    if isinstance(smp, DrSmp):
        hops = smp.hop_count
        details.dr_slid = smp.dr_slid
        details.dr_notice = 1
        if hops > MAX_DR_NOTICE_PATH:
            details.dr_path_truncated = 1
            hops = MAX_DR_NOTICE_PATH
        details.dr_hop_count = hops
        details.dr_return_path = return_path[:hops]
    return smp_attrs.Notice(is_generic=1, notice_type=smp_attrs.NOTICE_TYPE_SECURITY,
                     producer_type=int(mport.node.kind), trap_number=smp_attrs.TRAP_BAD_M_KEY,
                     issuer_lid=mport.lid, data_details=details.encode()).encode()


def link_state_change_notice(switch_port0: PortState) -> bytes:
    """The Notice of trap 128 "link state change" from a switch (ibsim
    encode_trap128, sim_mad.c:1917-1936)."""
    details = smp_attrs.LinkStateChangeDetails(lid=switch_port0.lid).encode()
    return smp_attrs.Notice(is_generic=1, notice_type=smp_attrs.NOTICE_TYPE_URGENT,
                     producer_type=smp_attrs.NODE_TYPE_SWITCH,
                     trap_number=smp_attrs.TRAP_LINK_STATE_CHANGE, issuer_lid=switch_port0.lid,
                     data_details=details).encode()


def capability_mask_change_notice(port: PortState) -> bytes:
    """The Notice of trap 144 "capability mask changed" (IBTA 14.3.11 as qib cites it;
    libibmad fields.c NoticeDataTrap144LID at bit 96, NoticeDataTrap144CapMask at bit 128)."""
    details = smp_attrs.CapabilityMaskChangeDetails(
        lid=port.lid, capability_mask=port.capability_mask).encode()
    return smp_attrs.Notice(is_generic=1, notice_type=smp_attrs.NOTICE_TYPE_INFO,
                     producer_type=int(port.node.kind),
                     trap_number=smp_attrs.TRAP_CAPABILITY_MASK_CHANGE, issuer_lid=port.lid,
                     data_details=details).encode()


def can_send_trap(port: PortState) -> bool:
    """A port can address its SM only with its own LID and a MasterSMLID (ibsim
    sim_mad.c:1921-1925)."""
    return port.lid != 0 and port.sm_lid != 0


# -- attribute views ---------------------------------------------------------------------------


_pack_pkeys = smp_attrs.PKeyTable.compile_packer("keys", {"pkeys": "keys"})
node_info_data = smp_attrs.NodeInfo.compile_packer("node, ingress", {
    "base_version": "BASE_VERSION", "class_version": "1", "node_type": "node.kind.value",
    "num_ports": "node.spec.num_ports", "system_image_guid": "node.spec.system_image_guid",
    "node_guid": "node.guid", "port_guid": "ingress.guid", "partition_cap": "node.partition_cap",
    "device_id": "node.spec.device_id", "revision": "NODE_REVISION",
    "local_port_num": "ingress.number", "vendor_id": "node.spec.vendor_id",
}, {"BASE_VERSION": mad.BASE_VERSION, "NODE_REVISION": NODE_REVISION})
"""``node_info_data(node, ingress)``: the 40 bytes of :func:`node_info`, packed without
building a :class:`~hcasim.ib.smp_attrs.NodeInfo`."""


def node_info(node: NodeState, ingress: PortState) -> smp_attrs.NodeInfo:
    """NodeInfo as seen through ``ingress`` (LocalPortNum, PortGUID are per port)."""
    return smp_attrs.NodeInfo.decode(node_info_data(node, ingress))


#: PortInfo as a function of the port ``p``, the number of the port the SMP arrived on
#: (``lpn``, LocalPortNum) and ``hide`` (the M_Key reads as 0); fields not listed with a
#: port attribute read 0.
_PORT_INFO_FIELDS = {
    "m_key": "0 if hide else p.m_key", "gid_prefix": "p.gid_prefix", "lid": "p.lid",
    "master_sm_lid": "p.sm_lid", "capability_mask": "p.capability_mask", "diag_code": "0",
    "m_key_lease_period": "p.m_key_lease_period", "local_port_num": "lpn",
    "link_width_enabled": "p.width_enabled", "link_width_supported": "p.width_supported",
    "link_width_active": "p.width_active", "link_speed_supported": "p.speed_supported",
    "port_state": "p.state", "port_phys_state": "p.phys_state",
    "link_down_default_state": "p.link_down_default",
    "m_key_protect_bits": "p.m_key_protect_bits", "lmc": "p.lmc",
    "link_speed_active": "p.speed_active", "link_speed_enabled": "p.speed_enabled",
    "neighbor_mtu": "p.neighbor_mtu", "master_sm_sl": "p.sm_sl", "vl_cap": "p.vl_cap",
    "init_type": "0", "vl_high_limit": "p.vl_high_limit",
    "vl_arbitration_high_cap": "VL_ARB_CAP", "vl_arbitration_low_cap": "VL_ARB_CAP",
    "init_type_reply": "0", "mtu_cap": "p.mtu_cap", "vl_stall_count": "p.vl_stall_count",
    "hoq_life": "p.hoq_life", "operational_vls": "p.operational_vls",
    "partition_enforcement_inbound": "p.partition_enforcement >> 3 & 1",
    "partition_enforcement_outbound": "p.partition_enforcement >> 2 & 1",
    "filter_raw_inbound": "p.partition_enforcement >> 1 & 1",
    "filter_raw_outbound": "p.partition_enforcement & 1",
    "m_key_violations": "p.m_key_violations", "p_key_violations": "p.p_key_violations",
    "q_key_violations": "p.q_key_violations", "guid_cap": "p.guid_cap",
    "client_reregister": "0", "multicast_pkey_trap_suppression_enabled": "0",
    "subnet_timeout": "p.subnet_timeout", "resp_time_value": "p.resp_time_value",
    "local_phy_errors": "0", "overrun_errors": "0", "max_credit_hint": "0",
    "link_round_trip_latency": "0", "capability_mask2": "p.capability_mask2",
    "link_speed_ext_active": "p.ext_speed_active",
    "link_speed_ext_supported": "p.ext_speed_supported",
    "link_speed_ext_enabled": "p.ext_speed_enabled",
}
port_info_data = smp_attrs.PortInfo.compile_packer("p, lpn, hide=False", _PORT_INFO_FIELDS,
                                            {"VL_ARB_CAP": VL_ARB_CAP})
"""``port_info_data(port, local_port_num, hide_m_key=False)``: the 64 bytes of
:func:`port_info`, encoded without building a :class:`~hcasim.ib.smp_attrs.PortInfo`."""


def port_info(port: PortState, local_port_num: int, hide_m_key: bool = False) -> smp_attrs.PortInfo:
    """PortInfo of ``port``; ``local_port_num`` is the port the SMP arrived on."""
    return smp_attrs.PortInfo.decode(port_info_data(port, local_port_num, hide_m_key))


def switch_info(node: NodeState) -> smp_attrs.SwitchInfo:
    """SwitchInfo of a switch node."""
    sw = node.switch
    assert sw is not None
    return smp_attrs.SwitchInfo(
        linear_fdb_cap=LINEAR_FDB_CAP, random_fdb_cap=0, multicast_fdb_cap=MULTICAST_FDB_CAP,
        linear_fdb_top=sw.linear_fdb_top, default_port=sw.default_port,
        default_multicast_primary_port=sw.default_mcast_primary,
        default_multicast_not_primary_port=sw.default_mcast_not_primary,
        life_time_value=sw.life_time_value, port_state_change=sw.port_state_change,
        lids_per_port=sw.lids_per_port, partition_enforcement_cap=PARTITION_ENFORCEMENT_CAP,
        filter_raw_inbound_cap=1, filter_raw_outbound_cap=1,
        enhanced_port0=int(sw.enhanced_port0), multicast_fdb_top=sw.multicast_fdb_top)


# -- handlers ---------------------------------------------------------------------------------


def _read_only(get: Callable[[_Request], bytes]) -> Handler:
    def handler(req: _Request) -> Reply:
        data = _pad(get(req))
        if req.is_set:
            return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, data)
        return Reply(mad.STATUS_OK, data)
    return handler


def _node_description(req: _Request) -> bytes:
    return smp_attrs.NodeDescription(req.node.description).encode()


def _node_info(req: _Request) -> bytes:
    return node_info_data(req.node, req.port)


def _switch_info(req: _Request) -> Reply:
    sw = req.node.switch
    if sw is None:
        return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, bytes(SMP_DATA))
    if req.is_set:
        new = smp_attrs.SwitchInfo.decode(req.data)
        if new.linear_fdb_top > min(LINEAR_FDB_CAP - 1, MAX_UNICAST_LID):
            return _invalid(switch_info(req.node).encode())
        sw.linear_fdb_top = new.linear_fdb_top
        sw.default_port = new.default_port
        sw.default_mcast_primary = new.default_multicast_primary_port
        sw.default_mcast_not_primary = new.default_multicast_not_primary_port
        sw.life_time_value = new.life_time_value
        sw.multicast_fdb_top = new.multicast_fdb_top
        if new.port_state_change:  # cleared by writing one (IBTA 14.2.5.4)
            sw.port_state_change = 0
    return Reply(mad.STATUS_OK, _pad(switch_info(req.node).encode()))


def _guid_port(req: _Request) -> PortState:
    """GUIDInfo lives on the ingress port of a CA and on port 0 of a switch."""
    return req.node.ports[0] if req.node.is_switch else req.port


def _guid_info(req: _Request) -> Reply:
    port = _guid_port(req)
    block = req.attr_mod
    per = smp_attrs.GuidInfo.BLOCK
    if block >= max(1, -(-port.guid_cap // per)):
        return _invalid(b"")
    table = port.guid_table()
    start = block * per
    if req.is_set:
        new = smp_attrs.GuidInfo.decode(req.data).guids
        before = table[start:start + per]
        for i, guid in enumerate(new):
            index = start + i
            if index == 0 or index >= len(table):
                continue  # GUID0 is the port GUID and read-only (IBTA 14.2.5.5; qib)
            table[index] = guid
        if table[start:start + per] != before:
            req.changed(port, _GUID_TABLE)
    entries = table[start:start + per]
    return Reply(mad.STATUS_OK, smp_attrs.GuidInfo(tuple(entries + [0] * (per - len(entries))))
                 .encode())


def _port_info(req: _Request) -> Reply:
    node = req.node
    number = req.attr_mod & 0x7FFFFFFF  # bit 31 is not a port selector (ibsim masks it)
    if number == 0 and not node.is_switch:
        number = req.port.number  # AM 0 on a CA: the port the SMP arrived on
    target = node.port(number)
    if target is None:
        return _invalid(b"")
    if req.is_set:
        if not node.is_switch and target is not req.port:
            # a CA's SMA configures only the port it answers on (IBTA 14.2.5.6; ibsim)
            return _invalid(port_info_data(target, req.port.number, req.hide_m_key))
        error = _set_port_info(req, target, smp_attrs.PortInfo.decode(req.data))
        if error:
            return _invalid(port_info_data(target, req.port.number, req.hide_m_key))
    return Reply(mad.STATUS_OK, port_info_data(target, req.port.number, req.hide_m_key))


def _mask_setting(value: int, current: int, supported: int, all_value: int) -> int | None:
    """New enabled mask for a LinkWidth/SpeedEnabled Set: ``None`` if invalid."""
    if value == NO_CHANGE:
        return current
    if value == all_value:
        return supported
    if value & ~supported:
        return None
    return value


def _set_port_info(req: _Request, port: PortState, new: smp_attrs.PortInfo) -> bool:
    """Validate, then apply, a PortInfo Set to ``port``; return True if invalid."""
    subnet = req.subnet
    manages = not port.node.is_switch or port.number == 0  # has LID, SM LID, M_Key
    # -- validation: nothing changes unless every field is acceptable
    if manages:
        if new.lid > MAX_UNICAST_LID or new.lid + (1 << new.lmc) - 1 > MAX_UNICAST_LID:
            return True
        if new.master_sm_lid > MAX_UNICAST_LID:
            return True
    width = _mask_setting(new.link_width_enabled, port.width_enabled, port.width_supported,
                          LINK_WIDTH_SET_TO_SUPPORTED)
    speed = _mask_setting(new.link_speed_enabled, port.speed_enabled, port.speed_supported,
                          LINK_SPEED_SET_TO_SUPPORTED)
    ext = new.link_speed_ext_enabled
    if ext == NO_CHANGE:
        ext_speed: int | None = port.ext_speed_enabled
    elif ext == EXT_SPEED_DISABLE:
        ext_speed = 0
    elif ext == EXT_SPEED_SET_TO_SUPPORTED:
        ext_speed = port.ext_speed_supported
    else:
        ext_speed = None if ext & ~port.ext_speed_supported else ext
    if width is None or speed is None or ext_speed is None:
        return True
    if new.operational_vls > port.vl_cap:
        return True
    # NeighborMTU is stored unchecked, as ibsim accepts any value: OpenSM may write a
    # value above MTUCap on switch port 0 (documented choice)
    state = new.port_state
    if state == port.state or state == smp_attrs.PORT_STATE_INIT:
        state = NO_CHANGE  # the current state, or Init (only training reaches it): no-op
    cabled = port.peer is not None and not port.is_management_port
    if state > smp_attrs.PORT_STATE_ACTIVE:
        return True
    if state >= smp_attrs.PORT_STATE_ARMED and not cabled:
        return True  # no state change on a down or management port (ibsim)
    if state in (smp_attrs.PORT_STATE_ARMED, smp_attrs.PORT_STATE_ACTIVE):
        peer = port.peer
        assert peer is not None
        if abs(port.state - state) != 1 or abs(peer.state - state) > 1:
            return True  # one step at a time, the peer at most one step away
    phys = new.port_phys_state
    if phys not in (smp_attrs.PHYS_POLLING, smp_attrs.PHYS_DISABLED) or port.is_management_port:
        phys = NO_CHANGE  # read-only states (LinkUp, ...) and Sleep are ignored (choice)

    # -- apply
    changes = 0  # PortChange bits, as an int until the end (Flag arithmetic is slow)
    if manages:
        if new.lid != port.lid:
            changes |= _LID
        if new.master_sm_lid != port.sm_lid:
            changes |= _SM_LID
        if new.master_sm_sl != port.sm_sl:
            changes |= _SM_SL
        if new.gid_prefix != port.gid_prefix:
            changes |= _GID_PREFIX
        if (new.m_key, new.m_key_protect_bits, new.m_key_lease_period) != (
                port.m_key, port.m_key_protect_bits, port.m_key_lease_period):
            changes |= _M_KEY
        port.lid, port.lmc = new.lid, new.lmc
        port.sm_lid, port.sm_sl = new.master_sm_lid, new.master_sm_sl
        port.gid_prefix = new.gid_prefix
        port.m_key = new.m_key
        port.m_key_protect_bits = new.m_key_protect_bits
        port.m_key_lease_period = new.m_key_lease_period
        port.m_key_violations = new.m_key_violations  # the SM may reset the counters
        port.p_key_violations = new.p_key_violations
        port.q_key_violations = new.q_key_violations
        port.subnet_timeout = new.subnet_timeout
        if new.client_reregister:
            changes |= _CLIENT_REREGISTER  # an event, never stored (reads 0)
    if new.operational_vls:
        port.operational_vls = new.operational_vls
    if new.neighbor_mtu:
        port.neighbor_mtu = new.neighbor_mtu
    port.vl_high_limit = new.vl_high_limit
    port.hoq_life = new.hoq_life
    port.vl_stall_count = new.vl_stall_count
    port.partition_enforcement = (new.partition_enforcement_inbound << 3
                                  | new.partition_enforcement_outbound << 2
                                  | new.filter_raw_inbound << 1 | new.filter_raw_outbound)
    masks_changed = (width, speed, ext_speed) != (
        port.width_enabled, port.speed_enabled, port.ext_speed_enabled)
    port.width_enabled, port.speed_enabled, port.ext_speed_enabled = width, speed, ext_speed
    peer = port.peer
    changed_switches: list[NodeState] = []
    if masks_changed and peer is not None and port.link_up:
        _renegotiate(subnet, port, peer, changed_switches)
    if phys == smp_attrs.PHYS_DISABLED and port.phys_state != smp_attrs.PHYS_DISABLED:
        changed_switches += subnet.take_down(port, disable=True)
        changes |= _PORT_STATE
    elif phys == smp_attrs.PHYS_POLLING and port.phys_state == smp_attrs.PHYS_DISABLED:
        port.phys_state = smp_attrs.PHYS_POLLING
        changed_switches += subnet.train(port)
        changes |= _PORT_STATE
    elif state == smp_attrs.PORT_STATE_DOWN and cabled and port.link_up:
        # Down bounces the link: it retrains and both ends come back in Init; the peer's
        # switch notes PortStateChange, the switch being set does not (ibsim, IBTA p.731)
        assert peer is not None
        port.state = peer.state = smp_attrs.PORT_STATE_INIT
        if peer.node.switch is not None:
            peer.node.switch.port_state_change = 1
        changes |= _PORT_STATE
    elif state in (smp_attrs.PORT_STATE_ARMED, smp_attrs.PORT_STATE_ACTIVE):
        port.state = state
        changes |= _PORT_STATE
    for node in changed_switches:
        _trap_128(req, node)  # a switch reports its link state changes (ibsim trap 128)
    if changes:
        req.changed(port, changes)
    return False


def _renegotiate(subnet: Subnet, port: PortState, peer: PortState,
                 changed: list[NodeState]) -> None:
    """New enabled masks on a live link: retrain to the best common width and speed."""
    width = highest_common(port.width_enabled & peer.width_enabled, WIDTH_ORDER)
    speed = highest_common(port.speed_enabled & peer.speed_enabled, SPEED_ORDER)
    if not width or not speed:
        changed += subnet.take_down(port)  # nothing in common: the link cannot train
        return
    ext = highest_common(port.ext_speed_enabled & peer.ext_speed_enabled, EXT_SPEED_ORDER)
    for p in (port, peer):
        p.width_active, p.speed_active, p.ext_speed_active = width, speed, ext


def _trap_128(req: _Request, node: NodeState) -> None:
    port0 = node.ports[0]
    if can_send_trap(port0):
        req.traps.append(Trap(port0, link_state_change_notice(port0)))


def _pkey_table(req: _Request) -> Reply:
    node = req.node
    block = req.attr_mod & 0xFFFF
    if node.is_switch:
        port = node.port(req.attr_mod >> 16)  # AM[31:16] = port on a switch
        if port is None:
            return _invalid(b"")
    else:
        port = req.port
    per = smp_attrs.PKeyTable.BLOCK
    capacity = port.pkey_capacity
    if block * per >= capacity:
        return _invalid(b"")
    table = port.pkey_table()
    start = block * per
    count = min(per, capacity - start)
    if req.is_set:
        new = smp_attrs.PKeyTable.decode(req.data).pkeys[:count]
        if list(new) != table[start:start + count]:
            table[start:start + count] = new
            req.changed(port, _PKEY_TABLE)
    return Reply(mad.STATUS_OK, _pack_pkeys(table[start:start + count] + [0] * (per - count)))


def _sl2vl_table(req: _Request) -> Reply:
    node = req.node
    if node.is_switch:
        port = node.port((req.attr_mod >> 8) & 0xFF)  # input port
        out = req.attr_mod & 0xFF  # output port
        if port is None or node.port(out) is None:
            return _invalid(b"")
    else:
        port, out = req.port, 0
    current = (port.sl2vl or {}).get(out, DEFAULT_SL2VL)
    if req.is_set:
        new = smp_attrs.SlToVlTable.decode(req.data).vls
        if new != current:
            if port.sl2vl is None:
                port.sl2vl = {}
            port.sl2vl[out] = new
            req.changed(port, _SL2VL_TABLE)
            current = new
    return Reply(mad.STATUS_OK, _pad(smp_attrs.SlToVlTable(current).encode()))


def _vlarb_table(req: _Request) -> Reply:
    node = req.node
    if node.is_switch:
        port = node.port(req.attr_mod & 0xFFFF)  # AM[15:0] = port on a switch
        if port is None:
            return _invalid(b"")
    else:
        port = req.port
    block = (req.attr_mod >> 16) - 1  # AM[31:16]: 1-2 low priority, 3-4 high (IBTA 14.2.5.9)
    per = smp_attrs.VlArbTable.BLOCK
    if not 0 <= block <= 3 or (block % 2) * per >= VL_ARB_CAP:
        return _invalid(b"")
    count = min(per, VL_ARB_CAP - (block % 2) * per)
    default = DEFAULT_VLARB_HIGH if block >= 2 else DEFAULT_VLARB_LOW
    current = (port.vlarb or {}).get(block)
    if current is None:
        offset = (block % 2) * per
        current = tuple(default[offset:offset + count]) + ((0, 0),) * (count - len(
            default[offset:offset + count]))
    if req.is_set:
        table = smp_attrs.VlArbTable.decode(req.data)
        current = tuple(zip(table.vls[:count], table.weights[:count], strict=True))
        if port.vlarb is None:
            port.vlarb = {}
        port.vlarb[block] = current
    entries = list(current) + [(0, 0)] * (per - count)
    return Reply(mad.STATUS_OK, smp_attrs.VlArbTable(tuple(v for v, _ in entries),
                                              tuple(w for _, w in entries)).encode())


def _linear_fdb(req: _Request) -> Reply:
    sw = req.node.switch
    if sw is None:
        return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, bytes(SMP_DATA))
    block = req.attr_mod
    if block >= LINEAR_FDB_CAP // smp_attrs.LinearForwardingTable.BLOCK:
        return _invalid(b"")  # ibsim writes past its table here (docs/sources.md §2.7)
    if req.is_set:
        sw.set_lft_block(block, req.data[:64])
    return Reply(mad.STATUS_OK, sw.lft_block(block))


def _multicast_fdb(req: _Request) -> Reply:
    node = req.node
    sw = node.switch
    if sw is None:
        return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, bytes(SMP_DATA))
    position = req.attr_mod >> 28  # which 16 ports (IBTA 14.2.5.12)
    block = req.attr_mod & 0x1FF  # 32 MLIDs per block
    positions = (node.num_ports + 1 + 15) // 16
    blocks = MULTICAST_FDB_CAP // smp_attrs.MulticastForwardingTable.BLOCK
    if block >= blocks or position >= positions:
        return _invalid(b"")
    key = (position, block)
    if req.is_set:
        masks = smp_attrs.MulticastForwardingTable.decode(req.data).port_masks
        if sw.multicast_fdb is None:
            sw.multicast_fdb = {}
        sw.multicast_fdb[key] = masks
    masks = (sw.multicast_fdb or {}).get(key, (0,) * smp_attrs.MulticastForwardingTable.BLOCK)
    return Reply(mad.STATUS_OK, smp_attrs.MulticastForwardingTable(masks).encode())


def _mlnx_ext_port_info(req: _Request) -> Reply:
    """MlnxExtPortInfo 0xFF90: OpenSM may read it on Mellanox devices; no FDR10 here, so
    it reads as zeros and Sets are accepted and ignored (ibsim stores it raw)."""
    number = req.attr_mod & 0x7FFFFFFF
    if req.node.port(number) is None and not (number == 0 and not req.node.is_switch):
        return _invalid(b"")
    return Reply(mad.STATUS_OK, bytes(SMP_DATA))


HANDLERS: dict[int, Handler] = {
    mad.ATTR_NODE_DESC: _read_only(_node_description),
    mad.ATTR_NODE_INFO: _read_only(_node_info),
    mad.ATTR_SWITCH_INFO: _switch_info,
    mad.ATTR_GUID_INFO: _guid_info,
    mad.ATTR_PORT_INFO: _port_info,
    mad.ATTR_PKEY_TABLE: _pkey_table,
    mad.ATTR_SL2VL_TABLE: _sl2vl_table,
    mad.ATTR_VL_ARB_TABLE: _vlarb_table,
    mad.ATTR_LINEAR_FDB: _linear_fdb,
    mad.ATTR_MULTICAST_FDB: _multicast_fdb,
    mad.ATTR_MLNX_EXT_PORT_INFO: _mlnx_ext_port_info,
}
"""The attributes the SMA serves (IBTA 14.2.5, plus MlnxExtPortInfo)."""


class Sma:
    """The SMA logic for every node of a :class:`Subnet`."""

    def __init__(self, subnet: Subnet) -> None:
        self.subnet = subnet

    def handle(self, port: PortState, smp: Smp | DrSmp, raw: bytes, from_host: bool,
               now: float, return_path: bytes = b"") -> tuple[Outcome, list[Trap]]:
        """Answer ``smp`` (already decoded from ``raw``) that arrived at ``port``.

        ``return_path`` is the DR return path routing recorded (for trap 256).  Returns the
        outcome and the traps raised; the caller builds and routes the reply and the traps.
        """
        return self.handle_raw(port, raw, from_host, now, return_path, smp)

    def handle_raw(self, port: PortState, raw: bytes, from_host: bool, now: float,
                   return_path: bytes = b"", smp: Smp | DrSmp | None = None,
                   ) -> tuple[Outcome, list[Trap]]:
        """:meth:`handle` for an SMP given as its 256 bytes (class 0x01 or 0x81): the
        header fields the SMA needs are read from ``raw``; the whole SMP is decoded only
        for a firmware hook that asks for it and for trap 256."""
        node = port.node
        traps: list[Trap] = []
        firmware = node.firmware
        ctx = None
        if firmware.__class__ is not NodeFirmware:  # the base class's hooks do nothing
            ctx = MadContext(node, port, smp, raw, from_host, now)
            verdict = firmware.smp_received(ctx)
            if verdict is Action.DROP:
                return DROPPED, traps
            if isinstance(verdict, Answer):
                return Reply(verdict.status, _pad(verdict.data[:SMP_DATA])), traps
        fields: tuple[int, int, int, int] = _SMP_FIELDS.unpack_from(raw)
        method, attr_id, attr_mod, m_key = fields
        if attr_id in (mad.ATTR_SM_INFO, mad.ATTR_NOTICE) or method == mad.METHOD_TRAP:
            if method != mad.METHOD_TRAP_REPRESS:
                return NOT_HANDLED, traps
        if method not in (mad.METHOD_GET, mad.METHOD_SET, mad.METHOD_TRAP_REPRESS):
            return Reply(mad.STATUS_METHOD_UNSUPPORTED, raw[64:128]), traps
        mport = node.ports[0] if node.is_switch else port  # node.management_port(port)
        allowed, hide = _check_m_key(mport, method, m_key, now)
        if not allowed:
            if can_send_trap(mport):
                header = smp if smp is not None else mad.decode_smp(raw)
                traps.append(Trap(mport, bad_m_key_notice(mport, header, return_path)))
            return DROPPED, traps
        if method == mad.METHOD_TRAP_REPRESS:
            return DROPPED, traps  # a TrapRepress is never answered (IBTA 13.4.5)
        handler = HANDLERS.get(attr_id)
        if handler is None:
            return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, raw[64:128]), traps
        req = _Request(self.subnet, node, port, method, attr_mod, raw[64:128], hide, traps)
        reply = handler(req)
        if ctx is None:
            return reply, traps
        data = bytearray(reply.data)
        firmware.smp_reply(ctx, attr_id, data)
        for number, changes in req.changes.items():
            changed_port = node.port(number)
            if changed_port is not None:
                firmware.port_changed(changed_port, PortChange(changes))
        return Reply(reply.status, bytes(data)), traps
