"""The ConnectX-3 direct flash gateway, driven with the command words mflash sends."""

from __future__ import annotations

from hcasim.devices import fs2
from hcasim.devices.cx3 import CONNECTX3, Cx3Firmware
from hcasim.devices.cx3_registers import (
    CR_LOCKED_VALUE,
    FLASH_GW_ADDR,
    FLASH_GW_CMD,
    FLASH_GW_DATA,
    SEM_FLASH_PROGRAMMING,
)
from hcasim.devices.flash import Flash

TOOL = object()


def firmware() -> tuple[Cx3Firmware, list[bytes]]:
    writes: list[bytes] = []
    image = fs2.build_image(
        device_id=4099,
        fw_version=(2, 42, 5000),
        psid="MT_1090120019",
        release_date=(5, 9, 2017),
        guid_base=0x0002C90300A1B2C0,
        cr_protection_en=True,
    )
    fw = Cx3Firmware(CONNECTX3, Flash(image, persist=writes.append))
    fw.cold_boot()
    return fw, writes


def cmd(
    fw: Cx3Firmware, word: int, addr: int | None = None, data: list[int] | None = None
) -> list[int]:
    if addr is not None:
        fw.cr_write(FLASH_GW_ADDR, [addr], TOOL)
    if data is not None:
        fw.cr_write(FLASH_GW_DATA, data, TOOL)
    fw.cr_write(FLASH_GW_CMD, [word], TOOL)
    assert not fw.cr_read(FLASH_GW_CMD, 1, TOOL)[0] & (1 << 30)  # busy clears
    return fw.cr_read(FLASH_GW_DATA, 4, TOOL)


def spi(
    opcode: int,
    *,
    read: bool = False,
    addr: bool = False,
    size: int = 0,
    hold: bool = False,
    cmd_phase: bool = True,
) -> int:
    word = 1 << 30 | 1 << 13 | opcode << 16
    word |= (1 if read else 0) | (4 if cmd_phase else 0) | (8 if addr else 0)
    if size:
        word |= 0x10 | (size.bit_length() - 1) << 8
    return word | (0x20 if hold else 0)


def test_jedec_and_read_use_mflash_command_words() -> None:
    fw, _ = firmware()
    # 0x409f2215 and 0x4003241d are the words mstflint sent (docs/sources.md §6.1).
    assert spi(0x9F, read=True, size=4) == 0x409F2215
    assert cmd(fw, 0x409F2215)[0] == 0x20BA1800
    assert spi(0x03, read=True, addr=True, size=16) == 0x4003241D
    data = cmd(fw, 0x4003241D, addr=0)
    assert b"".join(d.to_bytes(4, "big") for d in data) == fw.flash.contents[:16]


def test_erase_and_program_commit_on_semaphore_release() -> None:
    fw, writes = firmware()
    before = fw.flash.contents
    assert fw.cr_read(SEM_FLASH_PROGRAMMING, 1, TOOL) == [0]
    cmd(fw, spi(0x06))  # WREN
    cmd(fw, spi(0x20, addr=True), addr=0x2000)  # 4 KB subsector erase
    cmd(fw, spi(0x06))
    chunk = [0x11223344, 0x55667788, 0x99AABBCC, 0xDDEEFF00]
    cmd(fw, spi(0x02, addr=True, size=16, hold=True), addr=0x2000, data=chunk)
    cmd(fw, spi(0x02, size=16, cmd_phase=False), data=[0x01020304] * 4)
    # Readable through the gateway, not yet durable.
    assert cmd(fw, spi(0x03, read=True, addr=True, size=16), addr=0x2010) == [0x01020304] * 4
    assert writes == [] and fw.flash.contents == before
    fw.cr_write(SEM_FLASH_PROGRAMMING, [0], TOOL)
    assert len(writes) == 1
    new = fw.flash.contents
    assert new[0x2000:0x2020] == bytes.fromhex("112233445566778899aabbccddeeff00") + bytes.fromhex(
        "01020304" * 4
    )
    assert len(new) == 0x2020  # the erased tail is not stored
    assert new[: len(before)] == before and new[len(before) : 0x2000] == b"\xff" * (
        0x2000 - len(before)
    )


def test_program_without_wren_is_ignored_and_power_loss_drops_uncommitted() -> None:
    fw, writes = firmware()
    before = fw.flash.contents
    fw.cr_read(SEM_FLASH_PROGRAMMING, 1, TOOL)
    cmd(fw, spi(0x02, addr=True, size=16), addr=0, data=[0] * 4)
    assert cmd(fw, spi(0x03, read=True, addr=True, size=16), addr=0)[0] == 0x4D544657
    cmd(fw, spi(0x06))
    cmd(fw, spi(0x20, addr=True), addr=0)
    fw.cold_boot()  # power lost before the tool released the semaphore
    assert writes == [] and fw.flash.contents == before


def test_gateway_unreachable_while_locked() -> None:
    fw, _ = firmware()
    fw.secure.cr_locked = True
    fw.cr_write(FLASH_GW_CMD, [0x409F2215], TOOL)
    assert fw.cr_read(FLASH_GW_DATA, 1, TOOL) == [CR_LOCKED_VALUE]
    assert fw.cr_read(FLASH_GW_CMD, 1, TOOL) == [CR_LOCKED_VALUE]
