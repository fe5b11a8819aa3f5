"""Performance management (class 0x04): ClassPortInfo, PortCounters, the sampling
attributes and the optional counter attributes perfquery and ibqueryerrors ask for.

Offsets from IBTA Vol 1 16.1.3, 16.1.4 and 13.4.8.1; libibmad ``fields.c`` (tag v44.0):
PortCounters, ClassPortInfo, PortSamplesControl and PortSamplesResult (docs/sources.md
§22.1), the "Extended port counters" table, PortXmitDataSL / PortRcvDataSL,
PortXmitDiscardDetails, PortRcvErrorDetails, PortOpRcvCounters, PortFlowCtlCounters and
the PortVL* tables.  Every counter attribute here carries
PortSelect in bits 8-15 and a 16-bit CounterSelect in bits 16-31 (what infiniband-diags'
``performance_reset_via`` writes); the counters follow.  The two sampling attributes have
layouts of their own.
"""

from __future__ import annotations

from typing import ClassVar

from hcasim.ib import mad
from hcasim.ib.layout import Layout, array, raw, uint

ATTR_PORT_SAMPLES_CONTROL = 0x0010  # IBTA 16.1.3.2
ATTR_PORT_SAMPLES_RESULT = 0x0011  # IBTA 16.1.3.3
ATTR_PORT_COUNTERS = mad.ATTR_PORT_COUNTERS  # 0x0012, IBTA 16.1.3.5
ATTR_PORT_RCV_ERROR_DETAILS = 0x0015  # IBTA 16.1.4.1
ATTR_PORT_XMIT_DISCARD_DETAILS = 0x0016  # IBTA 16.1.4.2
ATTR_PORT_OP_RCV_COUNTERS = 0x0017  # IBTA 16.1.4.3
ATTR_PORT_FLOW_CTL_COUNTERS = 0x0018  # IBTA 16.1.4.4
ATTR_PORT_VL_OP_PACKETS = 0x0019  # IBTA 16.1.4.5
ATTR_PORT_VL_OP_DATA = 0x001A  # IBTA 16.1.4.6
ATTR_PORT_VL_XMIT_FLOW_CTL_UPDATE_ERRORS = 0x001B  # IBTA 16.1.4.7
ATTR_PORT_VL_XMIT_WAIT_COUNTERS = 0x001C  # IBTA 16.1.4.8
ATTR_PORT_COUNTERS_EXTENDED = 0x001D  # IBTA 16.1.4.11
ATTR_PORT_XMIT_DATA_SL = 0x0036  # IBTA 16.1.4.9
ATTR_PORT_RCV_DATA_SL = 0x0037  # IBTA 16.1.4.10
ALL_PORTS = 0xFF  # PortSelect 0xFF: all ports of a switch (IBTA 16.1.3.5)

# ClassPortInfo.CapabilityMask bits for PerfMgt (IBTA 16.1.2).
PERF_CAP_ALL_PORT_SELECT = 1 << 8
PERF_CAP_EXTENDED_WIDTH = 1 << 9
PERF_CAP_PORT_XMIT_WAIT = 1 << 12

# PortSamplesControl.CounterSelectN codes of the mandatory sampled quantities (IBTA
# 16.1.3.2; the values Linux's qib PMA and OpenSM's ib_types.h name, docs/sources.md §22.2).
SAMPLE_XMIT_DATA = 0x0001
SAMPLE_RCV_DATA = 0x0002
SAMPLE_XMIT_PKTS = 0x0003
SAMPLE_RCV_PKTS = 0x0004
SAMPLE_XMIT_WAIT = 0x0005
SAMPLE_MANDATORY = (SAMPLE_XMIT_DATA, SAMPLE_RCV_DATA, SAMPLE_XMIT_PKTS, SAMPLE_RCV_PKTS,
                    SAMPLE_XMIT_WAIT)
# PortSamplesControl / PortSamplesResult SampleStatus (docs/sources.md §22.2)
SAMPLE_STATUS_DONE = 0  # no sample pending or running; the result holds the last one
SAMPLE_STATUS_STARTED = 1  # a Set started a sample; its SampleStart delay has not passed
SAMPLE_STATUS_RUNNING = 2  # counting, until SampleInterval ticks have passed
SAMPLE_COUNTERS = 15  # CounterSelect0-14, Counter0-14
COUNTER_WIDTH_32 = 4  # CounterWidth code of 32-bit counters (docs/sources.md §22.2)

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


class PortSamplesControl(Layout):
    """PortSamplesControl, PerfMgt attribute 0x0010 (IBTA 16.1.3.2): the PMA's sampling
    mechanism, what it can count and the sample a Set started (libibmad ``IB_PSC_*``).
    CounterMaskN is 3 bits per counter: mask 0 at bit 34, 1-9 after it, 10-14 from bit 65
    (bit 64 is reserved)."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_SAMPLES_CONTROL
    SIZE: ClassVar[int] = 80
    op_code: int = uint(0, 8, "OpCode")
    port_select: int = uint(8, 8, "PortSelect")
    tick: int = uint(16, 8, "Tick")
    counter_width: int = uint(29, 3, "CounterWidth")
    counter_masks: tuple[int, ...] = array(34, 10, 3, ref="CounterMask0+CounterMasks1to9")
    counter_masks_10_14: tuple[int, ...] = array(65, 5, 3, ref="CounterMasks10to14")
    sample_mechanisms: int = uint(80, 8, "SampleMechanisms")
    sample_status: int = uint(94, 2, "SampleStatus")
    option_mask: int = uint(96, 64, "OptionMask")
    vendor_mask: int = uint(160, 64, "VendorMask")
    sample_start: int = uint(224, 32, "SampleStart")
    sample_interval: int = uint(256, 32, "SampleInterval")
    tag: int = uint(288, 16, "Tag")
    counter_select: tuple[int, ...] = array(
        304, SAMPLE_COUNTERS, 16, ref="+".join(f"CounterSelect{i}" for i in range(15)))
    samples_only_option_mask: int = uint(576, 64, "SamplesOnlyOptionMask")


class PortSamplesResult(Layout):
    """PortSamplesResult, PerfMgt attribute 0x0011 (IBTA 16.1.3.3): what each counter
    counted during the last sample (libibmad ``IB_PSR_*``)."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_SAMPLES_RESULT
    SIZE: ClassVar[int] = 64
    tag: int = uint(0, 16, "Tag")
    sample_status: int = uint(30, 2, "SampleStatus")
    counters: tuple[int, ...] = array(
        32, SAMPLE_COUNTERS, 32, ref="+".join(f"Counter{i}" for i in range(15)))


class PortCountersExtended(Layout):
    """PortCountersExtended, attribute 0x001D (IBTA 16.1.4.11): 64-bit data and packet
    counters.  CounterSelect bit i clears the i-th counter field below."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_COUNTERS_EXTENDED
    SIZE: ClassVar[int] = 72
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    port_xmit_data: int = uint(64, 64, "PortXmitData")
    port_rcv_data: int = uint(128, 64, "PortRcvData")
    port_xmit_pkts: int = uint(192, 64, "PortXmitPkts")
    port_rcv_pkts: int = uint(256, 64, "PortRcvPkts")
    port_unicast_xmit_pkts: int = uint(320, 64, "PortUnicastXmitPkts")
    port_unicast_rcv_pkts: int = uint(384, 64, "PortUnicastRcvPkts")
    port_multicast_xmit_pkts: int = uint(448, 64, "PortMulticastXmitPkts")
    port_multicast_rcv_pkts: int = uint(512, 64, "PortMulticastRcvPkts")


class PortXmitDataSL(Layout):
    """PortXmitDataSL, attribute 0x0036 (IBTA 16.1.4.9): data sent per SL, in 4-byte words."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_XMIT_DATA_SL
    SIZE: ClassVar[int] = 68
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    data_sl: tuple[int, ...] = array(32, 16, 32, ref="XmtDataSL0")


class PortRcvDataSL(Layout):
    """PortRcvDataSL, attribute 0x0037 (IBTA 16.1.4.10): data received per SL."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_RCV_DATA_SL
    SIZE: ClassVar[int] = 68
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    data_sl: tuple[int, ...] = array(32, 16, 32, ref="RcvDataSL0")


class PortRcvErrorDetails(Layout):
    """PortRcvErrorDetails, attribute 0x0015 (IBTA 16.1.4.1): why packets were refused."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_RCV_ERROR_DETAILS
    SIZE: ClassVar[int] = 16
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    port_local_physical_errors: int = uint(32, 16, "PortLocalPhysicalErrors")
    port_malformed_packet_errors: int = uint(48, 16, "PortMalformedPktErrors")
    port_buffer_overrun_errors: int = uint(64, 16, "PortBufferOverrunErrors")
    port_dlid_mapping_errors: int = uint(80, 16, "PortDLIDMappingErrors")
    port_vl_mapping_errors: int = uint(96, 16, "PortVLMappingErrors")
    port_looping_errors: int = uint(112, 16, "PortLoopingErrors")


class PortXmitDiscardDetails(Layout):
    """PortXmitDiscardDetails, attribute 0x0016 (IBTA 16.1.4.2): why packets were not sent."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_XMIT_DISCARD_DETAILS
    SIZE: ClassVar[int] = 12
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    port_inactive_discards: int = uint(32, 16, "PortInactiveDiscards")
    port_neighbor_mtu_discards: int = uint(48, 16, "PortNeighborMTUDiscards")
    port_sw_lifetime_limit_discards: int = uint(64, 16, "PortSwLifetimeLimitDiscards")
    port_sw_hoq_lifetime_limit_discards: int = uint(80, 16, "PortSwHOQLifetimeLimitDiscards")


class PortOpRcvCounters(Layout):
    """PortOpRcvCounters, attribute 0x0017 (IBTA 16.1.4.3): packets and data received."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_OP_RCV_COUNTERS
    SIZE: ClassVar[int] = 12
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    port_op_rcv_pkts: int = uint(32, 32, "PortOpRcvPkts")
    port_op_rcv_data: int = uint(64, 32, "PortOpRcvData")


class PortFlowCtlCounters(Layout):
    """PortFlowCtlCounters, attribute 0x0018 (IBTA 16.1.4.4): flow-control packets."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_FLOW_CTL_COUNTERS
    SIZE: ClassVar[int] = 12
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    port_xmit_flow_pkts: int = uint(32, 32, "PortXmitFlowPkts")
    port_rcv_flow_pkts: int = uint(64, 32, "PortRcvFlowPkts")


class PortVLOpPackets(Layout):
    """PortVLOpPackets, attribute 0x0019 (IBTA 16.1.4.5): packets received per VL."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_VL_OP_PACKETS
    SIZE: ClassVar[int] = 36
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    packets: tuple[int, ...] = array(32, 16, 16, ref="PortVLOpPackets0")


class PortVLOpData(Layout):
    """PortVLOpData, attribute 0x001A (IBTA 16.1.4.6): data received per VL."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_VL_OP_DATA
    SIZE: ClassVar[int] = 68
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    data: tuple[int, ...] = array(32, 16, 32, ref="PortVLOpData0")


class PortVLXmitFlowCtlUpdateErrors(Layout):
    """PortVLXmitFlowCtlUpdateErrors, attribute 0x001B (IBTA 16.1.4.7): 2 bits per VL."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_VL_XMIT_FLOW_CTL_UPDATE_ERRORS
    SIZE: ClassVar[int] = 8
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    errors: tuple[int, ...] = array(32, 16, 2, ref="PortVLXmitFlowCtlUpdateErrors0")


class PortVLXmitWaitCounters(Layout):
    """PortVLXmitWaitCounters, attribute 0x001C (IBTA 16.1.4.8): ticks waiting per VL."""

    ATTR_ID: ClassVar[int] = ATTR_PORT_VL_XMIT_WAIT_COUNTERS
    SIZE: ClassVar[int] = 36
    port_select: int = uint(8, 8, "PortSelect")
    counter_select: int = uint(16, 16, "CounterSelect")
    wait: tuple[int, ...] = array(32, 16, 16, ref="PortVLXmitWait0")


COUNTER_NAMES: tuple[str, ...] = tuple(COUNTER_SELECT_BITS)
"""The counter fields of :class:`PortCounters`, in CounterSelect bit order."""


def counter_limit(name: str) -> int:
    """The saturation value of a PortCounters counter: all ones in its width (IBTA 16.1.3.5:
    counters stop at their maximum rather than wrap)."""
    for spec in PortCounters.field_specs():
        if spec.name == name:
            return (1 << spec.width) - 1
    raise KeyError(name)
