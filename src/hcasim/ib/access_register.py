"""The AccessRegister SMP (attribute 0xFF52): Operation TLV, Reg TLV and register bytes.

mstflint 4.21 reaches the access registers of a 5th-generation device (ConnectX-4 and
later) in-band only through this SMP (docs/sources.md §7.1; mstflint v4.21.0-1
``mtcr_ul/mtcr_ib_ofed.c:1685,2029-2065``): class 0x01 LID-routed (0x81 directed route),
attribute 0xFF52, attribute modifier 0, **method Set even for a register GET**. The SMP data
(MAD bytes 64-127) holds, big-endian (``mtcr_ul/mtcr_ul_com.c:3369-3441``; bit positions
from ``mtcr_ul/packets_layout.c:51-112``, offsets MSB first):

====================  ===========================================================
SMP data bytes        field
====================  ===========================================================
0-3                   Operation TLV: Type[31:27] = 1, len[26:16] = 4 (dwords),
                      dr[15], **status[14:8]**, reserved[7:0]
4-7                   register_id[31:16], r[15] (response), method[14:8]
                      (1 GET, 2 SET), class[7:0] = 1
8-15                  TID (0 from mstflint)
16-19                 Reg TLV: Type[31:27] = 3, len[26:16] = (register bytes + 4) / 4
20-63                 the register, at most 44 bytes (``INBAND_MAX_REG_SIZE``)
====================  ===========================================================

The SMP data field is 64 bytes in both routings (IBTA 14.2.1.1-14.2.1.2; Linux
``include/rdma/ib_smi.h`` ``IB_SMP_DATA_SIZE``; libibmad's ``smp_set_status_via`` carries
exactly that), so a register access carries at most 64 - 20 = 44 register bytes, the
limit mstflint applies (``mtcr_ul_com.c`` ``INBAND_MAX_REG_SIZE``).

The device replies with the same bytes, the register status in Operation TLV bits 14:8,
r = 1 and the register contents from byte 20; the MAD status stays 0.

This module only reads and writes those fields; what a register means is the device's.
:func:`request` and :func:`decode_reply` are the client side (with
:class:`hcasim.api.ibsim_client.IbsimClient`, a program reaches a lab device's registers
in-band, docs/crypto.md §10); :func:`parse` and :func:`set_reply_status` the device side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final, NamedTuple

from hcasim.ib import build, mad, vendor
from hcasim.ib.layout import Layout, dword, uint

__all__ = [
    "ATTR_ACCESS_REGISTER",
    "CLASS_REG_ACCESS",
    "MAX_REGISTER_BYTES",
    "GET",
    "OP_TLV_DWORDS",
    "REG_DATA",
    "SET",
    "TLV_OPERATION",
    "TLV_REG",
    "Operation",
    "Reply",
    "decode_reply",
    "parse",
    "request",
    "set_reply_status",
]

ATTR_ACCESS_REGISTER: Final = vendor.ATTR_SMP_ACCESS_REGISTER  # 0xFF52
#: TLV types (``mtcr_ul_com.c`` enum: TLV_END 0, TLV_OPERATION 1, TLV_DR 2, TLV_REG 3).
TLV_OPERATION: Final = 1
TLV_REG: Final = 3
#: Operation TLV length in dwords (``TLV_OPERATION_SIZE``) and class (``MAD_CLASS_REG_ACCESS``).
OP_TLV_DWORDS: Final = 4
CLASS_REG_ACCESS: Final = 1
#: Operation TLV ``method`` (``maccess_reg_method_t``: 1 GET, 2 SET).
GET: Final = 1
SET: Final = 2
#: Byte offsets inside the SMP data.
REG_TLV: Final = 16
REG_DATA: Final = 20
#: Register bytes one SMP carries (64 - 16 - 4; ``INBAND_MAX_REG_SIZE``).
MAX_REGISTER_BYTES: Final = mad.SMP_DATA_SIZE - REG_DATA


class Operation(Layout):
    """The Operation TLV and Reg TLV header of an AccessRegister SMP: the first 20 bytes of
    the SMP data (``mtcr_ul/packets_layout.c:51-112``, bits as the table above gives them)."""

    SIZE: ClassVar[int] = REG_DATA
    tlv_type: int = dword(0, 31, 27)
    tlv_len: int = dword(0, 26, 16)
    dr: int = dword(0, 15, 15)
    status: int = dword(0, 14, 8)
    register_id: int = dword(4, 31, 16)
    r: int = dword(4, 15, 15)
    method: int = dword(4, 14, 8)
    reg_class: int = dword(4, 7, 0)
    tid: int = uint(64, 64)
    reg_type: int = dword(REG_TLV, 31, 27)
    reg_len: int = dword(REG_TLV, 26, 16)

    @property
    def register_bytes(self) -> int:
        """Register bytes the Reg TLV claims: its length in dwords, less its 4-byte header
        (negative when the length is 0: malformed)."""
        return self.reg_len * 4 - 4


def parse(data: bytes | bytearray) -> Operation:
    """Decode the TLV headers of the 64-byte SMP data of an AccessRegister SMP."""
    if len(data) < REG_DATA:
        raise ValueError(f"AccessRegister data is {len(data)} bytes, the headers need {REG_DATA}")
    return Operation.decode(data)


def set_reply_status(data: bytearray, status: int) -> None:
    """Make ``data`` (SMP data, edited in place) a reply: register status in Operation TLV
    bits 14:8 and the r bit set; every other bit is left as it was."""
    if not 0 <= status <= 0x7F:
        raise ValueError(f"register status {status:#x} does not fit 7 bits")
    Operation.spec("status").put(data, status)
    Operation.spec("r").put(data, 1)


def request(register_id: int, method: int, register: bytes = b"", *,
            path: Sequence[int] | None = None, m_key: int = 0, tid: int = 0x52454721,
            op_tid: int = 0) -> bytes:
    """A 256-byte AccessRegister SMP as mstflint builds it: LID-routed (``path=None``) or
    directed route along ``path``, method Set, Operation TLV for ``register_id`` and
    ``method`` (GET or SET), Reg TLV and the ``register`` bytes (a multiple of 4, at most
    44; a GET asks for as many bytes as it sends)."""
    if len(register) > MAX_REGISTER_BYTES or len(register) % 4:
        raise ValueError(f"{len(register)} register bytes: an SMP carries whole dwords, at "
                         f"most {MAX_REGISTER_BYTES} bytes")
    if not 0 <= register_id <= 0xFFFF or not 0 <= method <= 0x7F:
        raise ValueError("register id is 16 bits, method 7 bits")
    headers = Operation(tlv_type=TLV_OPERATION, tlv_len=OP_TLV_DWORDS, register_id=register_id,
                        method=method, reg_class=CLASS_REG_ACCESS, tid=op_tid,
                        reg_type=TLV_REG, reg_len=(len(register) + 4) // 4)
    data = headers.encode() + register
    return build.smp(ATTR_ACCESS_REGISTER, 0, method=mad.METHOD_SET,
                     path=None if path is None else tuple(path), tid=tid, m_key=m_key,
                     data=data)


class Reply(NamedTuple):
    """A decoded AccessRegister reply: MAD status (15 bits), the TLV headers (register
    status in ``operation.status``) and the 44 register bytes."""

    mad_status: int
    operation: Operation
    register: bytes

    @property
    def status(self) -> int:
        """The register status (Operation TLV bits 14:8)."""
        return self.operation.status


def decode_reply(raw: bytes) -> Reply:
    """Decode the whole 256-byte reply MAD to an AccessRegister SMP."""
    if len(raw) < mad.SMP_DATA_OFFSET + mad.SMP_DATA_SIZE:
        raise ValueError(f"an SMP is {mad.MAD_SIZE} bytes, not {len(raw)}")
    data = raw[mad.SMP_DATA_OFFSET:mad.SMP_DATA_OFFSET + mad.SMP_DATA_SIZE]
    # the 15 bits below bit 15 of the status word (the D bit of a directed-route SMP)
    status = mad.DrSmp.spec("status").get(raw)
    return Reply(status, parse(data), bytes(data[REG_DATA:]))
