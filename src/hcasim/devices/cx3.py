"""ConnectX-3 / ConnectX-3 Pro firmware model: CR-space, tools HCR, flash and Secure Host.

The model is a state machine over what the tools can touch; it never parses MADs or
control messages. Facts and their sources are in docs/secure-host.md; the short version:

- CR address 0xf0014 (HW_DEV_ID) reads the hardware id, or 0xbad0cafe while CR-space is
  locked (mstflint v4.21.0-1 mflash/mflash.c:2307,2396-2400).
- The tools HCR is 7 dwords at 0x80780, guarded by semaphore 0xf03bc; HW_ACCESS is opcode
  0x60, op_mod 0 unlocks with the key in in_param, op_mod 1 locks
  (mtcr_ul/mtcr_tools_cif.c:48-53, cmdif/tools_cif.c:51,130-133).
- Semaphores are read-to-acquire: a read returns the old value and leaves 1 behind; a
  write of 0 releases (mtcr_ul/mtcr_tools_cif.c:178-205, tools_res_mgmt/tools_res_mgmt.c).
- The key in force is loaded from the FS2 image-info section at reset.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from enum import IntEnum

from hcasim.devices import fs2
from hcasim.devices.flash import Flash
from hcasim.devices.hw_key import KeyVerifier, verifier_from_tags

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
CR_SPACE_SIZE = 0x100000

HCR_GO = 1 << 23
HW_ACCESS_OPCODE = 0x60


class HcrStatus(IntEnum):
    """Tools-HCR status byte (mtcr_ul/mtcr_tools_cif.c:119-142)."""

    OK = 0x0
    BUSY = 0x1
    BAD_OP = 0x2  # on HW_ACCESS lock: no key was set (MFE_MISSING_KEY)
    BAD_PARAM = 0x3  # on HW_ACCESS: the given key is incorrect (MFE_MISMATCH_KEY)
    BAD_SYS_STATE = 0x4


@dataclass(frozen=True)
class Cx3Kind:
    """A ConnectX-3 family member: mst name, PCI device id and CR-space hardware id."""

    mst_name: str
    device_id: int
    hw_id: int
    revision: int
    description: str


# PCI ids: rdma-core v44.0 providers/mlx4/mlx4.c:68,72; hw ids: mflash_pack_layer.h:85-86.
CONNECTX3 = Cx3Kind("mt4099", 4099, 0x1F5, 0xA0, "ConnectX-3")
CONNECTX3_PRO = Cx3Kind("mt4103", 4103, 0x1F7, 0xA0, "ConnectX-3 Pro")
KINDS = {k.mst_name: k for k in (CONNECTX3, CONNECTX3_PRO)}


class FirmwareError(Exception):
    """A device refused an access; carries the errno a host process would see."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


@dataclass
class SecureHostState:
    """The runtime half of Secure Host: what is in force now, not what is on flash."""

    active_key: KeyVerifier | None = None
    cr_locked: bool = False
    smp_firewall: bool = False


@dataclass
class Cx3Firmware:
    """One ConnectX-3 device as the firmware sees it."""

    kind: Cx3Kind
    flash: Flash
    secure: SecureHostState = field(default_factory=SecureHostState)
    running_version: tuple[int, int, int] = (0, 0, 0)
    _cr: dict[int, int] = field(default_factory=dict, repr=False)
    _sem_owner: dict[int, object] = field(default_factory=dict, repr=False)
    _hcr: list[int] = field(default_factory=lambda: [0] * TOOLS_HCR_DWORDS, repr=False)

    # ----------------------------------------------------------------- resets
    def cold_boot(self) -> None:
        """Host reboot / power cycle: load firmware and key from flash, lock if keyed."""
        info = self._flash_info()
        self.running_version = info.fw_version if info else (0, 0, 0)
        key = self._flash_key()
        self.secure = SecureHostState(
            active_key=key, cr_locked=key is not None, smp_firewall=key is not None
        )
        self._cr.clear()
        self._sem_owner.clear()
        self._hcr = [0] * TOOLS_HCR_DWORDS

    def driver_restart(self) -> None:
        """Driver unload and load: the flash key comes into force; the firmware image does not.

        A key that was not in force before locks CR-space; the same key keeps an explicit
        ``hw_access enable`` in place (the seed: "the driver restart will NOT do so").
        """
        key = self._flash_key()
        previous = self.secure.active_key
        if key is None:
            self.secure = SecureHostState()
        elif previous is None or previous != key:
            self.secure = SecureHostState(active_key=key, cr_locked=True, smp_firewall=True)
        else:
            self.secure.smp_firewall = True

    def _flash_info(self) -> fs2.Fs2Info | None:
        try:
            return fs2.parse_image(self.flash.contents)
        except fs2.ImageError:
            return None

    def _flash_key(self) -> KeyVerifier | None:
        info = self._flash_info()
        if info is None or not info.hw_access_key:
            return None
        seal = fs2.image_info_tag(self.flash.contents, fs2.TAG_KEY_DIGEST_SEAL)
        return verifier_from_tags(info.hw_access_key, seal, info.guids[0].to_bytes(8, "big"))

    # ----------------------------------------------------------------- state
    @property
    def mst_name(self) -> str:
        """The mst device-name stem (``mt4099``) under which hosts see this device."""
        return self.kind.mst_name

    def status(self) -> dict[str, object]:
        """Describe the device's secure-host state without any key material."""
        return {
            "model": self.kind.description,
            "secure_host_capable": self.supports_secure_host,
            "key_on_flash": self.key_on_flash,
            "key_active": self.secure.active_key is not None,
            "cr_space_locked": self.secure.cr_locked,
            "smp_firewall": self.secure.smp_firewall,
            "fw_version": ".".join(map(str, self.running_version)),
        }

    @property
    def key_on_flash(self) -> bool:
        """Whether the flash image carries a non-zero key (it comes into force at reset)."""
        return self._flash_key() is not None

    @property
    def supports_secure_host(self) -> bool:
        """Whether the flashed firmware was built with cr_protection_en (has the key tag)."""
        info = self._flash_info()
        return info is not None and info.hw_access_key is not None

    # ----------------------------------------------------------------- CR-space
    def cr_read(self, addr: int, count: int, owner: object) -> list[int]:
        """Read ``count`` dwords of CR-space as the given session."""
        self._check_range(addr, count)
        return [self._read_dword(addr + 4 * i, owner) for i in range(count)]

    def cr_write(self, addr: int, values: list[int], owner: object) -> None:
        """Write dwords to CR-space as the given session."""
        self._check_range(addr, len(values))
        for i, value in enumerate(values):
            if not 0 <= value <= 0xFFFFFFFF:
                raise FirmwareError(errno.EINVAL, f"value {value!r} is not a 32-bit dword")
            self._write_dword(addr + 4 * i, value, owner)

    @staticmethod
    def _check_range(addr: int, count: int) -> None:
        if addr % 4 or addr < 0 or count < 0 or addr + 4 * count > CR_SPACE_SIZE:
            raise FirmwareError(errno.EINVAL, f"CR access {addr:#x}+{count} dwords out of range")

    def _reachable_while_locked(self, addr: int) -> bool:
        # hw_access must work on a locked device, so its semaphore and HCR stay reachable.
        return addr == SEM_TOOLS_HCR or TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * 7

    def _read_dword(self, addr: int, owner: object) -> int:
        if self.secure.cr_locked and not self._reachable_while_locked(addr):
            return CR_LOCKED_VALUE
        if addr in SEMAPHORES:
            if addr in self._sem_owner:
                return 1
            self._sem_owner[addr] = owner
            return 0
        if TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS:
            return self._hcr[(addr - TOOLS_HCR_ADDR) // 4]
        if addr == HW_DEV_ID_ADDR:
            return self.kind.revision << 16 | self.kind.hw_id
        if RUNNING_FW_ADDR <= addr < RUNNING_FW_ADDR + 16:
            major, minor, sub = self.running_version
            return (major << 16, minor << 16 | sub, 0, 0)[(addr - RUNNING_FW_ADDR) // 4]
        return self._cr.get(addr, 0)

    def _write_dword(self, addr: int, value: int, owner: object) -> None:
        if self.secure.cr_locked and not self._reachable_while_locked(addr):
            return  # writes to a locked CR-space are dropped
        if addr in SEMAPHORES:
            if value == 0:
                self._sem_owner.pop(addr, None)
            return
        if TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS:
            index = (addr - TOOLS_HCR_ADDR) // 4
            self._hcr[index] = value
            if index == TOOLS_HCR_DWORDS - 1 and value & HCR_GO:
                self._execute_hcr()
            return
        if (
            addr in (HW_DEV_ID_ADDR, LIVEFISH_ADDR)
            or RUNNING_FW_ADDR <= addr < RUNNING_FW_ADDR + 16
        ):
            return  # read-only identification registers
        self._cr[addr] = value

    def release(self, owner: object) -> None:
        """Drop every semaphore a session holds (the session ended)."""
        for addr in [a for a, o in self._sem_owner.items() if o is owner]:
            del self._sem_owner[addr]

    def holds(self, owner: object, semaphore: int) -> bool:
        """Whether the session holds the given semaphore."""
        return self._sem_owner.get(semaphore) is owner

    # ----------------------------------------------------------------- tools HCR
    def _execute_hcr(self) -> None:
        word = self._hcr[6]
        opcode, op_mod = word & 0xFFF, (word >> 12) & 0xF
        in_param = self._hcr[0] << 32 | self._hcr[1]
        if opcode == HW_ACCESS_OPCODE and op_mod in (0, 1):
            status = self.hw_access(unlock=op_mod == 0, key=in_param)
        else:
            status = HcrStatus.BAD_OP
        self._hcr[6] = (int(status) << 24) | (word & 0xFFFF)  # go cleared

    def hw_access(self, *, unlock: bool, key: int) -> HcrStatus:
        """HW_ACCESS (opcode 0x60): unlock with the key in force, or lock again."""
        active = self.secure.active_key
        if active is None:
            return HcrStatus.BAD_OP
        if unlock:
            if not active.matches(key):
                return HcrStatus.BAD_PARAM
            self.secure.cr_locked = False
        else:
            self.secure.cr_locked = True
        return HcrStatus.OK

    # ----------------------------------------------------------------- flash
    def flash_read(self, offset: int, length: int, owner: object) -> bytes:
        """Block read of the flash through the gateway, as the flash-semaphore holder."""
        self._check_flash_access(owner)
        try:
            return self.flash.read(offset, length)
        except ValueError as exc:
            raise FirmwareError(errno.EINVAL, str(exc)) from None

    def flash_write_image(self, image: bytes, owner: object) -> None:
        """Program a whole image durably, as the flash-semaphore holder."""
        self._check_flash_access(owner)
        try:
            self.flash.replace(image)
        except ValueError as exc:
            raise FirmwareError(errno.EFBIG, str(exc)) from None

    def _check_flash_access(self, owner: object) -> None:
        if self.secure.cr_locked:
            raise FirmwareError(errno.EACCES, "HW access is disabled on the device.")
        if not self.holds(owner, SEM_FLASH_PROGRAMMING):
            raise FirmwareError(errno.EBUSY, "flash semaphore (0xf03a0) not held")

