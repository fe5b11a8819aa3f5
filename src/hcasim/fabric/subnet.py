"""Run-time state of a fabric: ports, links, switch tables, and what the SM configured.

A :class:`Subnet` is built from a :class:`~hcasim.fabric.topology.Topology` and holds the
volatile state a real subnet holds in its devices: port and link states, LIDs, M_Keys,
forwarding tables, P_Key tables, counters.  It is lost when the lab stops, as on real
hardware.  Nothing here parses MADs (:mod:`hcasim.fabric.sma` does) or does I/O.

Scale: one :class:`PortState` per port with ``__slots__``; tables a Subnet Manager may
never touch (P_Keys beyond the default, SL-to-VL, VL arbitration, alias GUIDs, counters,
multicast) are allocated on first write, and a switch's linear forwarding table grows only
up to the highest block written.

Defaults follow ibsim 0.10's templates where the IBTA leaves a value to the device
(``ibsim/sim_net.c:76-176``), so OpenSM sees what it sees under ibsim.

The firmware seam
-----------------

The seam between the fabric and a device's firmware model.

Every node has a :class:`NodeFirmware`.  The base class is a plain IBTA device: it lets
everything through and adds nothing, so the standard subnet management agent (SMA) of
:mod:`hcasim.fabric.sma` answers SMPs exactly as the specification says.  A device model
(for example the ConnectX-3 Secure Host firmware, which owns QP0 when its key is active)
subclasses it and overrides the hooks it needs:

``host_send``
    a MAD leaves the host through this node (a client attached here injects it): let it
    out or swallow it (the SMP firewall drops SMPs the host sends, and the host's MAD
    layer sees them time out: ``Action.TIMED_OUT``);
``smp_received``
    an SMP reaches this node's SMA, before the standard SMA sees it: pass it on, drop it,
    or answer it with the firmware's own status and data (e.g. refuse a GUIDInfo Set that
    would change GUID0);
``smp_reply``
    edit the data of a reply the standard SMA produced (e.g. hide the M_Key from the host);
``mad_received``
    a MAD of a class the SMA and PMA do not serve (vendor classes such as Mellanox
    ConfigSpaceAccess 0x0A/0x09) reaches this node: answer it with a whole MAD, or return
    ``None`` to let it go on to a client attached here (the SM, for SA) or bounce;
``port_changed``
    the SMA changed port configuration (what mlx4 firmware reports to its driver as a
    PORT_MNG_CHG event, docs/sources.md §9.3).

The hooks receive a :class:`MadContext` that says where the MAD arrived and whether it
came from this node's own host (``from_host``), which is what a firewall decides on.
Hooks must not raise for malformed input they do not understand: return ``Action.PASS``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from hcasim.fabric.topology import Node, NodeKind, PortRef, Topology
from hcasim.ib import smp_attrs
from hcasim.ib.mad import (
    CLASS_SUBN_DIRECTED_ROUTE,
    CLASS_SUBN_LID_ROUTED,
    DrSmp,
    MadHeader,
    Smp,
)

# -- device constants (documented choices; sources given) ----------------------------------

# LinkWidth/Speed/SpeedExtSupported: what the net file enables on a port describes its
# hardware, so the Supported masks are the file's enabled masks and an SM that enables
# "everything supported" leaves a 4xEDR link at 4xEDR.  (ibsim reports fixed masks, 1x-12x,
# SDR-QDR and FDR-HDR, update_portinfo sim_net.c:1262-1284; a documented difference.)
# CapabilityMask of a CA port: IsTrap, IsSLMapping, IsExtendedSpeeds, IsCapabilityMask2,
# IsVendorClass, IsCapabilityMaskNotice (ibsim hcaport template bytes 20-23, 0x0050C048);
# switch port 0: 0x0000C048 (smaport template); external switch ports have none.
CA_CAPABILITY_MASK: Final = 0x0050C048
SWITCH_PORT0_CAPABILITY_MASK: Final = 0x0000C048
# CapabilityMask2 0x0030 (IsLinkWidth2xSupported, IsLinkSpeedHDRSupported) on CA ports and
# switch port 0 (templates bytes 60-61).
CAPABILITY_MASK2: Final = 0x0030
# M_KeyLeasePeriod 4089 s on CA ports and switch port 0 (templates bytes 26-27).
DEFAULT_M_KEY_LEASE_PERIOD: Final = 4089
# MTUCap 4 (2048) on CA and external switch ports, 3 (1024) on switch port 0; NeighborMTU 4
# (1 on switch port 0);
# VLCap 4 (VL0-7); VL arbitration caps 8/8; SubnetTimeOut 31 (0 on external switch ports);
# RespTimeValue 8 on switch port 0, else 0; GUIDCap 32 on CA ports and 1 on switch port 0
# (templates bytes 36-52).
MTU_CAP: Final = 4
PORT0_MTU_CAP: Final = 3
NEIGHBOR_MTU: Final = 4
VL_CAP: Final = 4
VL_ARB_CAP: Final = 8
SUBNET_TIMEOUT: Final = 31
PORT0_RESP_TIME_VALUE: Final = 8
CA_GUID_CAP: Final = 32
SWITCH_GUID_CAP: Final = 1
LINK_DOWN_DEFAULT_POLLING: Final = 2
# link-local prefix fe80::/64 (IBTA ch. 4, GID format)
GID_PREFIX_DEFAULT: Final = 0xFE80000000000000
# NodeInfo: PartitionCap 64 (CA) / 8 (switch), Revision 0xA1 (templates, sim_net.c:142-162).
CA_PARTITION_CAP: Final = 64
SWITCH_PARTITION_CAP: Final = 8
NODE_REVISION: Final = 0xA1
# SwitchInfo: 48K linear FDB entries cover every unicast LID (0x0000-0xBFFF; ibsim HEAD
# uses 48K, 0.10 30K); 1024 multicast entries (ibsim MAXMCASTCAP); PartitionEnforcementCap
# 64; FilterRawInbound/OutboundCap set (switchinfo template byte 16 = 0x30).
LINEAR_FDB_CAP: Final = 0xC000
MULTICAST_FDB_CAP: Final = 1024
PARTITION_ENFORCEMENT_CAP: Final = 64
MULTICAST_LID_BASE: Final = 0xC000  # multicast LIDs 0xC000-0xFFFE (IBTA ch. 4, LID ranges)
MAX_UNICAST_LID: Final = 0xBFFF
DEFAULT_PKEY: Final = 0xFFFF  # full-membership default partition (IBTA 10.9), ibsim sim_net.c:632
# SLtoVL default: SL n -> VL n, SL15 -> VL7 (ibsim default_sl2vl, sim_net.c:164-166).
DEFAULT_SL2VL = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 7)
# VL arbitration defaults (ibsim default_vlarb_high/low, sim_net.c:168-176): (VL, weight).
DEFAULT_VLARB_HIGH = ((0, 4),) + tuple((vl, 0) for vl in range(1, 15))
DEFAULT_VLARB_LOW = ((0, 0),) + tuple((vl, 4) for vl in range(1, 15))


def highest_common(mask: int, order: tuple[int, ...]) -> int:
    """The first bit of ``order`` present in ``mask``, 0 if none."""
    for bit in order:
        if mask & bit:
            return bit
    return 0


# Preference order when two ends negotiate (ibsim get_active_*, sim_net.c:1184-1258).
WIDTH_ORDER = (0x08, 0x04, 0x02, 0x10, 0x01)  # 12x, 8x, 4x, 2x, 1x
SPEED_ORDER = (0x4, 0x2, 0x1)  # QDR, DDR, SDR
EXT_SPEED_ORDER = (0x4, 0x2, 0x1)  # HDR, EDR, FDR


def supported_width(widths: int) -> int:
    """LinkWidthSupported of a port that can run ``widths``: one of IBTA's encodings
    (14.2.5.6: 1 = 1x, 3 = 1x/4x, 7 = 1x/4x/8x, 11 = 1x/4x/12x, 15, and with 2x 17, 19,
    ...): every port supports 1x, and a port wider than 4x supports 4x too."""
    if widths & 0x0C:  # 8x or 12x
        widths |= 0x02
    return widths | 0x01


def supported_speed(speeds: int) -> int:
    """LinkSpeedSupported of a port that can run ``speeds`` (IBTA 14.2.5.6: 1, 3, 5, 7):
    SDR is always supported."""
    return speeds | 0x1


# -- the firmware seam: what a device model overrides (see the module docstring) -----------


class Action(enum.Enum):
    """What a firmware hook wants done with a MAD."""

    PASS = "pass"  # carry on with the standard behaviour
    DROP = "drop"  # discard silently: the sender sees no reply and times out
    # ``host_send`` only: discard, and the sending host's MAD layer completes the send with
    # ETIMEDOUT, as the kernel does when no response comes (a sim status 110 bounce; what
    # libibmad then prints is the seed's firewalled ``sminfo`` failure)
    TIMED_OUT = "timed out"


@dataclass(frozen=True, slots=True)
class Answer:
    """The firmware answers an SMP itself: MAD ``status`` and the 64-byte SMP data."""

    status: int
    data: bytes = b""


class PortChange(enum.Flag):
    """What a Set changed on a port (mlx4 PORT_MNG_CHG subtypes and PortInfo flags)."""

    NONE = 0
    SM_LID = enum.auto()
    GID_PREFIX = enum.auto()
    LID = enum.auto()
    CLIENT_REREGISTER = enum.auto()
    SM_SL = enum.auto()
    M_KEY = enum.auto()
    PORT_STATE = enum.auto()
    PKEY_TABLE = enum.auto()
    GUID_TABLE = enum.auto()
    SL2VL_TABLE = enum.auto()


class MadContext:
    """Where a MAD is: the node and port it reached, and who sent it.

    ``port`` is the ingress port at ``node`` (for ``host_send``: the port the sending
    client is attached to); ``from_host`` is true when the sender is a client attached
    to this same node; ``now`` is the caller's monotonic clock in seconds.  ``raw`` is the
    256-byte MAD; ``mad`` is its header decoded (a :class:`DrSmp`, :class:`Smp` or
    :class:`MadHeader` by management class), on first use only, so a hook that needs
    nothing but a byte or two of ``raw`` costs the MAD path nothing more.
    """

    __slots__ = ("node", "port", "raw", "from_host", "now", "_mad")

    def __init__(self, node: NodeState, port: PortState, mad: MadHeader | Smp | DrSmp | None,
                 raw: bytes, from_host: bool, now: float) -> None:
        self.node = node
        self.port = port
        self._mad = mad
        self.raw = raw
        self.from_host = from_host
        self.now = now

    @property
    def mad(self) -> MadHeader | Smp | DrSmp:
        """The decoded header (see the class docstring)."""
        header = self._mad
        if header is None:
            header = self._mad = decode_header(self.raw)
        return header

    @property
    def mgmt_class(self) -> int:
        """MgmtClass (byte 1 of the MAD), without decoding the header."""
        return self.raw[1]

    @property
    def method(self) -> int:
        """Method including the R bit (byte 3), without decoding the header."""
        return self.raw[3]

    @property
    def attr_id(self) -> int:
        """AttributeID (bytes 16-17), without decoding the header."""
        return int.from_bytes(self.raw[16:18], "big")

    @property
    def attr_mod(self) -> int:
        """AttributeModifier (bytes 20-23), without decoding the header."""
        return int.from_bytes(self.raw[20:24], "big")

    def __repr__(self) -> str:
        return (f"MadContext({self.node!r}, {self.port!r}, class {self.raw[1]:#04x}, "
                f"from_host={self.from_host})")


def decode_header(raw: bytes) -> MadHeader | Smp | DrSmp:
    """A MAD decoded as the engine sees it: directed-route SMP (class 0x81), LID-routed SMP
    (0x01) or the common header of any other class."""
    if raw[1] == CLASS_SUBN_DIRECTED_ROUTE:
        return DrSmp.decode(raw)
    if raw[1] == CLASS_SUBN_LID_ROUTED:
        return Smp.decode(raw)
    return MadHeader.decode(raw)


# device models (and tests) subclass it in Python while this module is compiled
@mypyc_attr(allow_interpreted_subclasses=True)
class NodeFirmware:
    """A plain IBTA device: every hook passes.  Subclass to model device firmware."""

    def host_send(self, ctx: MadContext) -> Action:
        """A MAD is leaving through this node from its host; ``DROP`` swallows it."""
        return Action.PASS

    def smp_received(self, ctx: MadContext) -> Action | Answer:
        """An SMP reached this node's SMA; ``PASS`` hands it to the standard SMA."""
        return Action.PASS

    def smp_reply(self, ctx: MadContext, attr_id: int, data: bytearray) -> None:
        """Edit the 64-byte data of the standard SMA's reply in place (default: none)."""

    def mad_received(self, ctx: MadContext) -> bytes | None:
        """A MAD of a class the SMA/PMA do not serve reached this node.

        Return a whole 256-byte response MAD to answer it, or ``None`` to leave it to a
        client attached at the port (or bounce it when there is none).
        """
        return None

    def port_changed(self, port: PortState, changes: PortChange) -> None:
        """The SMA changed port configuration (called after the change)."""


# -- run-time state -------------------------------------------------------------------------


class PortSamples:
    """The sampling mechanism of one PMA (PortSamplesControl, IBTA 16.1.3.2): what the
    last Set that started a sample asked for, and where that sample is.  Kept on the port
    whose PMA answers (a CA port, a switch's port 0), in memory like the counters; the
    behaviour is :mod:`hcasim.fabric.pma`'s.

    ``ports`` are the ports PortSelect named; ``starts_at`` and ``ends_at`` are times on
    the engine's clock (seconds); ``base`` holds what each selected quantity read when the
    sample started, ``result`` what each counted by its end.
    """

    __slots__ = ("port_select", "sample_start", "sample_interval", "tag", "counter_select",
                 "status", "starts_at", "ends_at", "ports", "base", "result")

    def __init__(self, port_select: int, counter_select: tuple[int, ...]) -> None:
        self.port_select = port_select
        self.sample_start = 0
        self.sample_interval = 0
        self.tag = 0
        self.counter_select = counter_select
        self.status = 0  # IBTA SampleStatus: done (nothing pending)
        self.starts_at = 0.0
        self.ends_at = 0.0
        self.ports: list[PortState] = []
        self.base: list[int] = []
        self.result: tuple[int, ...] = (0,) * len(counter_select)



class PortState:
    """One port: link state, addressing, M_Key protection, and lazily allocated tables."""

    __slots__ = (
        "node", "number", "guid", "peer", "lid", "lmc", "sm_lid", "sm_sl", "gid_prefix",
        "state", "phys_state", "link_down_default", "width_supported", "width_enabled",
        "width_active", "speed_supported", "speed_enabled", "speed_active",
        "ext_speed_supported", "ext_speed_enabled", "ext_speed_active",
        "capability_mask", "capability_mask2", "m_key", "m_key_protect_bits",
        "m_key_lease_period", "m_key_lease_deadline", "m_key_violations", "p_key_violations",
        "q_key_violations", "neighbor_mtu", "mtu_cap", "vl_cap", "operational_vls",
        "vl_high_limit", "hoq_life", "vl_stall_count", "subnet_timeout", "resp_time_value",
        "guid_cap",
        "partition_enforcement", "alias_guids", "pkeys", "sl2vl", "vlarb", "counters",
        "perf_marks", "samples", "fault", "link_failed",
    )

    def __init__(self, node: NodeState, number: int, guid: int, width: int, speed: int,
                 ext_speed: int, lid: int, lmc: int) -> None:
        is_switch = node.is_switch
        port0 = is_switch and number == 0
        self.node = node
        self.number = number
        self.guid = guid
        self.peer: PortState | None = None
        self.lid = lid
        self.lmc = lmc
        self.sm_lid = 0
        self.sm_sl = 0
        self.gid_prefix = GID_PREFIX_DEFAULT
        self.state = smp_attrs.PORT_STATE_ACTIVE if port0 else smp_attrs.PORT_STATE_DOWN
        self.phys_state = smp_attrs.PHYS_LINK_UP if port0 else smp_attrs.PHYS_POLLING
        self.link_down_default = LINK_DOWN_DEFAULT_POLLING
        self.width_supported = self.width_enabled = width
        self.width_active = 0x02  # 4x until trained (ibsim init_ports)
        self.speed_supported = self.speed_enabled = speed
        self.speed_active = 0x1
        self.ext_speed_supported = self.ext_speed_enabled = ext_speed
        self.ext_speed_active = 0
        if port0:
            self.capability_mask = SWITCH_PORT0_CAPABILITY_MASK
        else:
            self.capability_mask = 0 if is_switch else CA_CAPABILITY_MASK
        self.capability_mask2 = 0 if is_switch and not port0 else CAPABILITY_MASK2
        self.m_key = 0
        self.m_key_protect_bits = 0
        self.m_key_lease_period = 0 if is_switch and not port0 else DEFAULT_M_KEY_LEASE_PERIOD
        self.m_key_lease_deadline: float | None = None
        self.m_key_violations = 0
        self.p_key_violations = 0
        self.q_key_violations = 0
        self.neighbor_mtu = 1 if port0 else NEIGHBOR_MTU
        self.mtu_cap = PORT0_MTU_CAP if port0 else MTU_CAP
        self.vl_cap = VL_CAP
        self.operational_vls = VL_CAP
        self.vl_high_limit = 0
        self.hoq_life = 0  # ibsim update_portinfo writes its hoqlife, 0 until set
        self.vl_stall_count = 7 if not port0 else 0
        self.subnet_timeout = 0 if is_switch and not port0 else SUBNET_TIMEOUT
        self.resp_time_value = PORT0_RESP_TIME_VALUE if port0 else 0
        self.guid_cap = (SWITCH_GUID_CAP if port0 else 0) if is_switch else CA_GUID_CAP
        self.partition_enforcement = 0  # inbound, outbound, filter raw in/out (4 bits)
        self.alias_guids: list[int] | None = None
        self.pkeys: list[int] | None = None
        self.sl2vl: dict[int, tuple[int, ...]] | None = None
        self.vlarb: dict[int, tuple[tuple[int, int], ...]] | None = None
        self.counters: list[int] | None = None
        # what each optional PMA counter read at its last reset (hcasim.fabric.pma)
        self.perf_marks: dict[str, int] | None = None
        # the sampling state of the PMA at this port (PortSamplesControl); None: never set
        self.samples: PortSamples | None = None
        # error rates an operator injected (hcasim fault port); None: a healthy port
        self.fault: PortFault | None = None
        self.link_failed = False  # hcasim fault link: does not train until restored

    def __repr__(self) -> str:
        return f"<PortState {self.node.id!r}[{self.number}] lid={self.lid} state={self.state}>"

    @property
    def ref(self) -> PortRef:
        """This port as a :class:`PortRef`."""
        return PortRef(self.node.id, self.number)

    @property
    def is_management_port(self) -> bool:
        """Switch port 0, whose SMA answers for the whole switch."""
        return self.number == 0 and self.node.is_switch

    @property
    def link_up(self) -> bool:
        """PortPhysicalState is LinkUp (a cable, both ends enabled and trained)."""
        return self.phys_state == smp_attrs.PHYS_LINK_UP

    def covers_lid(self, lid: int) -> bool:
        """Whether ``lid`` is one of this port's LIDs (LID .. LID + 2^LMC - 1)."""
        base = self.lid
        return base != 0 and base <= lid < base + (1 << self.lmc)

    @property
    def pkey_capacity(self) -> int:
        """P_Key table size: PartitionCap, or PartitionEnforcementCap for switch ports
        other than port 0 (IBTA 14.2.5.7; ibsim do_pkeytbl)."""
        if self.node.is_switch:
            return PARTITION_ENFORCEMENT_CAP if self.number else SWITCH_PARTITION_CAP
        return CA_PARTITION_CAP

    def pkey_table(self) -> list[int]:
        """The P_Key table, allocated on first use with P_Key[0] = 0xFFFF."""
        if self.pkeys is None:
            self.pkeys = [0] * self.pkey_capacity
            self.pkeys[0] = DEFAULT_PKEY
        return self.pkeys

    def guid_table(self) -> list[int]:
        """GUIDInfo entries (GUIDCap of them), entry 0 = the port GUID."""
        if self.alias_guids is None:
            self.alias_guids = [0] * self.guid_cap
            if self.guid_cap:
                self.alias_guids[0] = self.guid
        return self.alias_guids


class SwitchState:
    """SwitchInfo state and forwarding tables of one switch."""

    __slots__ = ("linear_fdb", "linear_fdb_top", "multicast_fdb", "multicast_fdb_top",
                 "default_port", "default_mcast_primary", "default_mcast_not_primary",
                 "life_time_value", "port_state_change", "enhanced_port0", "lids_per_port")

    def __init__(self, enhanced_port0: bool) -> None:
        self.linear_fdb = bytearray()  # grows to the highest block written; missing = 0xFF
        self.linear_fdb_top = 0
        self.multicast_fdb: dict[tuple[int, int], tuple[int, ...]] | None = None
        self.multicast_fdb_top = 0
        self.default_port = 0
        self.default_mcast_primary = 0
        self.default_mcast_not_primary = 0
        self.life_time_value = 0
        self.port_state_change = 0
        self.enhanced_port0 = enhanced_port0
        self.lids_per_port = 0

    def lft_lookup(self, lid: int) -> int:
        """Egress port for ``lid``, 0xFF if none (above LinearFDBTop or never written)."""
        if lid > self.linear_fdb_top or lid >= len(self.linear_fdb):
            return 0xFF
        return self.linear_fdb[lid]

    def lft_block(self, block: int) -> bytes:
        """The 64 entries of LFT block ``block`` (0xFF where never written)."""
        start = block * 64
        chunk = bytes(self.linear_fdb[start:start + 64])
        return chunk + b"\xff" * (64 - len(chunk))

    def set_lft_block(self, block: int, ports: bytes) -> None:
        """Store block ``block``, growing the table only as far as needed."""
        start = block * 64
        if len(self.linear_fdb) < start + 64:
            self.linear_fdb.extend(b"\xff" * (start + 64 - len(self.linear_fdb)))
        self.linear_fdb[start:start + 64] = ports


class NodeState:
    """One node's run-time state: its ports, switch state and firmware hook."""

    __slots__ = ("spec", "id", "kind", "is_switch", "guid", "ports", "switch", "firmware",
                 "description", "by_number", "silent")

    def __init__(self, spec: Node, firmware: NodeFirmware | None = None) -> None:
        self.spec = spec
        self.id = spec.id
        self.kind = spec.kind
        self.is_switch = spec.kind is NodeKind.SWITCH
        self.guid = spec.guid
        self.description = spec.description
        self.switch = SwitchState(bool(spec.enhanced_port0)) if self.is_switch else None
        self.firmware = firmware if firmware is not None else NodeFirmware()
        self.silent = False  # hcasim fault node: its agents answer nothing
        self.ports = [PortState(self, p.number, p.guid, p.width_enabled, p.speed_enabled,
                                p.ext_speed_enabled, p.lid, p.lmc) for p in spec.ports]
        # What the node's hardware can do is what any of its ports was given in the net file
        # (links are tagged per cable, so an unconnected port or switch port 0 has only the
        # defaults); every port reports it as a legal Supported encoding.
        widths = speeds = ext_speeds = 0
        for port in self.ports:
            widths |= port.width_enabled
            speeds |= port.speed_enabled
            ext_speeds |= port.ext_speed_enabled
        for port in self.ports:
            port.width_supported = supported_width(widths)
            port.speed_supported = supported_speed(speeds)
            port.ext_speed_supported = ext_speeds
        # index = port number (a CA has no port 0), for the routing fast path
        self.by_number: tuple[PortState | None, ...] = (
            tuple(self.ports) if self.is_switch else (None, *self.ports))

    def __repr__(self) -> str:
        return f"<NodeState {self.id!r}>"

    @property
    def num_ports(self) -> int:
        """NumPorts (external ports; a switch also has port 0)."""
        return self.spec.num_ports

    def port(self, number: int) -> PortState | None:
        """Port ``number`` or ``None`` if the node has none (never raises)."""
        table = self.by_number
        return table[number] if 0 <= number < len(table) else None

    def management_port(self, ingress: PortState) -> PortState:
        """The port whose M_Key protects an SMP arriving at ``ingress``: switch port 0 for
        a switch (IBTA 14.2.4: only port 0 of a switch has an M_Key), else the port
        itself."""
        return self.ports[0] if self.is_switch else ingress

    @property
    def partition_cap(self) -> int:
        """NodeInfo.PartitionCap."""
        return SWITCH_PARTITION_CAP if self.is_switch else CA_PARTITION_CAP


class Subnet:
    """All nodes of a lab with their run-time state, built from a :class:`Topology`.

    Cabled ports start as ibsim starts them (``link_ports``, ``sim_net.c:1309-1352``):
    PortState Init, PortPhysicalState LinkUp, active width and speed the highest both
    ends enable; uncabled ports are Down/Polling; switch port 0 is Active/LinkUp.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.nodes: list[NodeState] = [NodeState(n) for n in topology.nodes]
        self._by_id = {n.id: n for n in self.nodes}
        self._by_guid: dict[int, PortState] | None = None
        self.trap_tid = 0x0000_0000_4843_0000  # TIDs of traps this subnet originates
        # PMAs whose sample is pending or running, and the engine-clock time of the next
        # start or end among them (inf: none); hcasim.fabric.pma.advance_samples
        self.sampling: list[PortState] = []
        self.sample_due = math.inf
        for a, b in topology.links:
            self.cable(self.port(a), self.port(b))

    # -- lookups ------------------------------------------------------------------------------

    def node(self, node_id: str) -> NodeState:
        """The node with this id; ``KeyError`` if none."""
        return self._by_id[node_id]

    def port(self, ref: PortRef) -> PortState:
        """The port a :class:`PortRef` names; ``KeyError`` if it does not exist."""
        port = self._by_id[ref.node].port(ref.port)
        if port is None:
            raise KeyError(ref)
        return port

    def __iter__(self) -> Iterator[NodeState]:
        return iter(self.nodes)

    def port_by_guid(self, guid: int) -> PortState | None:
        """The port whose port GUID is ``guid`` (switch: port 0)."""
        if self._by_guid is None:
            table: dict[int, PortState] = {}
            for node in self.nodes:
                for port in node.ports:
                    table.setdefault(port.guid, port)
            self._by_guid = table
        return self._by_guid.get(guid)

    def attach_port(self, sim_host: str | None) -> PortState:
        """The port a client with ``SIM_HOST`` attaches to (see Topology.attach_port)."""
        return self.port(self.topology.attach_port(sim_host))

    def set_firmware(self, node_id: str, firmware: NodeFirmware) -> None:
        """Install a device firmware model on a node (see :class:`NodeFirmware`)."""
        self._by_id[node_id].firmware = firmware

    def next_trap_tid(self) -> int:
        """A fresh transaction id for a trap this subnet sends."""
        self.trap_tid = (self.trap_tid + 1) & 0xFFFF_FFFF_FFFF_FFFF
        return self.trap_tid

    # -- links --------------------------------------------------------------------------------

    def cable(self, a: PortState, b: PortState) -> None:
        """Plug a cable between ``a`` and ``b`` and train the link (both ends Init)."""
        a.peer, b.peer = b, a
        self.train(a)

    def train(self, a: PortState) -> list[NodeState]:
        """Bring the link at ``a`` up if both ends are enabled; return switches whose
        port state changed (for PortStateChange and trap 128)."""
        b = a.peer
        if b is None or smp_attrs.PHYS_DISABLED in (a.phys_state, b.phys_state):
            return []
        if a.link_failed or b.link_failed:
            return []  # an injected link failure holds until the operator restores it
        width = highest_common(a.width_enabled & b.width_enabled, WIDTH_ORDER)
        speed = highest_common(a.speed_enabled & b.speed_enabled, SPEED_ORDER)
        if not width or not speed:
            return []  # nothing in common: the link does not train
        ext = highest_common(a.ext_speed_enabled & b.ext_speed_enabled, EXT_SPEED_ORDER)
        for p in (a, b):
            p.phys_state = smp_attrs.PHYS_LINK_UP
            p.state = smp_attrs.PORT_STATE_INIT
            p.width_active, p.speed_active, p.ext_speed_active = width, speed, ext
        return self._mark_changed(a, b)

    def take_down(self, a: PortState, disable: bool = False) -> list[NodeState]:
        """Drop the link at ``a`` (``disable``: PortPhysicalState Disabled at ``a``);
        return switches whose port state changed."""
        b = a.peer
        was_up = a.link_up
        a.state = smp_attrs.PORT_STATE_DOWN
        a.phys_state = smp_attrs.PHYS_DISABLED if disable else smp_attrs.PHYS_POLLING
        if b is not None and b.phys_state != smp_attrs.PHYS_DISABLED:
            b.state = smp_attrs.PORT_STATE_DOWN
            b.phys_state = smp_attrs.PHYS_POLLING
        return self._mark_changed(a, b) if was_up else []

    def uncable(self, a: PortState) -> list[NodeState]:
        """Pull the cable at ``a``: both ends Down/Polling and unconnected."""
        b = a.peer
        changed = self.take_down(a)
        a.phys_state = smp_attrs.PHYS_POLLING
        if b is not None:
            b.peer = None
        a.peer = None
        return changed

    @staticmethod
    def _mark_changed(a: PortState, b: PortState | None) -> list[NodeState]:
        switches = []
        for p in (a, b):
            if p is not None and p.node.switch is not None:
                p.node.switch.port_state_change = 1
                switches.append(p.node)
        return switches

    # -- counters -------------------------------------------------------------------------------

    @staticmethod
    def count_hop(egress: PortState, ingress: PortState) -> None:
        """Count one MAD crossing a link (see :func:`count_hop`)."""
        count_hop(egress, ingress)

    @staticmethod
    def count_error(port: PortState, index: int, detail: int = -1) -> None:
        """Add one to error counter ``index`` of ``port`` (see :func:`count_error`)."""
        count_error(port, index, detail)


def count_hop(egress: PortState, ingress: PortState, vl15: bool = True) -> None:
    """Count one MAD crossing a link: 1 packet and 72 data words (288 bytes / 4) on each
    side (ibsim pc_updated, sim_mad.c:825-860), and the packet in the running total of
    its VL (15 for subnet management packets, 0 for every other MAD).

    Counters are stored unbounded and read through :func:`saturated`, which is what a
    saturating counter shows (IBTA 16.1.3.5)."""
    counters = egress.counters
    if counters is None:
        counters = egress.counters = [0] * COUNTER_COUNT
    counters[XMIT_PKTS] += 1
    counters[XMIT_DATA] += 72
    counters[TOTAL_XMIT_VL15 if vl15 else TOTAL_XMIT_VL0] += 1
    counters = ingress.counters
    if counters is None:
        counters = ingress.counters = [0] * COUNTER_COUNT
    counters[RCV_PKTS] += 1
    counters[RCV_DATA] += 72
    counters[TOTAL_RCV_VL15 if vl15 else TOTAL_RCV_VL0] += 1


def count_error(port: PortState, index: int, detail: int = -1) -> None:
    """Add one to error counter ``index`` of ``port`` and, when ``detail`` is one of the
    ``TOTAL_*`` indexes, to that running total (the detail attributes' cause)."""
    counters = port.counters
    if counters is None:
        counters = port.counters = [0] * COUNTER_COUNT
    counters[index] += 1
    if detail >= 0:
        counters[detail] += 1


def saturated(port: PortState) -> list[int]:
    """The port's counters as PortCounters shows them: each stops at its maximum."""
    if port.counters is None:
        return [0] * len(COUNTER_LIMITS)
    return [min(v, limit) for v, limit in zip(port.counters, COUNTER_LIMITS, strict=False)]


# PortCounters storage: one list per port, in CounterSelect bit order (hcasim.ib.perf).
def _counter_layout() -> tuple[tuple[str, ...], tuple[int, ...]]:
    from hcasim.ib import perf

    return perf.COUNTER_NAMES, tuple(perf.counter_limit(n) for n in perf.COUNTER_NAMES)


COUNTER_FIELDS, COUNTER_LIMITS = _counter_layout()
XMIT_DISCARDS = COUNTER_FIELDS.index("port_xmit_discards")
RCV_SWITCH_RELAY_ERRORS = COUNTER_FIELDS.index("port_rcv_switch_relay_errors")
RCV_ERRORS = COUNTER_FIELDS.index("port_rcv_errors")
XMIT_DATA = COUNTER_FIELDS.index("port_xmit_data")
RCV_DATA = COUNTER_FIELDS.index("port_rcv_data")
XMIT_PKTS = COUNTER_FIELDS.index("port_xmit_pkts")
RCV_PKTS = COUNTER_FIELDS.index("port_rcv_pkts")
# After the PortCounters entries each port's list keeps running totals that no PortCounters
# Set clears: packets per VL and the causes of discards and relay errors.  The optional PMA
# attributes (PortCountersExtended, the per-SL and per-VL counters, the detail attributes)
# are read from them, each against its own reset mark (hcasim.fabric.pma).
TOTAL_XMIT_VL15 = len(COUNTER_LIMITS)
TOTAL_RCV_VL15 = TOTAL_XMIT_VL15 + 1
TOTAL_XMIT_VL0 = TOTAL_XMIT_VL15 + 2
TOTAL_RCV_VL0 = TOTAL_XMIT_VL15 + 3
TOTAL_INACTIVE_DISCARDS = TOTAL_XMIT_VL15 + 4  # sent to a link that was not up / Active
TOTAL_DLID_MAPPING_ERRORS = TOTAL_XMIT_VL15 + 5  # a switch's LFT had no entry for the DLID
TOTAL_LOCAL_PHYSICAL_ERRORS = TOTAL_XMIT_VL15 + 6  # packets received corrupted (injected)
COUNTER_COUNT = TOTAL_XMIT_VL15 + 7
SYMBOL_ERRORS = COUNTER_FIELDS.index("symbol_error_counter")
LINK_DOWNED = COUNTER_FIELDS.index("link_downed_counter")


class PortFault:
    """Errors an operator injects at a port (``hcasim fault port``), each a percentage of
    the MADs that enter the port over its link:

    * ``symbol_rate``: a symbol error is seen (SymbolErrorCounter); the MAD gets through,
      as the link layer's error correction delivers it;
    * ``rcv_error_rate``: the MAD arrives corrupted and is discarded (PortRcvErrors, and
      PortLocalPhysicalErrors in PortRcvErrorDetails);
    * ``drop_rate``: the MAD is lost on the cable without a trace (ibsim's ``Error``
      console command).

    The rates are applied by accumulation, not by chance (rate 25: every fourth MAD), so a
    run is repeatable."""

    __slots__ = ("symbol_rate", "rcv_error_rate", "drop_rate", "_symbol", "_rcv", "_drop")

    def __init__(self, symbol_rate: int = 0, rcv_error_rate: int = 0,
                 drop_rate: int = 0) -> None:
        for rate in (symbol_rate, rcv_error_rate, drop_rate):
            if not 0 <= rate <= 100:
                raise ValueError("rates are percentages, 0 to 100")
        self.symbol_rate = symbol_rate
        self.rcv_error_rate = rcv_error_rate
        self.drop_rate = drop_rate
        self._symbol = self._rcv = self._drop = 0

    def arrives(self, port: PortState) -> str:
        """Account one MAD entering ``port``; return why it is lost, or ``""``."""
        self._symbol += self.symbol_rate
        if self._symbol >= 100:
            self._symbol -= 100
            count_error(port, SYMBOL_ERRORS)
        self._drop += self.drop_rate
        if self._drop >= 100:
            self._drop -= 100
            return "lost on the link (injected drop)"
        self._rcv += self.rcv_error_rate
        if self._rcv >= 100:
            self._rcv -= 100
            count_error(port, RCV_ERRORS, TOTAL_LOCAL_PHYSICAL_ERRORS)
            return "received corrupted (injected receive error)"
        return ""
