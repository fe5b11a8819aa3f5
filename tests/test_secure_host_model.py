"""The ConnectX-3 firmware against the written Secure Host state machine (docs/secure-host.md).

A hypothesis stateful test drives the firmware model through the same interfaces the tools
use (flash block access, tools-HCR writes, CR reads) and checks it against a small
reference model written straight from the documented transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hcasim.devices import fs2
from hcasim.devices.cx3 import CONNECTX3, Cx3Firmware, FirmwareError
from hcasim.devices.cx3_registers import (
    CR_LOCKED_VALUE,
    HW_DEV_ID_ADDR,
    SEM_FLASH_PROGRAMMING,
    SEM_TOOLS_HCR,
    TOOLS_HCR_ADDR,
)
from hcasim.devices.flash import Flash
from hcasim.devices.hw_key import image_with_key

GUID = 0x0002C90300A1B2C0
KEYS = st.sampled_from([1, 0x1A1A1A1A2B2B2B2B, 0xFFFFFFFFFFFFFFFF, 0x5EED])


def image(version: tuple[int, int, int] = (2, 42, 5000)) -> bytes:
    return fs2.build_image(
        device_id=4099,
        fw_version=version,
        psid="MT_1090120019",
        release_date=(5, 9, 2017),
        guid_base=GUID,
        cr_protection_en=True,
    )


@dataclass
class Reference:
    """The documented state machine, nothing else."""

    flash_key: int = 0
    active_key: int = 0
    locked: bool = False
    firewall: bool = False

    def host_reboot(self) -> None:
        self.active_key = self.flash_key
        self.locked = self.firewall = self.active_key != 0

    def driver_restart(self) -> None:
        new = self.flash_key
        if new == 0:
            self.active_key, self.locked, self.firewall = 0, False, False
        elif new != self.active_key:
            self.active_key, self.locked, self.firewall = new, True, True
        else:
            self.firewall = True

    def enable(self, key: int) -> int:
        if self.active_key == 0:
            return 2
        if key != self.active_key:
            return 3
        self.locked = False
        return 0

    def disable(self) -> int:
        if self.active_key == 0:
            return 2
        self.locked = True
        return 0


class SecureHostMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fw = Cx3Firmware(CONNECTX3, Flash(image()))
        self.fw.cold_boot()
        self.ref = Reference()
        self.tool = object()  # the session identity of "the tool"

    # -- what flint does, at the firmware's interfaces
    def hcr(self, op_mod: int, key: int) -> int:
        assert self.fw.cr_read(SEM_TOOLS_HCR, 1, self.tool) == [0]
        word = op_mod << 12 | 0x60
        self.fw.cr_write(TOOLS_HCR_ADDR, [key >> 32, key & 0xFFFFFFFF, 0, 0, 0, 0, word], self.tool)
        self.fw.cr_write(TOOLS_HCR_ADDR + 24, [word | 1 << 23], self.tool)
        status = self.fw.cr_read(TOOLS_HCR_ADDR + 24, 1, self.tool)[0] >> 24
        self.fw.cr_write(SEM_TOOLS_HCR, [0], self.tool)
        return status

    def write_flash(self, transform) -> bool:  # type: ignore[no-untyped-def]
        if self.fw.cr_read(SEM_FLASH_PROGRAMMING, 1, self.tool) != [0]:
            # Locked CR-space: the semaphore reads 0xbad0cafe and nothing can be written.
            assert self.ref.locked
            return False
        try:
            current = self.fw.flash_read(0, len(self.fw.flash.contents), self.tool)
            self.fw.flash_write_image(transform(current), self.tool)
            return True
        finally:
            self.fw.cr_write(SEM_FLASH_PROGRAMMING, [0], self.tool)

    @rule(key=st.one_of(st.just(0), KEYS))
    def set_key(self, key: int) -> None:
        if self.write_flash(lambda img: image_with_key(img, key)):
            self.ref.flash_key = key

    @rule(minor=st.integers(5001, 5999))
    def burn_new_firmware(self, minor: int) -> None:
        # mstflint 4.21 burns the new image's key tag as it is (here: no key).
        if self.write_flash(lambda _img: image((2, 42, minor))):
            self.ref.flash_key = 0

    @rule(key=KEYS)
    def hw_access_enable(self, key: int) -> None:
        assert self.hcr(0, key) == self.ref.enable(key)

    @rule()
    def hw_access_disable(self) -> None:
        assert self.hcr(1, 0) == self.ref.disable()

    @rule()
    def driver_restart(self) -> None:
        self.fw.driver_restart()
        self.ref.driver_restart()

    @rule()
    def host_reboot(self) -> None:
        self.fw.cold_boot()
        self.ref.host_reboot()

    @precondition(lambda self: self.ref.locked)
    @rule()
    def locked_flash_is_unreachable(self) -> None:
        try:
            self.fw.flash_read(0, 16, self.tool)
        except FirmwareError as exc:
            assert exc.errno == 13  # EACCES
        else:
            raise AssertionError("flash readable while locked")

    @invariant()
    def matches_reference(self) -> None:
        s = self.fw.secure
        assert s.cr_locked == self.ref.locked
        assert s.smp_firewall == self.ref.firewall
        assert (s.active_key is None) == (self.ref.active_key == 0)
        if s.active_key is not None:
            assert s.active_key.matches(self.ref.active_key)
        hw_id = self.fw.cr_read(HW_DEV_ID_ADDR, 1, self.tool)[0]
        assert (hw_id == CR_LOCKED_VALUE) == self.ref.locked
        assert self.fw.key_on_flash == (self.ref.flash_key != 0)

    @invariant()
    def firewall_whenever_a_key_is_active(self) -> None:
        # "The SMP firewall is active as long as there is a non-zero pass-key active."
        assert self.fw.secure.smp_firewall == (self.ref.active_key != 0)


SecureHostMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSecureHostStateMachine = SecureHostMachine.TestCase
