"""Mellanox vendor MADs for configuration-space (CR-space) access.

mstflint 4.21 reaches CR space in-band with the vendor-specific ConfigSpaceAccess MAD:
management class 0x0A (or 0x09 as fallback), attribute 0x0050, Get or Set, LID-routed to
QP1.  Source: mstflint ``mtcr_ul/mtcr_ib_ofed.c`` (tag v4.21.0-1) lines 170-177 (classes
and attribute), 360-369 (modifier), 497-498 and 522-526 (size limit), 560-582 (key and
data); libibmad vendor range 1 data offset 24 (``mad.h:61``).  The SMP form (attribute
0xFF50, class 0x01/0x81) carries the M_Key copy in data bytes 0-7 and dwords from MAD
byte 72 (``mtcr_ib_ofed.c:336-339,411-494``).
"""

from __future__ import annotations

from typing import ClassVar

from hcasim.ib import mad
from hcasim.ib.layout import Layout, raw, uint

CLASS_MLNX_VENDOR_A = 0x0A
CLASS_MLNX_VENDOR_9 = 0x09
ATTR_CONFIG_SPACE_ACCESS = 0x0050
ATTR_SMP_CONFIG_SPACE_ACCESS = 0xFF50
ATTR_SMP_ACCESS_REGISTER = 0xFF52
ATTR_SMP_SEMAPHORE_LOCK = 0xFF53
ATTR_ACCESS_REGISTER_GMP = 0x0051
VS_KEY_OFFSET = 24  # MAD byte of the 64-bit VS_Key
CR_DATA_OFFSET = 32  # MAD byte of data dword 0
MAX_CR_DWORDS = 56  # (232 - 8) / 4, ``MAX_VS_DATA_SIZE``
SMP_CR_DATA_OFFSET = 72  # SMP form: MAD byte of data dword 0 (after the M_Key copy)
MAX_SMP_CR_DWORDS = 14  # (64 - 8) / 4
CR_MODE_DIRECT = 0  # addr[23:16] in AM[31:24], addr[15:0] in AM[15:0]
CR_MODE_RECORDS = 2  # {address, data, mask} records, for addresses above 0x7FFFFF


class CrModifier(Layout):
    """The attribute modifier of a ConfigSpaceAccess MAD in mode 0 (``mtcr_ib_ofed.c:360-368``):
    the CR address split around the mode and the dword count."""

    SIZE: ClassVar[int] = 4
    address_hi: int = uint(0, 8)  # address bits 23:16
    mode: int = uint(8, 2)
    dwords: int = uint(10, 6)
    address_lo: int = uint(16, 16)  # address bits 15:0


def pack_cr_modifier(address: int, dwords: int, mode: int = CR_MODE_DIRECT) -> int:
    """The attribute modifier of a ConfigSpaceAccess MAD.

    Mode 0: ``addr[23:16] << 24 | mode << 22 | dwords << 16 | addr[15:0]``
    (``mtcr_ib_ofed.c:360-368``); reading 0xf0014 gives 0x0f010014.
    """
    if not 0 <= address <= 0xFFFFFF:
        raise ValueError(f"CR address {address:#x} does not fit in 24 bits")
    if not 0 <= dwords <= 0x3F:
        raise ValueError(f"dword count {dwords} does not fit in 6 bits")
    if not 0 <= mode <= 3:
        raise ValueError(f"mode {mode} does not fit in 2 bits")
    fields = CrModifier(address_hi=address // 0x10000, mode=mode, dwords=dwords,
                        address_lo=address % 0x10000)
    return int.from_bytes(fields.encode(), "big")


def unpack_cr_modifier(modifier: int) -> tuple[int, int, int]:
    """Split a ConfigSpaceAccess attribute modifier into (address, dwords, mode)."""
    fields = CrModifier.decode(modifier.to_bytes(4, "big"))
    return fields.address_hi * 0x10000 + fields.address_lo, fields.dwords, fields.mode


class ConfigSpaceAccessMad(mad.MadHeader):
    """A whole ConfigSpaceAccess MAD: header, VS_Key at byte 24, data dwords at byte 32."""

    SIZE: ClassVar[int] = mad.MAD_SIZE
    vs_key: int = uint(VS_KEY_OFFSET * 8, 64)
    data: bytes = raw(CR_DATA_OFFSET, MAX_CR_DWORDS * 4)

    def dwords(self, count: int | None = None) -> tuple[int, ...]:
        """The first ``count`` data dwords (default: the modifier's count), big-endian."""
        n = unpack_cr_modifier(self.attr_mod)[1] if count is None else count
        if not 0 <= n <= MAX_CR_DWORDS:
            raise ValueError(f"{n} dwords do not fit one MAD (max {MAX_CR_DWORDS})")
        return tuple(int.from_bytes(self.data[4 * i:4 * i + 4], "big") for i in range(n))

    @staticmethod
    def pack_dwords(values: tuple[int, ...] | list[int]) -> bytes:
        """Data bytes for ``values`` (at most 56 dwords, each 32 bits)."""
        if len(values) > MAX_CR_DWORDS:
            raise ValueError(f"{len(values)} dwords do not fit one MAD (max {MAX_CR_DWORDS})")
        return b"".join(v.to_bytes(4, "big") for v in values)
