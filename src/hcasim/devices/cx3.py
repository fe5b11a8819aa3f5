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
  This firmware adds leases and serves the longest waiter first, so that no holder keeps
  another out for ever (docs/secure-host.md, choice 6).
- A tools-HCR command's input parameters are cleared when it completes, and a locked
  device's HCR is its semaphore holder's only: no key stays readable (choice 9).
- The key in force is loaded from the FS2 image-info section at reset.

What the same firmware does on the wire is in :mod:`hcasim.hosts.cx3_wire`: once the key
is active (:meth:`Cx3Firmware.driver_restart`, :meth:`Cx3Firmware.cold_boot`) the SMP
firewall drops the SMPs the host sends, hides the M_Key in replies and protects GUID0; the
host's driver, which learns the secure-host mode at MAD_DEMUX, is
:mod:`hcasim.hosts.mlx4_driver`. docs/design-notes.md maps each behaviour to its code.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Final

from hcasim.devices import fs2
from hcasim.devices.cx3_registers import (
    CR_LOCKED_VALUE,
    CR_SPACE_SIZE,
    FLASH_GW_ADDR,
    FLASH_GW_CMD,
    FLASH_GW_DATA,
    FLASH_GW_DATA_DWORDS,
    HW_ACCESS_OPCODE,
    HW_DEV_ID_ADDR,
    LIVEFISH_ADDR,
    RUNNING_FW_ADDR,
    SEM_FLASH_PROGRAMMING,
    SEM_GPIO,
    SEM_TOOLS_HCR,
    SEMAPHORES,
    SPI_JEDEC,
    SPI_PP,
    SPI_RDSR,
    SPI_READ,
    SPI_SE_64K,
    SPI_SSE_4K,
    SPI_WREN,
    SPI_WRSR,
    TOOLS_HCR_ADDR,
    TOOLS_HCR_DWORDS,
    FlashGwCmd,
    HcrCommandWord,
    HwDevId,
    RunningFwVersion,
    ToolsHcr,
    decode_dword,
    dword_value,
)
from hcasim.devices.flash import JEDEC_ID, Flash
from hcasim.devices.hw_key import KeyVerifier, verifier_from_tags
from hcasim.ib.layout import Layout, array, uint

log = logging.getLogger("hcasim.cx3")

# MAD_DEMUX, the command the mlx4 driver issues at start (docs/sources.md §9.2;
# linux-6.1 include/linux/mlx4/cmd.h:126,213-217, drivers/net/ethernet/mellanox/mlx4/
# fw.c:2800-2879): opcode 0x203, in_mod 0x01 (LID-routed SMPs), op_mod 0 configure,
# 1 query state, 2 query restrictions; four big-endian masks in the mailbox.
MAD_DEMUX_OPCODE = 0x203
MAD_DEMUX_CONFIG, MAD_DEMUX_QUERY_STATE, MAD_DEMUX_QUERY_RESTR = 0, 1, 2
MAD_DEMUX_SUBN_CLASS = 0x01


class MadDemuxMailbox(Layout):
    """The MAD_DEMUX mailbox: the Set, GetResp, Trap and TrapRepress attribute masks
    (fw.c:2800-2836)."""

    SIZE: ClassVar[int] = 0x80
    set: int = uint(0x10 * 8, 32)
    getresp: int = uint(0x20 * 8, 32)
    trap: int = uint(0x40 * 8, 32)
    traprepress: int = uint(0x70 * 8, 32)


MAD_DEMUX_MAILBOX_SIZE = MadDemuxMailbox.SIZE
#: What the firmware reports while its SMP firewall is on: every attribute of each method is
#: its own (the mask bits' meaning is in the non-public PRM; any non-zero value makes the
#: driver enter secure-host mode, docs/fabric.md).
MAD_DEMUX_FIREWALL_MASK = 0xFFFFFFFF


# Event queue entries the firmware writes for the mlx4 driver: the 32-byte ``struct
# mlx4_eqe`` (linux-6.1 ``include/linux/mlx4/device.h`` ``struct mlx4_eqe``; docs/sources.md
# §9.3): byte 1 type, byte 3 subtype, the event at bytes 4-27, owner at byte 31.
# One layout per event the model writes.


class Eqe(Layout):
    """Any EQE: its type and subtype."""

    SIZE: ClassVar[int] = 32
    type: int = uint(8, 8)
    subtype: int = uint(24, 8)


class PortInfoEqe(Layout):
    """PORT_MNG_CHG, PortInfo (``port_mgmt_change.params.port_info``); only the low nibble
    of the ``mstr_sm_sl`` byte is the SL (mad.c:1193-1198)."""

    SIZE: ClassVar[int] = 32
    type: int = uint(8, 8)
    subtype: int = uint(24, 8)
    port: int = uint(56, 8)
    sm_lid: int = uint(64, 16)
    lid: int = uint(80, 16)
    changed_attr: int = uint(96, 32)
    sm_sl: int = uint(156, 4)
    gid_prefix: int = uint(160, 64)


class TableChangeEqe(Layout):
    """PORT_MNG_CHG, GUIDInfo or P_Key table (``params.tbl_change_info``)."""

    SIZE: ClassVar[int] = 32
    type: int = uint(8, 8)
    subtype: int = uint(24, 8)
    port: int = uint(56, 8)
    block_ptr: int = uint(64, 32)
    entries_mask: int = uint(96, 32)


class Sl2VlEqe(Layout):
    """PORT_MNG_CHG, SL-to-VL (``params.sl2vl_tbl_change_info``): 16 four-bit VLs, SL0 in
    the high nibble of byte 8."""

    SIZE: ClassVar[int] = 32
    type: int = uint(8, 8)
    subtype: int = uint(24, 8)
    port: int = uint(56, 8)
    sl2vl: tuple[int, ...] = array(64, 16, 4)


class PortChangeEqe(Layout):
    """PORT_CHANGE: the port number in bits 31:28 of the event's third dword (eq.c
    ``mlx4_eq_int``)."""

    SIZE: ClassVar[int] = 32
    type: int = uint(8, 8)
    subtype: int = uint(24, 8)
    port: int = uint(96, 4)


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


# -- semaphore leases (docs/secure-host.md, choice 6) -----------------------------------------
#: Seconds a semaphore may be held while someone else wants it. The tools semaphore
#: and sem63 guard one command each, which this firmware completes at once, so their lease
#: runs from the moment they were taken; the flash semaphore is held for a whole flash
#: session, so its lease runs from the holder's last access to the device.
SEM_LEASE: Final = {SEM_TOOLS_HCR: 0.5, SEM_GPIO: 0.5, SEM_FLASH_PROGRAMMING: 15.0}
SEM_IDLE_LEASE: Final = frozenset({SEM_FLASH_PROGRAMMING})
#: An owner whose read found a semaphore taken counts as waiting for it this long after;
#: mstflint polls every few milliseconds (mtcr_ul/mtcr_tools_cif.c:185-195), hcasim's
#: flint every 50 ms at most.
SEM_WAIT_WINDOW: Final = 0.25


@dataclass(slots=True)
class SemaphoreHold:
    """Who holds a semaphore, since when, and when the holder last touched the device."""

    owner: object
    taken: float
    active: float


@dataclass
class SecureHostState:
    """The runtime half of Secure Host: what is in force now, not what is on flash."""

    active_key: KeyVerifier | None = None
    cr_locked: bool = False
    smp_firewall: bool = False


@dataclass
class Refusals:
    """How many attempts the firmware has refused since the lab started (never reset, so a
    watcher sees new refusals as a difference; the lab's web view turns them into events)."""

    #: CR-space reads or writes that met a locked CR-space (one per access, not per dword).
    locked_cr_accesses: int = 0
    #: ``hw_access enable`` with a key other than the one in force.
    wrong_keys: int = 0


@dataclass
class Cx3Firmware:
    """One ConnectX-3 device as the firmware sees it."""

    kind: Cx3Kind
    flash: Flash
    secure: SecureHostState = field(default_factory=SecureHostState)
    running_version: tuple[int, int, int] = (0, 0, 0)
    #: The device as log lines name it (``host/mt4099``).
    name: str = ""
    #: Seconds, monotonic: what semaphore leases are measured with (tests set a fake one).
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _cr: dict[int, int] = field(default_factory=dict, repr=False)
    _holds: dict[int, SemaphoreHold] = field(default_factory=dict, repr=False)
    #: Per semaphore, who waits for it: id(owner) -> (owner, first busy read, last busy
    #: read); keyed by id because owners need not be hashable (the entry keeps it alive).
    _waiting: dict[int, dict[int, tuple[object, float, float]]] = field(
        default_factory=dict, repr=False)
    _hcr: list[int] = field(default_factory=lambda: [0] * TOOLS_HCR_DWORDS, repr=False)
    _gateway: FlashGateway | None = field(default=None, repr=False)
    refusals: Refusals = field(default_factory=Refusals)
    #: The flash contents last parsed for its key, and what they held (the flash is
    #: immutable bytes replaced on write, so identity says whether it changed).
    _key_cache: tuple[bytes, bool, KeyVerifier | None] | None = field(default=None, repr=False)

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
        self._holds.clear()
        self._waiting.clear()
        self._hcr = [0] * TOOLS_HCR_DWORDS
        self._gateway = None  # uncommitted gateway writes die with the power

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
            self._free_flash_semaphores()
        else:
            self.secure.smp_firewall = True

    def _flash_info(self) -> fs2.Fs2Info | None:
        try:
            return fs2.parse_image(self.flash.contents)
        except fs2.ImageError:
            return None

    def _flash_key(self) -> KeyVerifier | None:
        return self.flash_key_state()[1]

    def flash_key_state(self) -> tuple[bool, KeyVerifier | None]:
        """Whether the flashed image supports Secure Host, and the key it holds (a verifier,
        never the key), parsed once per flash contents: a status poll of thousands of
        devices then costs no image parse."""
        contents = self.flash.contents
        cached = self._key_cache
        if cached is not None and cached[0] is contents:
            return cached[1], cached[2]
        info = self._flash_info()
        capable = info is not None and info.hw_access_key is not None
        key: KeyVerifier | None = None
        if info is not None and info.hw_access_key:
            seal = fs2.image_info_tag(contents, fs2.TAG_KEY_DIGEST_SEAL)
            key = verifier_from_tags(info.hw_access_key, seal, info.guids[0].to_bytes(8, "big"))
        self._key_cache = (contents, capable, key)
        return capable, key

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
        return self.flash_key_state()[0]

    # ----------------------------------------------------------------- CR-space
    def cr_read(self, addr: int, count: int, owner: object) -> list[int]:
        """Read ``count`` dwords of CR-space as the given session."""
        self._check_range(addr, count)
        if self._holds:
            self._touch(owner)
        if self.secure.cr_locked and not self._reachable_while_locked(addr, owner):
            self.refusals.locked_cr_accesses += 1
        return [self._read_dword(addr + 4 * i, owner) for i in range(count)]

    def cr_write(self, addr: int, values: list[int], owner: object) -> None:
        """Write dwords to CR-space as the given session."""
        self._check_range(addr, len(values))
        if self._holds:
            self._touch(owner)
        if self.secure.cr_locked and not self._reachable_while_locked(addr, owner):
            self.refusals.locked_cr_accesses += 1
        for i, value in enumerate(values):
            if not 0 <= value <= 0xFFFFFFFF:
                raise FirmwareError(errno.EINVAL, f"value {value!r} is not a 32-bit dword")
            self._write_dword(addr + 4 * i, value, owner)

    @staticmethod
    def _check_range(addr: int, count: int) -> None:
        if addr % 4 or addr < 0 or count < 0 or addr + 4 * count > CR_SPACE_SIZE:
            raise FirmwareError(errno.EINVAL, f"CR access {addr:#x}+{count} dwords out of range")

    def _reachable_while_locked(self, addr: int, owner: object) -> bool:
        # hw_access must work on a locked device, so its semaphore and HCR stay reachable;
        # the HCR only for the semaphore's holder, so that no other party reads a key
        # while a command is being written (docs/secure-host.md, choice 9).
        if addr == SEM_TOOLS_HCR:
            return True
        return (TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS
                and self.holds(owner, SEM_TOOLS_HCR))

    def _read_dword(self, addr: int, owner: object) -> int:
        if self.secure.cr_locked and not self._reachable_while_locked(addr, owner):
            return CR_LOCKED_VALUE
        if addr in SEMAPHORES:
            return self._take(addr, owner)
        if TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS:
            return self._hcr[(addr - TOOLS_HCR_ADDR) // 4]
        if FLASH_GW_CMD <= addr < FLASH_GW_DATA + 4 * FLASH_GW_DATA_DWORDS:
            return self.gateway.read(addr)
        if addr == HW_DEV_ID_ADDR:
            return dword_value(HwDevId(self.kind.revision, self.kind.hw_id))
        if RUNNING_FW_ADDR <= addr < RUNNING_FW_ADDR + 16:
            offset = addr - RUNNING_FW_ADDR
            if offset >= RunningFwVersion.SIZE:
                return 0
            version = RunningFwVersion(*self.running_version).encode()
            return int.from_bytes(version[offset : offset + 4], "big")
        return self._cr.get(addr, 0)

    def _write_dword(self, addr: int, value: int, owner: object) -> None:
        if self.secure.cr_locked and not self._reachable_while_locked(addr, owner):
            return  # writes to a locked CR-space are dropped
        if addr in SEMAPHORES:
            if value == 0 and self.holds(owner, addr):
                # only its holder frees it: on hardware anyone may, which would let a
                # locked host break the administrator's command (docs/secure-host.md,
                # choice 6); the leases take clear_semaphore's place
                self._free(addr)
            return
        if FLASH_GW_CMD <= addr < FLASH_GW_DATA + 4 * FLASH_GW_DATA_DWORDS:
            self.gateway.write(addr, value)
            return
        if TOOLS_HCR_ADDR <= addr < TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS:
            index = (addr - TOOLS_HCR_ADDR) // 4
            self._hcr[index] = value
            if index == TOOLS_HCR_DWORDS - 1 and decode_dword(HcrCommandWord, value).go:
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
        for addr in [a for a, hold in self._holds.items() if hold.owner is owner]:
            self._free(addr)
        for waiting in self._waiting.values():
            waiting.pop(id(owner), None)

    # ----------------------------------------------------------------- semaphores
    def _take(self, addr: int, owner: object) -> int:
        """A read of semaphore ``addr``: 0 and the semaphore is the reader's, or 1.

        Read-to-acquire as on hardware, with two rules of this firmware so that no one
        keeps another out for ever (docs/secure-host.md, choice 6): a hold older than its
        lease (:data:`SEM_LEASE`) ends when someone else wants the semaphore, and a free
        semaphore goes to whoever has waited for it longest.
        """
        now = self.clock()
        hold = self._holds.get(addr)
        if hold is not None:
            start = hold.active if addr in SEM_IDLE_LEASE else hold.taken
            if hold.owner is owner or now - start <= SEM_LEASE[addr]:
                if hold.owner is not owner:
                    self._wait(addr, owner, now)
                return 1  # taken: a read returns the old value, 1
            log.info("%s: semaphore %#x released: held past its %g s lease while another "
                     "session wanted it", self.name or self.kind.description, addr,
                     SEM_LEASE[addr])
            self._free(addr)
        waiting = self._waiting.get(addr)
        if waiting:
            for key, (_, _, last) in list(waiting.items()):
                if now - last > SEM_WAIT_WINDOW:
                    del waiting[key]  # gave up
            first = min(waiting.values(), key=lambda entry: entry[1], default=None)
            if first is not None and first[0] is not owner:
                self._wait(addr, owner, now)
                return 1
            waiting.pop(id(owner), None)
        self._holds[addr] = SemaphoreHold(owner, now, now)
        return 0

    def _wait(self, addr: int, owner: object, now: float) -> None:
        waiting = self._waiting.setdefault(addr, {})
        _, since, _ = waiting.get(id(owner), (owner, now, now))
        waiting[id(owner)] = (owner, since, now)

    def _touch(self, owner: object) -> None:
        # any access by a holder is activity for the leases counted from it
        now = self.clock()
        for hold in self._holds.values():
            if hold.owner is owner:
                hold.active = now

    def _free(self, addr: int) -> None:
        self._holds.pop(addr, None)
        if addr == SEM_FLASH_PROGRAMMING:
            self._commit_gateway()

    def _free_flash_semaphores(self) -> None:
        # CR-space locks: the holders of the flash semaphores cannot reach the gateway any
        # more (mstflint releases its own before locking, mflash/mflash.c:3871-3873)
        for addr in (SEM_FLASH_PROGRAMMING, SEM_GPIO):
            self._free(addr)

    @property
    def gateway(self) -> FlashGateway:
        """The direct flash gateway, with its working copy of the flash."""
        if self._gateway is None:
            self._gateway = FlashGateway(self.flash)
        return self._gateway

    def _commit_gateway(self) -> None:
        # A tool's gateway writes become durable, as one write, when it releases the
        # flash semaphore; a daemon crash before that leaves the old image (docs).
        if self._gateway is not None and self._gateway.dirty:
            self.flash.replace(self._gateway.contents())
            self._gateway = None

    def holds(self, owner: object, semaphore: int) -> bool:
        """Whether the session holds the given semaphore."""
        hold = self._holds.get(semaphore)
        return hold is not None and hold.owner is owner

    # ----------------------------------------------------------------- tools HCR
    def _execute_hcr(self) -> None:
        hcr = ToolsHcr.decode(b"".join(w.to_bytes(4, "big") for w in self._hcr))
        op_mod = hcr.command.opcode_modifier
        if hcr.command.opcode == HW_ACCESS_OPCODE and op_mod in (0, 1):
            status = self.hw_access(unlock=op_mod == 0, key=hcr.in_param)
        else:
            status = HcrStatus.BAD_OP
        # Completion clears the input parameters (a HW_ACCESS key is in in_param) and the
        # input modifier: no key stays readable once the command is done (docs/secure-host.md,
        # choice 9). The command stays, with its status; go and every other flag clear.
        self._hcr[0] = self._hcr[1] = self._hcr[2] = 0
        self._hcr[6] = dword_value(HcrCommandWord(
            status=int(status), opcode_modifier=op_mod, opcode=hcr.command.opcode))

    def hw_access(self, *, unlock: bool, key: int) -> HcrStatus:
        """HW_ACCESS (opcode 0x60): unlock with the key in force, or lock again."""
        active = self.secure.active_key
        if active is None:
            return HcrStatus.BAD_OP
        if unlock:
            if not active.matches(key):
                self.refusals.wrong_keys += 1
                return HcrStatus.BAD_PARAM
            self.secure.cr_locked = False
        else:
            self.secure.cr_locked = True
            self._free_flash_semaphores()
        return HcrStatus.OK

    # ----------------------------------------------------------------- driver commands
    def mad_demux(
        self, op_mod: int, in_mod: int, mailbox: bytes = b""
    ) -> tuple[HcrStatus, bytes]:
        """MAD_DEMUX (opcode 0x203) as the driver issues it: status and out-mailbox.

        Query restrictions (op_mod 2) and query state (1) return the four masks: all set
        while the SMP firewall is on, zero otherwise; configure (0) accepts the driver's
        mailbox and changes nothing the firmware enforces (the firewall follows the key).
        """
        if in_mod != MAD_DEMUX_SUBN_CLASS:
            return HcrStatus.BAD_PARAM, b""
        if op_mod == MAD_DEMUX_CONFIG:
            return HcrStatus.OK, b""
        if op_mod not in (MAD_DEMUX_QUERY_STATE, MAD_DEMUX_QUERY_RESTR):
            return HcrStatus.BAD_PARAM, b""
        mask = MAD_DEMUX_FIREWALL_MASK if self.secure.smp_firewall else 0
        return HcrStatus.OK, MadDemuxMailbox(mask, mask, mask, mask).encode()

    # ----------------------------------------------------------------- flash
    def flash_read(self, offset: int, length: int, owner: object) -> bytes:
        """Block read of the flash through the gateway, as the flash-semaphore holder."""
        self._check_flash_access(owner)
        self._touch(owner)
        try:
            return self.flash.read(offset, length)
        except ValueError as exc:
            raise FirmwareError(errno.EINVAL, str(exc)) from None

    def flash_write_image(self, image: bytes, owner: object) -> None:
        """Program a whole image durably, as the flash-semaphore holder."""
        self._check_flash_access(owner)
        self._touch(owner)
        try:
            self.flash.replace(image)
        except ValueError as exc:
            raise FirmwareError(errno.EFBIG, str(exc)) from None

    def _check_flash_access(self, owner: object) -> None:
        if self._gateway is not None and self._gateway.dirty:
            raise FirmwareError(errno.EBUSY, "flash gateway writes in progress")
        if self.secure.cr_locked:
            raise FirmwareError(errno.EACCES, "HW access is disabled on the device.")
        if not self.holds(owner, SEM_FLASH_PROGRAMMING):
            raise FirmwareError(errno.EBUSY, "flash semaphore (0xf03a0) not held")



class FlashGateway:
    """The ConnectX-3 direct flash gateway: SPI commands issued through CR-space.

    A command word written to 0xf0400 with the busy bit (30) set runs at once: the SPI
    opcode in bits 23:16, the address from 0xf0404, up to 16 data bytes through
    0xf0410-0xf041c (flash byte k is byte k%4 of dword k/4, most significant first;
    mflash_gw.c:498-552). Without a command phase, a data phase continues the SPI
    transaction left open by CS hold (page programs longer than 16 bytes). Writes land in
    a working copy that the firmware commits as one durable write.
    """

    def __init__(self, flash: Flash) -> None:
        self.flash = flash
        self.cmd = 0
        self.addr = 0
        self.data = [0] * FLASH_GW_DATA_DWORDS
        self.write_enabled = False
        self.dirty = False
        self._work: bytearray | None = None
        self._opcode = 0
        self._cursor = 0

    def read(self, addr: int) -> int:
        """A CR read inside the gateway's registers."""
        if addr == FLASH_GW_CMD:
            return self.cmd
        if addr == FLASH_GW_ADDR:
            return self.addr
        return self.data[(addr - FLASH_GW_DATA) // 4] if addr >= FLASH_GW_DATA else 0

    def write(self, addr: int, value: int) -> None:
        """A CR write inside the gateway's registers; a command word with busy set runs."""
        if addr == FLASH_GW_CMD:
            self.cmd = value
            cmd = decode_dword(FlashGwCmd, value)
            if cmd.busy:
                self._execute(cmd)
                done = bytearray(value.to_bytes(4, "big"))
                FlashGwCmd.spec("busy").put(done, 0)
                self.cmd = int.from_bytes(done, "big")
        elif addr == FLASH_GW_ADDR:
            self.addr = value
        elif addr >= FLASH_GW_DATA:
            self.data[(addr - FLASH_GW_DATA) // 4] = value

    def contents(self) -> bytes:
        """The flash as the gateway sees it (programmed extent, erased tail trimmed)."""
        if self._work is None:
            return self.flash.contents
        return bytes(self._work).rstrip(b"\xff")

    def _bytes(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.flash.size - offset))
        if self._work is None:
            return self.flash.read(offset, length)
        chunk = bytes(self._work[offset : offset + length])
        return chunk + b"\xff" * (length - len(chunk))

    def _writable(self) -> bytearray:
        if self._work is None:
            self._work = bytearray(self.flash.contents)
        return self._work

    def _execute(self, cmd: FlashGwCmd) -> None:
        size = 2**cmd.size_log if cmd.data_phase else 0
        size = min(size, 4 * FLASH_GW_DATA_DWORDS)
        if cmd.cmd_phase:
            self._opcode = cmd.opcode
            self._cursor = self.addr & (self.flash.size - 1) if cmd.addr_phase else 0
        op = self._opcode
        if op == SPI_WREN:
            self.write_enabled = True
        elif op == SPI_JEDEC:
            self._load(bytes([*JEDEC_ID, 0]) + bytes(12))
        elif op == SPI_RDSR:
            # WIP never set: erases and programs complete instantly. WEL is bit 1.
            self._load(bytes([0x02 if self.write_enabled else 0]) + bytes(15))
        elif op == SPI_READ and size:
            self._load(self._bytes(self._cursor, size))
            self._cursor += size
        elif op in (SPI_SSE_4K, SPI_SE_64K) and cmd.cmd_phase:
            self._erase(self._cursor, 0x1000 if op == SPI_SSE_4K else 0x10000)
        elif op == SPI_PP and size:
            self._program(self._cursor, self._unload(size))
            self._cursor += size
        elif op == SPI_WRSR:
            self.write_enabled = False  # status register writes are accepted and ignored
        if not cmd.cs_hold and op in (SPI_PP, SPI_SSE_4K, SPI_SE_64K, SPI_WRSR):
            self.write_enabled = False  # the write-enable latch clears at the end of a write

    def _load(self, data: bytes) -> None:
        padded = data.ljust(16, b"\0")
        self.data = [int.from_bytes(padded[i : i + 4], "big") for i in range(0, 16, 4)]

    def _unload(self, size: int) -> bytes:
        return b"".join(d.to_bytes(4, "big") for d in self.data)[:size]

    def _erase(self, addr: int, sector: int) -> None:
        if not self.write_enabled:
            return  # a real flash ignores erase without WREN
        start = addr & ~(sector - 1)
        work = self._writable()
        end = min(start + sector, len(work))
        if start < end:
            work[start:end] = b"\xff" * (end - start)
        self.dirty = True

    def _program(self, addr: int, data: bytes) -> None:
        if not self.write_enabled or addr + len(data) > self.flash.size:
            return
        work = self._writable()
        if len(work) < addr + len(data):
            work.extend(b"\xff" * (addr + len(data) - len(work)))
        for i, byte in enumerate(data):
            work[addr + i] &= byte  # programming only clears bits
        self.dirty = True
