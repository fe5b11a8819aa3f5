"""Cross-check every declared field position against libibmad's field table.

The table below transcribes the entries of ``rdma-core libibmad/fields.c`` (tag v44.0)
that our layouts carry as ``ref``: ``(macro, offset, width)`` as written there.  libibmad
uses two conventions (fields.c:45-53):

* ``BITSOFFS(o, w)`` and plain ``{o, w}``: ``o`` is the IBTA bit offset counted from the
  most significant bit of byte 0, the convention of :mod:`hcasim.ib.layout`;
* ``BE_OFFS(o, w)``: ``o`` counts from the least significant bit of the big-endian
  32-bit word ``o // 32``, so the IBTA offset is ``(o & ~31) + 32 - (o & 31) - w``.
"""

from __future__ import annotations

import pytest

from hcasim.ib import mad, perf, smp_attrs
from hcasim.ib.layout import FieldSpec, Layout

BITS, BE = "BITSOFFS", "BE_OFFS"

LIBIBMAD: dict[str, tuple[str, int, int]] = {
    # MAD / SMP / DR SMP header, fields.c:64-116
    "MadMethod": (BE, 0, 7),
    "MadIsResponse": (BE, 7, 1),
    "MadClassVersion": (BE, 8, 8),
    "MadMgmtClass": (BE, 16, 8),
    "MadBaseVersion": (BE, 24, 8),
    "MadStatus": (BE, 48, 16),
    "DrSmpHopCnt": (BE, 32, 8),
    "DrSmpHopPtr": (BE, 40, 8),
    "DrSmpStatus": (BE, 48, 15),
    "DrSmpDirection": (BE, 63, 1),
    "MadTRID": (BITS, 64, 64),
    "MadAttr": (BE, 144, 16),
    "MadModifier": (BITS, 160, 32),
    "MadMkey": (BITS, 192, 64),
    "DrSmpDLID": (BE, 256, 16),
    "DrSmpSLID": (BE, 272, 16),
    "DrSmpPath": (BITS, 1024, 512),
    "DrSmpRetPath": (BITS, 1536, 512),
    # PortInfo, fields.c:121-167 and 528-531
    "Mkey": (BITS, 0, 64),
    "GidPrefix": (BITS, 64, 64),
    "Lid": (BITS, 128, 16),
    "SMLid": (BITS, 144, 16),
    "CapMask": (BITS, 160, 32),
    "DiagCode": (BITS, 192, 16),
    "MkeyLeasePeriod": (BITS, 208, 16),
    "LocalPort": (BITS, 224, 8),
    "LinkWidthEnabled": (BITS, 232, 8),
    "LinkWidthSupported": (BITS, 240, 8),
    "LinkWidthActive": (BITS, 248, 8),
    "LinkSpeedSupported": (BITS, 256, 4),
    "LinkState": (BITS, 260, 4),
    "PhysLinkState": (BITS, 264, 4),
    "LinkDownDefState": (BITS, 268, 4),
    "ProtectBits": (BITS, 272, 2),
    "LMC": (BITS, 277, 3),
    "LinkSpeedActive": (BITS, 280, 4),
    "LinkSpeedEnabled": (BITS, 284, 4),
    "NeighborMTU": (BITS, 288, 4),
    "SMSL": (BITS, 292, 4),
    "VLCap": (BITS, 296, 4),
    "InitType": (BITS, 300, 4),
    "VLHighLimit": (BITS, 304, 8),
    "VLArbHighCap": (BITS, 312, 8),
    "VLArbLowCap": (BITS, 320, 8),
    "InitReply": (BITS, 328, 4),
    "MtuCap": (BITS, 332, 4),
    "VLStallCount": (BITS, 336, 3),
    "HoqLife": (BITS, 339, 5),
    "OperVLs": (BITS, 344, 4),
    "PartEnforceInb": (BITS, 348, 1),
    "PartEnforceOutb": (BITS, 349, 1),
    "FilterRawInb": (BITS, 350, 1),
    "FilterRawOutb": (BITS, 351, 1),
    "MkeyViolations": (BITS, 352, 16),
    "PkeyViolations": (BITS, 368, 16),
    "QkeyViolations": (BITS, 384, 16),
    "GuidCap": (BITS, 400, 8),
    "ClientReregister": (BITS, 408, 1),
    "McastPkeyTrapSuppressionEnabled": (BITS, 409, 2),
    "SubnetTimeout": (BITS, 411, 5),
    "RespTimeVal": (BITS, 419, 5),
    "LocalPhysErr": (BITS, 424, 4),
    "OverrunErr": (BITS, 428, 4),
    "MaxCreditHint": (BITS, 432, 16),
    "RoundTrip": (BITS, 456, 24),
    "CapabilityMask2": (BITS, 480, 16),
    "LinkSpeedExtActive": (BITS, 496, 4),
    "LinkSpeedExtSupported": (BITS, 500, 4),
    "LinkSpeedExtEnabled": (BITS, 507, 5),
    # NodeInfo, fields.c:173-184
    "BaseVers": (BITS, 0, 8),
    "ClassVers": (BITS, 8, 8),
    "NodeType": (BITS, 16, 8),
    "NumPorts": (BITS, 24, 8),
    "SystemGuid": (BITS, 32, 64),
    "Guid": (BITS, 96, 64),
    "PortGuid": (BITS, 160, 64),
    "PartCap": (BITS, 224, 16),
    "DevId": (BITS, 240, 16),
    "Revision": (BITS, 256, 32),
    "VendorId": (BITS, 296, 24),
    # SwitchInfo, fields.c:190-207
    "LinearFdbCap": (BITS, 0, 16),
    "RandomFdbCap": (BITS, 16, 16),
    "McastFdbCap": (BITS, 32, 16),
    "LinearFdbTop": (BITS, 48, 16),
    "DefPort": (BITS, 64, 8),
    "DefMcastPrimPort": (BITS, 72, 8),
    "DefMcastNotPrimPort": (BITS, 80, 8),
    "LifeTime": (BITS, 88, 5),
    "StateChange": (BITS, 93, 1),
    "OptSLtoVLMapping": (BITS, 94, 2),
    "LidsPerPort": (BITS, 96, 16),
    "PartEnforceCap": (BITS, 112, 16),
    "InboundPartEnf": (BITS, 128, 1),
    "OutboundPartEnf": (BITS, 129, 1),
    "FilterRawInbound": (BITS, 130, 1),
    "FilterRawOutbound": (BITS, 131, 1),
    "EnhancedPort0": (BITS, 132, 1),
    "MulticastFDBTop": (BITS, 144, 16),
    # tables, fields.c:213, 218, 223, 347, 352, 378
    "LinearForwTbl": (BITS, 0, 512),
    "MulticastForwTbl": (BITS, 0, 512),
    "NodeDesc": (BITS, 0, 512),
    "SLToVLMap": (BITS, 0, 64),
    "VLArbTbl": (BITS, 0, 512),
    "GUID0": (BITS, 0, 64),
    # Notice, fields.c:228-235
    "NoticeIsGeneric": (BITS, 0, 1),
    "NoticeType": (BITS, 1, 7),
    "NoticeProducerType": (BITS, 8, 24),
    "NoticeTrapNumber": (BITS, 32, 16),
    "NoticeIssuerLID": (BITS, 48, 16),
    "NoticeToggle": (BITS, 64, 1),
    "NoticeCount": (BITS, 65, 15),
    "NoticeDataDetails": (BITS, 80, 432),
    # PortCounters, fields.c:243-262
    "PortSelect": (BITS, 8, 8),
    "CounterSelect": (BITS, 16, 16),
    "SymbolErrorCounter": (BITS, 32, 16),
    "LinkErrorRecoveryCounter": (BITS, 48, 8),
    "LinkDownedCounter": (BITS, 56, 8),
    "PortRcvErrors": (BITS, 64, 16),
    "PortRcvRemotePhysicalErrors": (BITS, 80, 16),
    "PortRcvSwitchRelayErrors": (BITS, 96, 16),
    "PortXmitDiscards": (BITS, 112, 16),
    "PortXmitConstraintErrors": (BITS, 128, 8),
    "PortRcvConstraintErrors": (BITS, 136, 8),
    "CounterSelect2": (BITS, 144, 8),
    "LocalLinkIntegrityErrors": (BITS, 152, 4),
    "ExcessiveBufferOverrunErrors": (BITS, 156, 4),
    "VL15Dropped": (BITS, 176, 16),
    "PortXmitData": (BITS, 192, 32),
    "PortRcvData": (BITS, 224, 32),
    "PortXmitPkts": (BITS, 256, 32),
    "PortRcvPkts": (BITS, 288, 32),
    "PortXmitWait": (BITS, 320, 32),
    # PortSamplesControl, fields.c:469-500
    "OpCode": (BITS, 0, 8),
    "Tick": (BITS, 16, 8),
    "CounterWidth": (BITS, 29, 3),
    "CounterMask0": (BITS, 34, 3),
    "CounterMasks1to9": (BITS, 37, 27),
    "CounterMasks10to14": (BITS, 65, 15),
    "SampleMechanisms": (BITS, 80, 8),
    "SampleStatus": (BITS, 94, 2),
    "OptionMask": (BITS, 96, 64),
    "VendorMask": (BITS, 160, 64),
    "SampleStart": (BITS, 224, 32),
    "SampleInterval": (BITS, 256, 32),
    "Tag": (BITS, 288, 16),
    **{f"CounterSelect{i}": (BITS, 304 + 16 * i, 16) for i in range(15) if i != 2},
    "SamplesOnlyOptionMask": (BITS, 576, 64),
    # PortSamplesResult, fields.c:929-945
    **{f"Counter{i}": (BITS, 32 + 32 * i, 32) for i in range(15)},
    # SMInfo, fields.c:268-272
    "SmInfoGuid": (BITS, 0, 64),
    "SmInfoKey": (BITS, 64, 64),
    "SmActivity": (BITS, 128, 32),
    "SmPriority": (BITS, 160, 4),
    "SmState": (BITS, 164, 4),
    # ClassPortInfo, fields.c:383-407
    "BaseVersion": (BITS, 0, 8),
    "ClassVersion": (BITS, 8, 8),
    "CapabilityMask": (BITS, 16, 16),
    "RedirectGID": (BITS, 64, 128),
    "RedirectTC": (BITS, 192, 8),
    "RedirectSL": (BITS, 200, 4),
    "RedirectFL": (BITS, 204, 20),
    "RedirectLID": (BITS, 224, 16),
    "RedirectPKey": (BITS, 240, 16),
    "RedirectQP": (BITS, 264, 24),
    "RedirectQKey": (BITS, 288, 32),
    "TrapGID": (BITS, 320, 128),
    "TrapTC": (BITS, 448, 8),
    "TrapSL": (BITS, 456, 4),
    "TrapFL": (BITS, 460, 20),
    "TrapLID": (BITS, 480, 16),
    "TrapPKey": (BITS, 496, 16),
    "TrapHL": (BITS, 512, 8),
    "TrapQP": (BITS, 520, 24),
    "TrapQKey": (BITS, 544, 32),
}
# Names libibmad reuses with different positions in different attributes.
CONTEXT = {
    (perf.ClassPortInfo, "CapabilityMask2"): (BITS, 32, 27),
    (perf.ClassPortInfo, "RespTimeVal"): (BITS, 59, 5),
    (smp_attrs.NodeInfo, "LocalPort"): (BITS, 288, 8),
    (perf.PortSamplesControl, "CounterSelect2"): (BITS, 336, 16),
    (perf.PortSamplesResult, "SampleStatus"): (BITS, 30, 2),
    (perf.PortSamplesResult, "Tag"): (BITS, 0, 16),
}


def ibta_bits(macro: str, offset: int, width: int) -> range:
    """The IBTA (MSB-first) bit range of a libibmad field."""
    if macro == BE:
        offset = (offset & ~31) + 32 - (offset & 31) - width
    return range(offset, offset + width)


def covered(spec: FieldSpec) -> set[int]:
    if spec.kind == "array":
        return {spec.bit + k * spec.stride + w for k in range(spec.count)
                for w in range(spec.width)}
    return set(spec.bits)


LAYOUTS: list[type[Layout]] = [
    mad.MadHeader, mad.Smp, mad.DrSmp, smp_attrs.NodeInfo, smp_attrs.NodeDescription,
    smp_attrs.PortInfo, smp_attrs.SwitchInfo, smp_attrs.GuidInfo,
    smp_attrs.SlToVlTable, smp_attrs.VlArbTable, smp_attrs.LinearForwardingTable,
    smp_attrs.MulticastForwardingTable, smp_attrs.SmInfo, smp_attrs.Notice,
    perf.PortCounters, perf.ClassPortInfo, perf.PortSamplesControl, perf.PortSamplesResult,
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda c: c.__name__)
def test_offsets_match_libibmad(layout: type[Layout]) -> None:
    checked = 0
    for spec in layout.field_specs():
        if not spec.ref:
            continue
        bits: set[int] = set()
        for name in spec.ref.split("+"):
            entry = CONTEXT.get((layout, name), LIBIBMAD[name])
            bits |= set(ibta_bits(*entry))
        if spec.ref == "VLArbTbl":
            # one libibmad field covers both the VL and weight arrays
            assert covered(spec) <= bits
        elif spec.ref == "GUID0":
            # libibmad names only entry 0 of the block
            assert set(range(spec.bit, spec.bit + spec.width)) == bits
        else:
            assert covered(spec) == bits, (spec.name, spec.ref)
        checked += 1
    assert checked > 0


def test_every_portinfo_field_is_cross_checked() -> None:
    unchecked = [s.name for s in smp_attrs.PortInfo.field_specs() if not s.ref]
    assert unchecked == []
    # and the fields tile the 64 bytes except IBTA's reserved bits
    used = set().union(*(covered(s) for s in smp_attrs.PortInfo.field_specs()))
    reserved = set(range(512)) - used
    assert reserved == {274, 275, 276, 416, 417, 418, *range(448, 456), 504, 505, 506}


def test_be_offs_conversion_examples() -> None:
    # MadAttr BE_OFFS(144, 16) is MAD bytes 16-17; DrSmpSLID BE_OFFS(272, 16) bytes 32-33
    assert ibta_bits(BE, 144, 16) == range(128, 144)
    assert ibta_bits(BE, 272, 16) == range(256, 272)
    assert ibta_bits(BE, 63, 1) == range(32, 33)  # D bit: MSB of byte 4
