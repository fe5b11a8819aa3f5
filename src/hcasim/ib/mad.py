"""MAD framing: the common header, SMPs (LID-routed and directed-route), GMP bodies.

Positions are IBTA bit offsets (see :mod:`hcasim.ib.layout`); the ``ref`` of each field
is its libibmad name in ``rdma-core libibmad/fields.c`` (tag v44.0, lines 64-116), whose
``BE_OFFS(o, w)`` header positions count bits from the least significant end of each
big-endian 32-bit word.  ``tests/test_ib_fields.py`` converts them and checks every
offset declared here.
"""

from __future__ import annotations

from typing import ClassVar, Final

from hcasim.ib.layout import Layout, raw, uint

# -- constants -------------------------------------------------------------------------------

MAD_SIZE: Final = 256  # IBTA 13.4.1; libibmad IB_MAD_SIZE (mad.h:58)
BASE_VERSION: Final = 1  # IBTA 13.4.2 BaseVersion

# Management classes (IBTA 13.4.4; libibmad mad.h:82-96).
CLASS_SUBN_LID_ROUTED: Final = 0x01
CLASS_SUBN_DIRECTED_ROUTE: Final = 0x81
CLASS_SUBN_ADM: Final = 0x03
CLASS_PERF_MGT: Final = 0x04
CLASS_BM: Final = 0x05
CLASS_DEV_MGT: Final = 0x06
CLASS_CM: Final = 0x07
CLASS_SNMP: Final = 0x08
CLASS_VENDOR_RANGE1_FIRST: Final = 0x09
CLASS_VENDOR_RANGE1_LAST: Final = 0x0F
CLASS_CC: Final = 0x21
CLASS_VENDOR_RANGE2_FIRST: Final = 0x30
CLASS_VENDOR_RANGE2_LAST: Final = 0x4F

# Methods, the whole byte 3 including the R bit (IBTA 13.4.5; libibmad
# mad.h:98-120).
METHOD_GET: Final = 0x01
METHOD_SET: Final = 0x02
METHOD_SEND: Final = 0x03
METHOD_TRAP: Final = 0x05
METHOD_REPORT: Final = 0x06
METHOD_TRAP_REPRESS: Final = 0x07
METHOD_GET_TABLE: Final = 0x12
METHOD_GET_RESP: Final = 0x81
METHOD_REPORT_RESP: Final = 0x86
METHOD_RESPONSE_BIT: Final = 0x80

# MAD status (IBTA 13.4.7; libibmad mad.h:127-135).  Bits 2-4 carry the code.
STATUS_OK: Final = 0x0000
STATUS_BUSY: Final = 0x0001
STATUS_REDIRECT: Final = 0x0002
STATUS_BAD_VERSION: Final = 0x0004  # bad base version or class version
STATUS_METHOD_UNSUPPORTED: Final = 0x0008
STATUS_METHOD_ATTR_UNSUPPORTED: Final = 0x000C
STATUS_INVALID_FIELD: Final = 0x001C  # one or more fields in the attribute or modifier invalid
DR_DIRECTION_BIT: Final = 0x8000  # SMP directed-route D bit, status bit 15 (IBTA 14.2.1.2)

# Attribute ids (IBTA 14.2.5 for SubnMgt; libibmad mad.h:124-155).
ATTR_CLASS_PORT_INFO: Final = 0x0001
ATTR_NOTICE: Final = 0x0002
ATTR_NODE_DESC: Final = 0x0010
ATTR_NODE_INFO: Final = 0x0011
ATTR_SWITCH_INFO: Final = 0x0012
ATTR_GUID_INFO: Final = 0x0014
ATTR_PORT_INFO: Final = 0x0015
ATTR_PKEY_TABLE: Final = 0x0016
ATTR_SL2VL_TABLE: Final = 0x0017
ATTR_VL_ARB_TABLE: Final = 0x0018
ATTR_LINEAR_FDB: Final = 0x0019
ATTR_MULTICAST_FDB: Final = 0x001B
ATTR_SM_INFO: Final = 0x0020
ATTR_MLNX_EXT_PORT_INFO: Final = 0xFF90  # libibmad IB_ATTR_MLNX_EXT_PORT_INFO (mad.h:154)
ATTR_PORT_COUNTERS: Final = 0x0012  # PerfMgt (IBTA 16.1.3.5; libibmad IB_GSI_PORT_COUNTERS)

PERMISSIVE_LID: Final = 0xFFFF  # IBTA 14.2.1.2: DrSLID/DrDLID of a purely directed route

# Where the class-specific data starts (libibmad mad.h:59-68).
SMP_DATA_OFFSET: Final = 64
SMP_DATA_SIZE: Final = 64
GMP_PERF_DATA_OFFSET: Final = 64
VENDOR_RANGE1_DATA_OFFSET: Final = 24
DR_PATH_SIZE: Final = 64  # InitialPath / ReturnPath (IBTA 14.2.1.2), 1 + 63 hops
MAX_DR_HOPS: Final = 63  # HopCount is 6 bits in practice (IBTA 14.2.2; 64-byte path arrays)


def is_response(method: int) -> bool:
    """Whether a method byte has the R bit set (IBTA 13.4.5)."""
    return bool(method & METHOD_RESPONSE_BIT)


def response_method(method: int) -> int:
    """The response method for a request: GetResp for Get/Set (IBTA 13.4.5)."""
    if method in (METHOD_GET, METHOD_SET, METHOD_TRAP_REPRESS):
        return METHOD_GET_RESP
    return method | METHOD_RESPONSE_BIT


# -- layouts ----------------------------------------------------------------------------------


class MadHeader(Layout):
    """The 24-byte common MAD header (IBTA 13.4.2)."""

    SIZE: ClassVar[int] = 24
    base_version: int = uint(0, 8, "MadBaseVersion")
    mgmt_class: int = uint(8, 8, "MadMgmtClass")
    class_version: int = uint(16, 8, "MadClassVersion")
    method: int = uint(24, 8, "MadMethod+MadIsResponse")  # R bit is bit 24 (the MSB)
    status: int = uint(32, 16, "MadStatus")
    class_specific: int = uint(48, 16)
    tid: int = uint(64, 64, "MadTRID")
    attr_id: int = uint(128, 16, "MadAttr")
    attr_mod: int = uint(160, 32, "MadModifier")


class Mad(MadHeader):
    """A whole MAD seen as header plus 232 opaque bytes (any class)."""

    SIZE: ClassVar[int] = MAD_SIZE
    payload: bytes = raw(24, 232)


class Smp(MadHeader):
    """LID-routed SMP, class 0x01 (IBTA 14.2.1.1)."""

    SIZE: ClassVar[int] = MAD_SIZE
    m_key: int = uint(192, 64, "MadMkey")
    data: bytes = raw(SMP_DATA_OFFSET, SMP_DATA_SIZE)  # bytes 32-63 are reserved


class DrSmp(Layout):
    """Directed-route SMP, class 0x81 (IBTA 14.2.1.2).

    The header's status word is the D bit (direction: 1 = returning) plus a 15-bit
    status; the class-specific word holds HopPointer and HopCount.
    """

    SIZE: ClassVar[int] = MAD_SIZE
    base_version: int = uint(0, 8, "MadBaseVersion")
    mgmt_class: int = uint(8, 8, "MadMgmtClass")
    class_version: int = uint(16, 8, "MadClassVersion")
    method: int = uint(24, 8, "MadMethod+MadIsResponse")
    direction: int = uint(32, 1, "DrSmpDirection")
    status: int = uint(33, 15, "DrSmpStatus")
    hop_pointer: int = uint(48, 8, "DrSmpHopPtr")
    hop_count: int = uint(56, 8, "DrSmpHopCnt")
    tid: int = uint(64, 64, "MadTRID")
    attr_id: int = uint(128, 16, "MadAttr")
    attr_mod: int = uint(160, 32, "MadModifier")
    m_key: int = uint(192, 64, "MadMkey")
    dr_slid: int = uint(256, 16, "DrSmpSLID")
    dr_dlid: int = uint(272, 16, "DrSmpDLID")
    data: bytes = raw(SMP_DATA_OFFSET, SMP_DATA_SIZE)
    initial_path: bytes = raw(128, DR_PATH_SIZE, "DrSmpPath")
    return_path: bytes = raw(192, DR_PATH_SIZE, "DrSmpRetPath")


class PerfMgtMad(MadHeader):
    """A PerfMgt GMP, class 0x04: header, 40 reserved bytes, 192 data bytes (IBTA 16.1.1)."""

    SIZE: ClassVar[int] = MAD_SIZE
    data: bytes = raw(GMP_PERF_DATA_OFFSET, MAD_SIZE - GMP_PERF_DATA_OFFSET)


def decode_smp(buf: bytes | bytearray | memoryview) -> Smp | DrSmp:
    """Decode a 256-byte SMP as LID-routed or directed-route by its class (byte 1)."""
    if len(buf) < MAD_SIZE:
        raise ValueError(f"an SMP needs {MAD_SIZE} bytes, got {len(buf)}")
    if buf[1] == CLASS_SUBN_DIRECTED_ROUTE:
        return DrSmp.decode(buf)
    return Smp.decode(buf)
