"""The ConnectX-3 CR-space map: addresses, semaphores and the register layouts the tools use.

Shared by the firmware model (:mod:`hcasim.devices.cx3`) and the tools' side
(:mod:`hcasim.api.mst`, which flint drives), so both read one definition; kept apart from the
model so a tool's start-up loads only this (flint's ``-qq q`` is on scripts' hot paths).
"""

from __future__ import annotations

from hcasim.ib.layout import Layout, dword, nested, uint

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded
if TYPE_CHECKING:
    from typing import ClassVar, TypeVar

    _L = TypeVar("_L", bound=Layout)

HW_DEV_ID_ADDR = 0xF0014
CR_LOCKED_VALUE = 0xBAD0CAFE
#: Running firmware version, 16 bytes (mstflint fs2_ops.cpp:915-955, cibfw_layouts.c:190-210).
RUNNING_FW_ADDR = 0x1F064
#: Livefish indicator read by cntx_flash_init_direct_access (mflash.c:1394-1402).
LIVEFISH_ADDR = 0x41270
TOOLS_HCR_ADDR = 0x80780
TOOLS_HCR_DWORDS = 7
SEM_TOOLS_HCR = 0xF03BC  # sem47, mtcr_tools_cif.c:53
SEM_FLASH_PROGRAMMING = 0xF03A0  # TRM_RES_HCR_FLASH_PROGRAMING, tools_res_mgmt.c:219
SEM_GPIO = 0xF03FC  # sem63, mflash.c:1656-1693
SEMAPHORES = (SEM_TOOLS_HCR, SEM_FLASH_PROGRAMMING, SEM_GPIO)
# Direct flash gateway (mstflint v4.21.0-1 mflash/mflash_pack_layer.h:291-331).
FLASH_GW_CMD = 0xF0400
FLASH_GW_ADDR = 0xF0404
FLASH_GW_DATA = 0xF0410
FLASH_GW_DATA_DWORDS = 4
# SPI opcodes a ConnectX-3 burn and query use (mflash_gw.c:273-497, mflash.c:559-666).
SPI_WRSR, SPI_PP, SPI_READ, SPI_RDSR, SPI_WREN = 0x01, 0x02, 0x03, 0x05, 0x06
SPI_SSE_4K, SPI_SE_64K, SPI_JEDEC = 0x20, 0xD8, 0x9F
CR_SPACE_SIZE = 0x100000

HW_ACCESS_OPCODE = 0x60


def dword_value(layout: Layout) -> int:
    """A one-dword CR register layout as the dword value CR-space reads carry."""
    return int.from_bytes(layout.encode(), "big")


def decode_dword(cls: type[_L], value: int) -> _L:
    """A CR dword value decoded as the one-dword register layout ``cls``."""
    return cls.decode(value.to_bytes(4, "big"))


class HwDevId(Layout):
    """The HW_DEV_ID dword at ``HW_DEV_ID_ADDR``: revision in bits 23:16, hardware id in
    bits 15:0 (docs/sources.md §5.1; mstflint ``dev_mgt/tools_dev_types.c``)."""

    SIZE: ClassVar[int] = 4
    revision: int = dword(0, 23, 16)
    hw_id: int = dword(0, 15, 0)


class FlashGwCmd(Layout):
    """The direct flash gateway's command dword at 0xf0400 (mflash_pack_layer.h:291-331)."""

    SIZE: ClassVar[int] = 4
    busy: int = dword(0, 30, 30)
    opcode: int = dword(0, 23, 16)  # the SPI opcode of a command phase
    size_log: int = dword(0, 10, 8)  # data phase of 2**size_log bytes
    cs_hold: int = dword(0, 5, 5)
    data_phase: int = dword(0, 4, 4)
    addr_phase: int = dword(0, 3, 3)
    cmd_phase: int = dword(0, 2, 2)
    read: int = dword(0, 0, 0)


class HcrCommandWord(Layout):
    """The last dword of the tools HCR: status, go and the command (mstflint
    ``mtcr_ul/mtcr_tools_cif.c`` ``tools_cmdif_pack``, ``tools_cmdif_unpack``)."""

    SIZE: ClassVar[int] = 4
    status: int = dword(0, 31, 24)
    go: int = dword(0, 23, 23)
    e: int = dword(0, 22, 22)
    opcode_modifier: int = dword(0, 15, 12)
    opcode: int = dword(0, 11, 0)


class ToolsHcr(Layout):
    """The tools HCR, ``TOOLS_HCR_DWORDS`` dwords at ``TOOLS_HCR_ADDR`` (``CMD_IF_SIZE`` 28,
    ``tools_cmdif_pack`` and ``tools_cmdif_unpack`` in ``mtcr_ul/mtcr_tools_cif.c``)."""

    SIZE: ClassVar[int] = 4 * TOOLS_HCR_DWORDS
    in_param: int = uint(0, 64)
    input_modifier: int = dword(8)
    out_param: int = uint(96, 64)
    token: int = dword(20, 31, 16)
    command: HcrCommandWord = nested(24, HcrCommandWord)


class RunningFwVersion(Layout):
    """The first two dwords of the running firmware version at ``RUNNING_FW_ADDR``
    (fs2_ops.cpp:915-955, cibfw_layouts.c:190-210); the other two read 0."""

    SIZE: ClassVar[int] = 8
    major: int = dword(0, 31, 16)
    minor: int = dword(4, 31, 16)
    subminor: int = dword(4, 15, 0)
