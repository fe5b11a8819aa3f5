"""Performance management (class 0x04): ClassPortInfo and PortCounters.

Offsets from IBTA Vol 1 16.1.3 and 13.4.8.1; libibmad ``fields.c`` (tag v44.0) lines
243-262 (PortCounters) and 383-407 (ClassPortInfo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hcasim.ib import mad
from hcasim.ib.layout import Layout, raw, uint

ATTR_PORT_SAMPLES_CONTROL = 0x0010  # IBTA 16.1.3.2
ATTR_PORT_SAMPLES_RESULT = 0x0011  # IBTA 16.1.3.3
ATTR_PORT_COUNTERS = mad.ATTR_PORT_COUNTERS  # 0x0012, IBTA 16.1.3.5
ATTR_PORT_COUNTERS_EXTENDED = 0x001D  # IBTA 16.1.4.11
ALL_PORTS = 0xFF  # PortSelect 0xFF: all ports of a switch (IBTA 16.1.3.5)

# ClassPortInfo.CapabilityMask bits for PerfMgt (IBTA 16.1.2).
PERF_CAP_ALL_PORT_SELECT = 1 << 8
PERF_CAP_EXTENDED_WIDTH = 1 << 9
PERF_CAP_PORT_XMIT_WAIT = 1 << 12

# PortCounters.CounterSelect bits (IBTA 16.1.3.5; ibsim ``sim.h:145-162``):
# a Set clears the counters whose bit is 1.  Bit 16 is CounterSelect2 bit 0 (XmitWait).
COUNTER_SELECT_BITS: dict[str, int] = {
    "symbol_error_counter": 1 << 0,
    "link_error_recovery_counter": 1 << 1,
    "link_downed_counter": 1 << 2,
    "port_rcv_errors": 1 << 3,
    "port_rcv_remote_physical_errors": 1 << 4,
    "port_rcv_switch_relay_errors": 1 << 5,
    "port_xmit_discards": 1 << 6,
    "port_xmit_constraint_errors": 1 << 7,
    "port_rcv_constraint_errors": 1 << 8,
    "local_link_integrity_errors": 1 << 9,
    "excessive_buffer_overrun_errors": 1 << 10,
    "vl15_dropped": 1 << 11,
    "port_xmit_data": 1 << 12,
    "port_rcv_data": 1 << 13,
    "port_xmit_pkts": 1 << 14,
    "port_rcv_pkts": 1 << 15,
    "port_xmit_wait": 1 << 16,
}


@dataclass(slots=True)
class ClassPortInfo(Layout):
    """ClassPortInfo, attribute 0x0001 of every GSI class (IBTA 13.4.8.1)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_CLASS_PORT_INFO
    SIZE: ClassVar[int] = 72
    base_version: int = uint(0, 8, "BaseVersion")
    class_version: int = uint(8, 8, "ClassVersion")
    capability_mask: int = uint(16, 16, "CapabilityMask")
    capability_mask2: int = uint(32, 27, "CapabilityMask2")
    resp_time_value: int = uint(59, 5, "RespTimeVal")
    redirect_gid: bytes = raw(8, 16, "RedirectGID")
    redirect_tc: int = uint(192, 8, "RedirectTC")
    redirect_sl: int = uint(200, 4, "RedirectSL")
    redirect_fl: int = uint(204, 20, "RedirectFL")
    redirect_lid: int = uint(224, 16, "RedirectLID")
    redirect_pkey: int = uint(240, 16, "RedirectPKey")
    redirect_qp: int = uint(264, 24, "RedirectQP")
    redirect_qkey: int = uint(288, 32, "RedirectQKey")
    trap_gid: bytes = raw(40, 16, "TrapGID")
    trap_tc: int = uint(448, 8, "TrapTC")
    trap_sl: int = uint(456, 4, "TrapSL")
    trap_fl: int = uint(460, 20, "TrapFL")
    trap_lid: int = uint(480, 16, "TrapLID")
    trap_pkey: int = uint(496, 16, "TrapPKey")
    trap_hl: int = uint(512, 8, "TrapHL")
    trap_qp: int = uint(520, 24, "TrapQP")
    trap_qkey: int = uint(544, 32, "TrapQKey")


@dataclass(slots=True)
class PortCounters(Layout):
    """PortCounters, PerfMgt attribute 0x0012 (IBTA 16.1.3.5)."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_COUNTERS
    SIZE: ClassVar[int] = 44
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    symbol_error_counter: int = uint(32, 16, "SymbolErrorCounter")
    link_error_recovery_counter: int = uint(48, 8, "LinkErrorRecoveryCounter")
    link_downed_counter: int = uint(56, 8, "LinkDownedCounter")
    port_rcv_errors: int = uint(64, 16, "PortRcvErrors")
    port_rcv_remote_physical_errors: int = uint(80, 16, "PortRcvRemotePhysicalErrors")
    port_rcv_switch_relay_errors: int = uint(96, 16, "PortRcvSwitchRelayErrors")
    port_xmit_discards: int = uint(112, 16, "PortXmitDiscards")
    port_xmit_constraint_errors: int = uint(128, 8, "PortXmitConstraintErrors")
    port_rcv_constraint_errors: int = uint(136, 8, "PortRcvConstraintErrors")
    counter_select2: int = uint(144, 8, "CounterSelect2")
    local_link_integrity_errors: int = uint(152, 4, "LocalLinkIntegrityErrors")
    excessive_buffer_overrun_errors: int = uint(156, 4, "ExcessiveBufferOverrunErrors")
    vl15_dropped: int = uint(176, 16, "VL15Dropped")  # bits 160-175 reserved
    port_xmit_data: int = uint(192, 32, "PortXmitData")
    port_rcv_data: int = uint(224, 32, "PortRcvData")
    port_xmit_pkts: int = uint(256, 32, "PortXmitPkts")
    port_rcv_pkts: int = uint(288, 32, "PortRcvPkts")
    port_xmit_wait: int = uint(320, 32, "PortXmitWait")


COUNTER_NAMES: tuple[str, ...] = tuple(COUNTER_SELECT_BITS)
"""The counter fields of :class:`PortCounters`, in CounterSelect bit order."""


def counter_limit(name: str) -> int:
    """The saturation value of a PortCounters counter: all ones in its width (IBTA 16.1.3.5:
    counters stop at their maximum rather than wrap)."""
    for spec in PortCounters.field_specs():
        if spec.name == name:
            return (1 << spec.width) - 1
    raise KeyError(name)
