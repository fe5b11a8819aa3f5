"""In-band CR-space access: the vendor ConfigSpaceAccess MAD answered from a device's CR space.

mstflint 4.21 reaches CR space in-band with the Mellanox vendor MAD ConfigSpaceAccess
(docs/sources.md §4; mstflint v4.21.0-1 ``mtcr_ul/mtcr_ib_ofed.c:170-177,360-411,
500-585``): class 0x0A (or 0x09, its fallback), attribute 0x0050, Get or Set of up to 56
big-endian dwords from MAD byte 32. Every device model on the wire answers it the same
way, over its own CR space (:mod:`hcasim.hosts.cx3_wire` for the ConnectX-3,
:mod:`hcasim.hosts.cx6_wire` for the ConnectX-6 Dx): :func:`answer` decodes the MAD, calls
the device's ``read`` / ``write`` and builds the response.

A device refuses an access by raising :class:`~hcasim.devices.cx3.FirmwareError`; the MAD
then gets status 0x001C (invalid field) and nothing is changed by the refused part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import ClassVar, Final

from hcasim.devices.cx3 import FirmwareError
from hcasim.ib import mad, vendor
from hcasim.ib.layout import Layout, dword

__all__ = ["MODE2_DATA", "MODE2_MASK", "VENDOR_CLASSES", "CrRead", "CrWrite", "answer"]

log = logging.getLogger("hcasim.crspace")

#: The vendor classes of ConfigSpaceAccess: 0x0A first, 0x09 as mstflint's fallback
#: (docs/sources.md §4.1).
VENDOR_CLASSES: Final = frozenset({vendor.CLASS_MLNX_VENDOR_A, vendor.CLASS_MLNX_VENDOR_9})
#: Mode 2 record layout, relative to MAD byte 32: address, data at +4, mask at +8
#: (``mtcr_ib_ofed.c`` CONFIG_ACCESS_MODE_2_DATA_OFFSET / _BITMASK_OFFSET).
MODE2_DATA: Final = 4
MODE2_MASK: Final = 8


class Mode2Record(Layout):
    """A mode-2 ConfigSpaceAccess record at MAD byte 32: address, data and write mask."""

    SIZE: ClassVar[int] = 12
    address: int = dword(0)
    data: int = dword(MODE2_DATA)
    mask: int = dword(MODE2_MASK)


#: Read ``count`` dwords from a CR address (raise FirmwareError to refuse).
CrRead = Callable[[int, int], Sequence[int]]
#: Write dwords at a CR address (raise FirmwareError to refuse).
CrWrite = Callable[[int, list[int]], None]


def answer(raw: bytes, read: CrRead, write: CrWrite, node: str = "") -> bytes:
    """The whole 256-byte response to a ConfigSpaceAccess MAD ``raw`` (class 0x0A/0x09).

    GetResp with the request echoed, the data read in place for a Get, and the MAD status:
    0x000C for another attribute, 0x0008 for another method, 0x001C for a malformed
    modifier or an access the device refused (``node`` only names the device in the log).
    """
    reply = bytearray(raw)
    header = mad.MadHeader
    header.spec("method").put(reply, mad.METHOD_GET_RESP)
    try:
        status = _access(raw, reply, read, write)
    except FirmwareError as exc:
        log.debug("ConfigSpaceAccess on %s refused: %s", node, exc)
        status = mad.STATUS_INVALID_FIELD
    header.spec("status").put(reply, status)
    return bytes(reply)


def _access(raw: bytes, reply: bytearray, read: CrRead, write: CrWrite) -> int:
    request = vendor.ConfigSpaceAccessMad.decode(raw)
    if request.attr_id != vendor.ATTR_CONFIG_SPACE_ACCESS:
        return mad.STATUS_METHOD_ATTR_UNSUPPORTED
    if request.method not in (mad.METHOD_GET, mad.METHOD_SET):
        return mad.STATUS_METHOD_UNSUPPORTED
    address, count, mode = vendor.unpack_cr_modifier(request.attr_mod)
    base = vendor.CR_DATA_OFFSET
    if mode == vendor.CR_MODE_RECORDS:
        # Only a one-record mode-2 MAD is well formed as mstflint builds it (docs/sources.md
        # §4.2); the record's address replaces the modifier's.
        if count != 1:
            return mad.STATUS_INVALID_FIELD
        record = Mode2Record.decode(raw, base)
        address = record.address
        base += MODE2_DATA
    elif mode != vendor.CR_MODE_DIRECT or not 1 <= count <= vendor.MAX_CR_DWORDS:
        return mad.STATUS_INVALID_FIELD
    if request.method == mad.METHOD_GET:
        values = read(address, count)
        reply[base:base + 4 * count] = vendor.ConfigSpaceAccessMad.pack_dwords(list(values))
        return mad.STATUS_OK
    if mode == vendor.CR_MODE_RECORDS:
        dwords = [record.data]
        if record.mask != 0xFFFFFFFF:
            old = read(address, 1)[0]
            dwords = [(old & ~record.mask) | (record.data & record.mask)]
    else:
        dwords = list(request.dwords(count))
    write(address, dwords)
    return mad.STATUS_OK
