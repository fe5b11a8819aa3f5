"""Subnet-management attributes: the 64-byte SMP data of each attribute id.

Bit offsets are IBTA's (IBTA Vol 1 14.2.5, the attribute tables) and equal the first
argument of libibmad's ``BITSOFFS(offset, width)`` in ``rdma-core libibmad/fields.c``
(tag v44.0); each field's ``ref`` is its libibmad name and the line range is given per
attribute.  ``tests/test_ib_fields.py`` checks every offset against that table.
"""

from __future__ import annotations

from typing import ClassVar, Final

from hcasim.ib import mad
from hcasim.ib.layout import Layout, array, raw, text, uint

# -- enumerations used by the fields --------------------------------------------------------

# NodeInfo.NodeType (IBTA 14.2.5.3).
NODE_TYPE_CA: Final = 1
NODE_TYPE_SWITCH: Final = 2
NODE_TYPE_ROUTER: Final = 3

# PortInfo.PortState (IBTA 14.2.5.6).
PORT_STATE_NO_CHANGE: Final = 0
PORT_STATE_DOWN: Final = 1
PORT_STATE_INIT: Final = 2
PORT_STATE_ARMED: Final = 3
PORT_STATE_ACTIVE: Final = 4

# PortInfo.PortPhysicalState (IBTA 14.2.5.6).
PHYS_NO_CHANGE: Final = 0
PHYS_SLEEP: Final = 1
PHYS_POLLING: Final = 2
PHYS_DISABLED: Final = 3
PHYS_PORT_CONFIGURATION_TRAINING: Final = 4
PHYS_LINK_UP: Final = 5
PHYS_LINK_ERROR_RECOVERY: Final = 6
PHYS_PHY_TEST: Final = 7

# PortInfo.CapabilityMask bits (IBTA 14.2.5.6; names as libibmad dump.c
# mad_dump_portcapmask prints them).
CAP_IS_SM = 1 << 1
CAP_IS_NOTICE_SUPPORTED = 1 << 2
CAP_IS_TRAP_SUPPORTED = 1 << 3
CAP_IS_AUTOMATIC_MIGRATION_SUPPORTED = 1 << 5
CAP_IS_SL_MAPPING_SUPPORTED = 1 << 6
CAP_IS_SM_DISABLED = 1 << 10
CAP_IS_SYSTEM_IMAGE_GUID_SUPPORTED = 1 << 11
CAP_IS_EXTENDED_SPEEDS_SUPPORTED = 1 << 14
CAP_IS_CAPABILITY_MASK2_SUPPORTED = 1 << 15
CAP_IS_COMMUNICATION_MANAGEMENT_SUPPORTED = 1 << 16
CAP_IS_DEVICE_MANAGEMENT_SUPPORTED = 1 << 19
CAP_IS_VENDOR_CLASS_SUPPORTED = 1 << 20
CAP_IS_DR_NOTICE_SUPPORTED = 1 << 21
CAP_IS_CAPABILITY_MASK_NOTICE_SUPPORTED = 1 << 22
CAP_IS_CLIENT_REREGISTRATION_SUPPORTED = 1 << 25

# Notice (IBTA 13.4.8.2 / 14.2.5.1): generic notice types and trap numbers.
NOTICE_TYPE_FATAL: Final = 0
NOTICE_TYPE_URGENT: Final = 1
NOTICE_TYPE_SECURITY: Final = 2
NOTICE_TYPE_SUBNET_MGMT: Final = 3
NOTICE_TYPE_INFO: Final = 4
TRAP_LINK_STATE_CHANGE: Final = 128
TRAP_CAPABILITY_MASK_CHANGE: Final = 144
TRAP_BAD_M_KEY: Final = 256  # IBTA 14.3.9 (Linux IB_NOTICE_TRAP_BAD_MKEY)


# -- attributes ---------------------------------------------------------------------------


class NodeDescription(Layout):
    """NodeDescription, attribute 0x0010: 64 bytes of UTF-8 (libibmad fields.c:223)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_NODE_DESC
    SIZE: ClassVar[int] = 64
    description: str = text(0, 64, "NodeDesc")


class NodeInfo(Layout):
    """NodeInfo, attribute 0x0011 (IBTA 14.2.5.3; libibmad fields.c:173-184)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_NODE_INFO
    SIZE: ClassVar[int] = 40
    base_version: int = uint(0, 8, "BaseVers")
    class_version: int = uint(8, 8, "ClassVers")
    node_type: int = uint(16, 8, "NodeType")
    num_ports: int = uint(24, 8, "NumPorts")
    system_image_guid: int = uint(32, 64, "SystemGuid")
    node_guid: int = uint(96, 64, "Guid")
    port_guid: int = uint(160, 64, "PortGuid")
    partition_cap: int = uint(224, 16, "PartCap")
    device_id: int = uint(240, 16, "DevId")
    revision: int = uint(256, 32, "Revision")
    local_port_num: int = uint(288, 8, "LocalPort")
    vendor_id: int = uint(296, 24, "VendorId")


class SwitchInfo(Layout):
    """SwitchInfo, attribute 0x0012 (IBTA 14.2.5.4; libibmad fields.c:190-207)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_SWITCH_INFO
    SIZE: ClassVar[int] = 20
    linear_fdb_cap: int = uint(0, 16, "LinearFdbCap")
    random_fdb_cap: int = uint(16, 16, "RandomFdbCap")
    multicast_fdb_cap: int = uint(32, 16, "McastFdbCap")
    linear_fdb_top: int = uint(48, 16, "LinearFdbTop")
    default_port: int = uint(64, 8, "DefPort")
    default_multicast_primary_port: int = uint(72, 8, "DefMcastPrimPort")
    default_multicast_not_primary_port: int = uint(80, 8, "DefMcastNotPrimPort")
    life_time_value: int = uint(88, 5, "LifeTime")
    port_state_change: int = uint(93, 1, "StateChange")
    optimized_sl2vl_mapping: int = uint(94, 2, "OptSLtoVLMapping")
    lids_per_port: int = uint(96, 16, "LidsPerPort")
    partition_enforcement_cap: int = uint(112, 16, "PartEnforceCap")
    inbound_enforcement_cap: int = uint(128, 1, "InboundPartEnf")
    outbound_enforcement_cap: int = uint(129, 1, "OutboundPartEnf")
    filter_raw_inbound_cap: int = uint(130, 1, "FilterRawInbound")
    filter_raw_outbound_cap: int = uint(131, 1, "FilterRawOutbound")
    enhanced_port0: int = uint(132, 1, "EnhancedPort0")
    multicast_fdb_top: int = uint(144, 16, "MulticastFDBTop")


class GuidInfo(Layout):
    """GUIDInfo, attribute 0x0014: one block of 8 GUIDs; AM = block number (IBTA 14.2.5.5;
    libibmad fields.c:378 GUID0)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_GUID_INFO
    SIZE: ClassVar[int] = 64
    BLOCK: ClassVar[int] = 8
    guids: tuple[int, ...] = array(0, 8, 64, ref="GUID0")


class PortInfo(Layout):
    """PortInfo, attribute 0x0015 (IBTA 14.2.5.6; libibmad fields.c:121-167 and
    528-531 for CapabilityMask2 and the extended speeds)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_PORT_INFO
    SIZE: ClassVar[int] = 64
    m_key: int = uint(0, 64, "Mkey")
    gid_prefix: int = uint(64, 64, "GidPrefix")
    lid: int = uint(128, 16, "Lid")
    master_sm_lid: int = uint(144, 16, "SMLid")
    capability_mask: int = uint(160, 32, "CapMask")
    diag_code: int = uint(192, 16, "DiagCode")
    m_key_lease_period: int = uint(208, 16, "MkeyLeasePeriod")
    local_port_num: int = uint(224, 8, "LocalPort")
    link_width_enabled: int = uint(232, 8, "LinkWidthEnabled")
    link_width_supported: int = uint(240, 8, "LinkWidthSupported")
    link_width_active: int = uint(248, 8, "LinkWidthActive")
    link_speed_supported: int = uint(256, 4, "LinkSpeedSupported")
    port_state: int = uint(260, 4, "LinkState")
    port_phys_state: int = uint(264, 4, "PhysLinkState")
    link_down_default_state: int = uint(268, 4, "LinkDownDefState")
    m_key_protect_bits: int = uint(272, 2, "ProtectBits")
    lmc: int = uint(277, 3, "LMC")  # bits 274-276 reserved
    link_speed_active: int = uint(280, 4, "LinkSpeedActive")
    link_speed_enabled: int = uint(284, 4, "LinkSpeedEnabled")
    neighbor_mtu: int = uint(288, 4, "NeighborMTU")
    master_sm_sl: int = uint(292, 4, "SMSL")
    vl_cap: int = uint(296, 4, "VLCap")
    init_type: int = uint(300, 4, "InitType")
    vl_high_limit: int = uint(304, 8, "VLHighLimit")
    vl_arbitration_high_cap: int = uint(312, 8, "VLArbHighCap")
    vl_arbitration_low_cap: int = uint(320, 8, "VLArbLowCap")
    init_type_reply: int = uint(328, 4, "InitReply")
    mtu_cap: int = uint(332, 4, "MtuCap")
    vl_stall_count: int = uint(336, 3, "VLStallCount")
    hoq_life: int = uint(339, 5, "HoqLife")
    operational_vls: int = uint(344, 4, "OperVLs")
    partition_enforcement_inbound: int = uint(348, 1, "PartEnforceInb")
    partition_enforcement_outbound: int = uint(349, 1, "PartEnforceOutb")
    filter_raw_inbound: int = uint(350, 1, "FilterRawInb")
    filter_raw_outbound: int = uint(351, 1, "FilterRawOutb")
    m_key_violations: int = uint(352, 16, "MkeyViolations")
    p_key_violations: int = uint(368, 16, "PkeyViolations")
    q_key_violations: int = uint(384, 16, "QkeyViolations")
    guid_cap: int = uint(400, 8, "GuidCap")
    client_reregister: int = uint(408, 1, "ClientReregister")
    multicast_pkey_trap_suppression_enabled: int = uint(409, 2,
                                                       "McastPkeyTrapSuppressionEnabled")
    subnet_timeout: int = uint(411, 5, "SubnetTimeout")  # bits 416-418 reserved
    resp_time_value: int = uint(419, 5, "RespTimeVal")
    local_phy_errors: int = uint(424, 4, "LocalPhysErr")
    overrun_errors: int = uint(428, 4, "OverrunErr")
    max_credit_hint: int = uint(432, 16, "MaxCreditHint")  # bits 448-455 reserved
    link_round_trip_latency: int = uint(456, 24, "RoundTrip")
    capability_mask2: int = uint(480, 16, "CapabilityMask2")
    link_speed_ext_active: int = uint(496, 4, "LinkSpeedExtActive")
    link_speed_ext_supported: int = uint(500, 4, "LinkSpeedExtSupported")
    link_speed_ext_enabled: int = uint(507, 5, "LinkSpeedExtEnabled")  # 504-506 reserved


class PKeyTable(Layout):
    """P_KeyTable, attribute 0x0016: 32 P_Keys (bit 15 = full membership); AM[15:0] =
    block, AM[31:16] = port on switches (IBTA 14.2.5.7)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_PKEY_TABLE
    SIZE: ClassVar[int] = 64
    BLOCK: ClassVar[int] = 32
    pkeys: tuple[int, ...] = array(0, 32, 16)


class SlToVlTable(Layout):
    """SLtoVLMappingTable, attribute 0x0017: VL for SL 0..15, 4 bits each, SL0 first
    (IBTA 14.2.5.8; libibmad fields.c:347 SLToVLMap)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_SL2VL_TABLE
    SIZE: ClassVar[int] = 8
    vls: tuple[int, ...] = array(0, 16, 4, ref="SLToVLMap")


class VlArbTable(Layout):
    """VLArbitrationTable, attribute 0x0018: 32 (VL, weight) entries of 16 bits, a 4-bit
    reserved nibble then VL (4 bits) and weight (8 bits) (IBTA 14.2.5.9; libibmad
    fields.c:352 VLArbTbl).  AM[31:16] = block 1..4, AM[15:0] = port on switches."""

    ATTR_ID: ClassVar[int] = mad.ATTR_VL_ARB_TABLE
    SIZE: ClassVar[int] = 64
    BLOCK: ClassVar[int] = 32
    vls: tuple[int, ...] = array(4, 32, 4, 16, ref="VLArbTbl")
    weights: tuple[int, ...] = array(8, 32, 8, 16, ref="VLArbTbl")


class LinearForwardingTable(Layout):
    """LinearForwardingTable, attribute 0x0019: egress ports of 64 consecutive LIDs; AM =
    block, LIDs 64*AM .. 64*AM+63 (IBTA 14.2.5.10; libibmad fields.c:213)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_LINEAR_FDB
    SIZE: ClassVar[int] = 64
    BLOCK: ClassVar[int] = 64
    ports: tuple[int, ...] = array(0, 64, 8, ref="LinearForwTbl")


class MulticastForwardingTable(Layout):
    """MulticastForwardingTable, attribute 0x001B: 32 port masks of 16 bits; AM[8:0] =
    block of 32 MLIDs, AM[31:28] = which 16 ports (IBTA 14.2.5.12; libibmad
    fields.c:218)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_MULTICAST_FDB
    SIZE: ClassVar[int] = 64
    BLOCK: ClassVar[int] = 32
    port_masks: tuple[int, ...] = array(0, 32, 16, ref="MulticastForwTbl")


class SmInfo(Layout):
    """SMInfo, attribute 0x0020 (IBTA 14.2.5.13; libibmad fields.c:268-272)."""

    ATTR_ID: ClassVar[int] = mad.ATTR_SM_INFO
    SIZE: ClassVar[int] = 21
    guid: int = uint(0, 64, "SmInfoGuid")
    sm_key: int = uint(64, 64, "SmInfoKey")
    act_count: int = uint(128, 32, "SmActivity")
    priority: int = uint(160, 4, "SmPriority")
    sm_state: int = uint(164, 4, "SmState")


class Notice(Layout):
    """Notice, attribute 0x0002, as carried by a Trap SMP (IBTA 13.4.8.2 / 14.2.5.1;
    libibmad fields.c:228-238).

    The IssuerGID (bytes 64-79 of the full attribute) does not fit the 64-byte SMP data
    and is not part of this layout.  ``data_details`` are the 54 trap-specific bytes;
    :class:`BadMKeyDetails` lays out those of trap 256.
    """

    ATTR_ID: ClassVar[int] = mad.ATTR_NOTICE
    SIZE: ClassVar[int] = 64
    is_generic: int = uint(0, 1, "NoticeIsGeneric")
    notice_type: int = uint(1, 7, "NoticeType")
    producer_type: int = uint(8, 24, "NoticeProducerType")  # vendor id if not generic
    trap_number: int = uint(32, 16, "NoticeTrapNumber")  # device id if not generic
    issuer_lid: int = uint(48, 16, "NoticeIssuerLID")
    toggle: int = uint(64, 1, "NoticeToggle")
    count: int = uint(65, 15, "NoticeCount")
    data_details: bytes = raw(10, 54, "NoticeDataDetails")


class BadMKeyDetails(Layout):
    """DataDetails of trap 256 "Bad M_Key" (IBTA 14.3.9 / 14.2.5.1; Linux
    ``include/rdma/ib_mad.h`` ``ib_mad_notice_attr.details.ntc_256``, 54 bytes:
    2 reserved, LID, DR SLID, method, 1 reserved, attribute id, modifier, M_Key,
    1 reserved, DR notice/truncated/hop count, 30-byte DR return path)."""

    SIZE: ClassVar[int] = 54
    lid: int = uint(16, 16)
    dr_slid: int = uint(32, 16)
    method: int = uint(48, 8)
    attr_id: int = uint(64, 16)
    attr_mod: int = uint(80, 32)
    m_key: int = uint(112, 64)
    dr_notice: int = uint(184, 1)
    dr_path_truncated: int = uint(185, 1)
    dr_hop_count: int = uint(186, 6)
    dr_return_path: bytes = raw(24, 30)


class LinkStateChangeDetails(Layout):
    """DataDetails of trap 128 "link state change": the switch's LID (libibmad fields.c
    NoticeDataLID at Notice bit 80; ibsim encode_trap128, sim_mad.c:1917-1936)."""

    SIZE: ClassVar[int] = 54
    lid: int = uint(0, 16)


class CapabilityMaskChangeDetails(Layout):
    """DataDetails of trap 144 "capability mask changed": 2 reserved bytes, the LID,
    2 reserved bytes, the new CapabilityMask (libibmad fields.c NoticeDataTrap144LID at
    Notice bit 96, NoticeDataTrap144CapMask at Notice bit 128)."""

    SIZE: ClassVar[int] = 54
    lid: int = uint(16, 16)
    capability_mask: int = uint(48, 32)


SMP_ATTRIBUTES: dict[int, type[Layout]] = {
    cls.ATTR_ID: cls
    for cls in (NodeDescription, NodeInfo, SwitchInfo, GuidInfo, PortInfo, PKeyTable,
                SlToVlTable, VlArbTable, LinearForwardingTable, MulticastForwardingTable,
                SmInfo, Notice)
}
"""Attribute id -> layout of the SMP data, for decoding and dumping."""
